"""The fixed workload every profile runs: train steps of one tier on real MNIST batches.

Run as a program (this is what scalene profiles):
    python -m profiles.workload --tier numpy --steps 200
"""

import argparse
from pathlib import Path

from implementations import data
from implementations.experiment import epoch_batches, init_params
from implementations.registry import build_model

BATCH = 64


def mnist_batches(model, steps: int, batch: int = BATCH):
    """The first `steps` batches of epoch 0 in the shared order, in the tier's form."""
    arrays = data.training_arrays()
    x, y = arrays.x_train, arrays.y_train
    X, Y = model.prepare(x, y)
    order = epoch_batches(len(x), batch, seed=0, epoch=0)[:steps]
    return [model.take(X, Y, idx) for idx in order]


def run_steps(model, batches, lr: float = 0.1, steps: int | None = None) -> None:
    """`steps` train steps (default: one per batch), cycling over `batches`."""
    steps = len(batches) if steps is None else steps
    for i in range(steps):
        xb, yb = batches[i % len(batches)]
        model.train_step(xb, yb, lr)
    model.sync()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tier", required=True)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--scalene-window", action="store_true",
                   help="under `scalene run --off`: profile only the train steps")
    args = p.parse_args(argv)
    model = build_model(args.tier, init_params(0))
    batches = mnist_batches(model, min(args.steps, 938))
    run_steps(model, batches, steps=args.warmup)
    if args.scalene_window:
        from scalene import scalene_profiler

        scalene_profiler.start()
    run_steps(model, batches, steps=args.steps)
    if args.scalene_window:
        scalene_profiler.stop()
    return 0


def trace_main(profile, doc: str, argv=None) -> int:
    """The command line of a profiler module: `--tier T --out-dir DIR` -> profile(T, DIR)."""
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--tier", required=True)
    p.add_argument("--out-dir", required=True)
    args = p.parse_args(argv)
    profile(args.tier, Path(args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
