"""The fixed workload every profile runs: train steps of one tier on real MNIST batches.

Run as a program (this is what scalene profiles):
    python -m profiles.workload --tier numpy --steps 200
"""

import argparse

import numpy as np

from implementations import data
from implementations.experiment import epoch_batches, init_params
from implementations.registry import build_model

BATCH = 64


def mnist_batches(model, steps: int, batch: int = BATCH):
    """The first `steps` batches of epoch 0 in the shared order, in the tier's form."""
    mn = data.load_mnist()
    x, y = data.normalize(mn.train_images), mn.train_labels.astype(np.int64)
    X, Y = model.prepare(x, y)
    order = epoch_batches(len(x), batch, seed=0, epoch=0)[:steps]
    return [model.take(X, Y, idx) for idx in order]


def run_steps(model, batches, lr: float = 0.1) -> None:
    for xb, yb in batches:
        model.train_step(xb, yb, lr)
    model.sync()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tier", required=True)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args(argv)
    model = build_model(args.tier, init_params(0))
    batches = mnist_batches(model, args.steps)
    run_steps(model, batches[: args.warmup])
    run_steps(model, batches)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
