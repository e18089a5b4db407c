"""The interface every tier's model offers to the training loop, benchmarks and profiles."""

import numpy as np

from implementations.phases import NULL_CLOCK
from implementations.validation import check_batch

PARAM_NAMES = ("W1", "b1", "W2", "b2")


class Model:
    """One MLP 784 -> H -> 10 of some tier.

    Subclasses implement forward/backward/update/predict/weights/gradients on the tier's own
    data representation (`prepare` converts NumPy data once). Shapes: x (N, 784) float32,
    y (N,) int64; weights and gradients are read back as W1 (784, H), b1 (H,), W2 (H, 10),
    b2 (10,) NumPy arrays.
    """

    name = "?"
    has_backward = True  # False for fused tiers whose backward cannot run on its own

    def __init__(self):
        self.clock = NULL_CLOCK
        self.compile_seconds = 0.0

    # -- the tier's representation of data -------------------------------------------
    def prepare(self, x: np.ndarray, y: np.ndarray):
        """Whole dataset -> the tier's form (e.g. resident on a GPU). Returns (X, Y)."""
        return x, y

    def take(self, X, Y, idx: np.ndarray):
        """The batch `idx` of prepared data, in the tier's form."""
        return X[idx], Y[idx]

    def sync(self) -> None:
        """Wait for queued device work (no-op on the CPU)."""

    def prepare_batches(self, batch_sizes, lr: float) -> None:
        """Per-batch-size preparation (e.g. CUDA-graph capture) done before timing starts."""

    def prepare_epoch(self, X, Y, batches: list[np.ndarray], lr: float) -> None:
        """Preparation for epochs laid out like `batches` over the prepared X, Y (e.g. a
        whole-epoch CUDA graph captured), done before timing starts."""

    # -- one step -----------------------------------------------------------------------
    def forward(self, x, y) -> float:
        """Logits and loss of a batch; keeps what backward needs. Returns the loss."""
        raise NotImplementedError

    def backward(self) -> None:
        """Gradients of the last forward's loss."""
        raise NotImplementedError

    def update(self, lr: float) -> None:
        """SGD: every parameter -= lr * its gradient."""
        raise NotImplementedError

    def train_step(self, x, y, lr: float):
        """forward + backward + update on one batch; returns the loss (maybe a device scalar)."""
        loss = self.forward(x, y)
        self.backward()
        self.update(lr)
        return loss

    def train_epoch(self, X, Y, batches: list[np.ndarray], lr: float) -> np.ndarray:
        """One epoch over `batches` (index arrays, in order); returns per-step losses.

        The default loops over train_step; fused tiers may run the epoch in compiled code or
        one graph, consuming the same order.
        """
        losses = []
        for idx in batches:
            x, y = self.take(X, Y, idx)
            losses.append(self.train_step(x, y, lr))
        return np.array([float(v) for v in losses])

    # -- checked entry points for users ---------------------------------------------------
    def checked_train_step(self, x: np.ndarray, y: np.ndarray, lr: float) -> float:
        """train_step on NumPy input after validating it (clear errors on bad input)."""
        check_batch(x, y)
        X, Y = self.prepare(x, y)
        xb, yb = self.take(X, Y, np.arange(x.shape[0]))
        return float(self.train_step(xb, yb, lr))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, 10) as a NumPy array for NumPy input (N, 784)."""
        raise NotImplementedError

    def checked_predict(self, x: np.ndarray) -> np.ndarray:
        check_batch(x)
        return self.predict(x)

    # -- read-back for cross-tier checks ------------------------------------------------
    def weights(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def load_weights(self, params: dict[str, np.ndarray]) -> None:
        """Overwrite the parameters with W1 (784, H), b1, W2 (H, 10), b2 NumPy arrays."""
        raise NotImplementedError

    def gradients(self) -> dict[str, np.ndarray]:
        """dW1, db1, dW2, db2 of the last backward."""
        raise NotImplementedError

    def logits(self) -> np.ndarray:
        """Logits (N, 10) of the last forward."""
        raise NotImplementedError

    def compute_dtype(self) -> str:
        """The dtype the last forward computed in (what ran, not what was asked)."""
        return str(np.asarray(self.logits()).dtype)


def warm_up(model: Model, batch_sizes=(1, 64)) -> float:
    """Compile/warm a model outside any timed region; its weights are restored afterwards.

    Runs a train step, a prediction and a two-batch train_epoch (a full and a partial batch)
    on seeded throwaway data for each batch size (a tier may pick different code per size).
    Returns the seconds spent.
    """
    import time

    from implementations.checks import random_batch

    saved = model.weights()
    d, k = saved["W1"].shape[0], saved["W2"].shape[1]
    t0 = time.perf_counter()
    for n in batch_sizes:
        x, y = random_batch(n + 1, d, k, seed=n)
        X, Y = model.prepare(x, y)
        xb, yb = model.take(X, Y, np.arange(n))
        model.train_step(xb, yb, 1e-3)
        model.predict(x[:n])
        model.train_epoch(X, Y, [np.arange(n), np.array([n])], 1e-3)  # full + partial batch
    model.sync()
    model.load_weights(saved)
    return time.perf_counter() - t0
