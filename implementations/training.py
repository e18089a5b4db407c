"""The one training loop every tier runs, and the one evaluation of test accuracy."""

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from implementations import data as mnist_data
from implementations import settings
from implementations.experiment import H, epoch_batches, init_params
from implementations.noise import NoiseGuard
from implementations.provenance import stamp
from implementations.registry import Tier, build_model, resolve
from implementations.threads import current_threads, set_threads, thread_counts
from implementations.validation import check_batch
from kernels import vectorized

MAX_LOSS = 100.0  # nats; far above log(10) = 2.3, so only a diverged run crosses it


class DivergedError(RuntimeError):
    """The loss became NaN, inf or absurdly large; the message names epoch and step."""


@dataclass
class TrainResult:
    tier: str
    activation: str
    batch_size: int
    epochs: int
    seed: int
    lr: float
    limit: int | None
    threads: int
    compile_seconds: float
    threads_by_library: dict = field(default_factory=dict)
    dtype: str = "float32"
    hidden: int = 128
    epoch_seconds: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    samples_per_second: list[float] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)  # machine, code version (provenance.py)
    machine_state: dict | None = None  # quiet or busy during the epochs (noise.py)

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d


def evaluate(weights: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray,
             activation: str) -> float:
    """Test accuracy (0..1) of read-back weights, computed the same way for every tier.

    Single-threaded BLAS: multi-threaded OpenBLAS leaves its workers spinning for a while
    after a call, which would steal a core from the next (timed) epoch of a non-BLAS tier.
    """
    from threadpoolctl import threadpool_limits

    act = getattr(vectorized, f"{activation}_forward")
    with threadpool_limits(1, user_api="blas"):
        h = act(vectorized.linear_forward(x, weights["W1"], weights["b1"]))
        logits = vectorized.linear_forward(h, weights["W2"], weights["b2"])
    return float(np.mean(logits.argmax(axis=1) == y))


def check_losses(losses: np.ndarray, epoch: int) -> None:
    """Raise DivergedError at the first step whose loss is NaN, inf or above MAX_LOSS."""
    bad = np.flatnonzero(~(np.asarray(losses) <= MAX_LOSS))
    if bad.size:
        step = int(bad[0])
        raise DivergedError(
            f"training diverged at epoch {epoch + 1}, step {step + 1}: loss "
            f"{float(losses[step])!r}. Lower the learning rate (--lr)."
        )


def train(tier: "str | Tier", epochs: int = 10, batch_size: int = 64, lr: float = 0.1,
          activation: str = "relu", seed: int = 0, limit: int | None = None,
          data_dir=None, threads: int | None = None, on_epoch=None,
          model_options: dict | None = None, dtype: str | None = None,
          hidden: int = H) -> TrainResult:
    """Train tier `tier` from the shared init and order; returns per-epoch figures.

    on_epoch(result, epoch) is called after each epoch (the CLI prints from it). dtype: a
    number format the tier supports (implementations.formats; default the tier's own);
    hidden: the width H of the hidden layer (784 -> H -> 10).
    Epoch seconds cover only the epoch's steps (synchronized); evaluation and compilation
    are outside them.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr),
                        ("seed", seed), ("limit", limit), ("hidden", hidden)):
        settings.check(name, value)
    options = dict(model_options or {})
    # threads first: a tier's availability probe may start a library's thread pool (XLA
    # sizes its pool once, when its client starts)
    set_threads(threads)
    tier = resolve(tier, dtype=dtype, loader=options.get("loader"), procs=options.get("procs"))
    fmt = tier.check_format(dtype)
    arrays = mnist_data.training_arrays(data_dir, limit)
    x_train, y_train, x_test, y_test = (arrays.x_train, arrays.y_train, arrays.x_test,
                                        arrays.y_test)
    check_batch(x_train, y_train)  # once, not inside every timed epoch

    model = build_model(tier, init_params(seed, h=hidden), activation, dtype=fmt, **options)
    X, Y = model.prepare(x_train, y_train)
    n = x_train.shape[0]
    t0 = time.perf_counter()
    model.prepare_batches({min(batch_size, n), n % batch_size or batch_size}, lr)
    model.prepare_epoch(X, Y, epoch_batches(n, batch_size, seed, 0), lr)  # same sizes each
    model.sync()
    compile_seconds = model.compile_seconds + time.perf_counter() - t0
    n_threads = current_threads(tier.thread_pool)  # what the tier's own pool runs, now built
    result = TrainResult(tier.name, activation, batch_size, epochs, seed, lr, limit, n_threads,
                         compile_seconds, thread_counts(), fmt, hidden,
                         extra=getattr(model, "options", {}), provenance=stamp())
    guard = NoiseGuard(f"train {tier.name}").begin()
    with np.errstate(over="ignore", invalid="ignore"):
        for epoch in range(epochs):
            batches = epoch_batches(n, batch_size, seed, epoch)
            model.sync()
            t0 = time.perf_counter()
            losses = model.train_epoch(X, Y, batches, lr)
            model.sync()
            dt = time.perf_counter() - t0
            losses = np.asarray(losses, dtype=np.float64)
            check_losses(losses, epoch)
            sizes = np.array([len(b) for b in batches])
            result.epoch_seconds.append(dt)
            result.samples_per_second.append(n / dt)
            result.train_loss.append(float(np.sum(losses * sizes) / n))
            result.test_accuracy.append(evaluate(model.weights(), x_test, y_test, activation))
            if on_epoch:
                on_epoch(result, epoch)
    result.machine_state = guard.finish()
    return result
