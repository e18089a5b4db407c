"""The `numba-fused` model: one compiled function per train step and per epoch."""

import warnings
from functools import cache

import numba
import numpy as np

from implementations.formats import numpy_dtype
from implementations.models.base import Model
from implementations.validation import check_activation
from kernels import numba_fused as nf


@cache
def warn_once(message: str) -> None:
    """A RuntimeWarning, once per process for each message."""
    warnings.warn(message, RuntimeWarning, stacklevel=3)


class NumbaFusedMLP(Model):
    """784 -> H -> 10 MLP whose step and epoch run in kernels.numba_fused.

    Weights are kept in the kernel's layout: W1 in panels of NB hidden units (W1p (P1, D,
    NB), kernels.numba_fused.pack_w1), W2 transposed and padded to the panels (W2p (K, Hp));
    weights() unpacks them. The fused step never materializes dW,
    so there is no separate backward (has_backward = False) and no gradients() read-back:
    checks compare the updated weights instead.
    """

    has_backward = False

    def __init__(self, params, activation="relu", dtype="float32", name=None):
        super().__init__()
        self.name = name or type(self).__name__  # the registry passes the tier's name
        self.dtype = np.dtype(numpy_dtype(dtype))
        self.activation = check_activation(activation)
        self.act = nf.RELU if activation == "relu" else nf.SIGMOID
        self.load_weights(params)
        self._last = None

    def load_weights(self, params):
        t = self.dtype
        self.W1p = nf.pack_w1(np.asarray(params["W1"], t), t)
        self.b1 = np.array(params["b1"], t)
        self.W2p = nf.pad_w2(np.asarray(params["W2"], t), t)
        self.b2 = np.array(params["b2"], t)

    def prepare(self, x, y):
        return np.ascontiguousarray(x, self.dtype), np.asarray(y, np.int64)

    def forward(self, x, y):
        n, (p1, _, nb), k = x.shape[0], self.W1p.shape, self.W2p.shape[0]
        z1, a1 = (nf.aligned_zeros((p1, n, nb), self.dtype) for _ in range(2))
        z2, dz2 = np.empty((n, k), self.dtype), np.empty((n, k), self.dtype)
        _, forward, _, parts = nf.pick(n)
        with self.clock("forward"):
            loss = forward(x, y, self.W1p, self.b1, self.W2p, self.b2, self.act, z1, a1, z2, dz2,
                           parts)
        self._last = z2
        return loss

    def train_step(self, x, y, lr):
        step, _, _, parts = nf.pick(x.shape[0])
        with self.clock("fused_step"):
            return step(x, y, self.W1p, self.b1, self.W2p, self.b2, self.dtype.type(lr),
                        self.act, parts)

    def train_epoch(self, X, Y, batches, lr):
        self._check_epoch(X, Y, batches)
        order = np.concatenate(batches)
        if order.min() < -len(X) or order.max() >= len(X):
            raise IndexError(f"batch indices must lie in -{len(X)}..{len(X) - 1} (X has "
                             f"{len(X)} samples), got {order.min()}..{order.max()}")
        batch_size = len(batches[0])
        losses = np.empty(len(batches), np.float64)
        _, _, epoch, parts = nf.pick(batch_size)
        one_region = epoch(X, Y, order, batch_size, self.W1p, self.b1, self.W2p, self.b2,
                           self.dtype.type(lr), self.act, losses, parts)
        if epoch is nf.train_epoch and not one_region:
            warn_once(f"numba-fused: the {parts} threads of Numba's {numba.threading_layer()} "
                      "threading layer did not all run at once, so its epochs run as two "
                      "parallel regions per step instead of one region, each after a 0.1 s "
                      "wait for them (slower; the same results)")
        return losses

    def _check_epoch(self, X, Y, batches) -> None:
        """The compiled epoch indexes without bounds checks: refuse, with the problem and the
        fix, what would read or write outside X, Y or its buffers or leave a loss unset (the
        batch indices are checked in train_epoch, on their concatenation)."""
        if not batches or any(len(b) == 0 for b in batches):
            raise ValueError("the fused epoch needs at least one batch and no empty batch")
        size = len(batches[0])
        if any(len(b) != size for b in batches[:-1]) or len(batches[-1]) > size:
            raise ValueError("the fused epoch takes equal batches with only the last partial")
        if not (isinstance(X, np.ndarray) and X.dtype == self.dtype and X.ndim == 2
                and X.flags.c_contiguous and X.shape[1] == self.W1p.shape[1]):
            raise TypeError(f"the fused epoch takes X as a C-contiguous {self.dtype} array "
                            f"(S, {self.W1p.shape[1]}), got {getattr(X, 'dtype', type(X))} "
                            f"{getattr(X, 'shape', '')}: pass model.prepare(X, Y)")
        if not (isinstance(Y, np.ndarray) and Y.dtype == np.int64 and Y.shape == X.shape[:1]):
            raise TypeError(f"the fused epoch takes Y as int64 ({X.shape[0]},) labels, got "
                            f"{getattr(Y, 'dtype', type(Y))} {getattr(Y, 'shape', '')}: pass "
                            "model.prepare(X, Y)")
        k = self.W2p.shape[0]
        if Y.size and (Y.min() < 0 or Y.max() >= k):
            raise ValueError(f"labels must lie in 0..{k - 1}, got min {Y.min()} max {Y.max()}")

    def predict(self, x):
        x = np.ascontiguousarray(x, self.dtype)
        self.forward(x, np.zeros(x.shape[0], np.int64))
        return self.logits()

    def weights(self):
        H = self.b1.shape[0]
        return {"W1": nf.unpack_w1(self.W1p, H), "b1": self.b1.copy(),
                "W2": self.W2p[:, :H].T.copy(), "b2": self.b2.copy()}

    def logits(self):
        return self._last.copy()

    def phase_breakdown(self, X, Y, batches, lr) -> dict:
        """Where the fused epoch's time goes, from the instrumented build
        (kernels.fused_phases), next to the production epoch on the same batches.

        Runs the production and the instrumented epoch alternately, 3 times each (weights
        restored after each); returns ms per step of each phase (the mean thread's, see
        fused_phases.phase_seconds) from the median instrumented run, the median production
        and instrumented step times, the measured hand-off of one empty parallel region
        (us), and the parts and threads.
        """
        import time

        import numba

        from kernels import fused_phases as fp

        saved = self.weights()
        order = np.concatenate(batches)
        batch_size = len(batches[0])
        steps = len(batches)
        _, _, epoch, parts = nf.pick(batch_size)
        parallel = epoch is nf.train_epoch
        entry = fp.train_epoch_phases if parallel else fp.train_epoch_phases_serial
        parts = max(1, min(parts, self.W1p.shape[0]))  # numba_fused._parts' clamp
        threads = min(parts, numba.get_num_threads()) if parallel else 1
        cycles = np.zeros((parts + 1, len(fp.PHASES)), np.int64)
        losses = np.empty(steps, np.float64)

        def instrumented():
            if not entry(X, Y, order, batch_size, self.W1p, self.b1, self.W2p, self.b2,
                         self.dtype.type(lr), self.act, losses, parts, cycles):
                raise RuntimeError(
                    f"{self.name}'s instrumented epoch needs its {parts} parts running at "
                    f"once, and Numba's {numba.threading_layer()} threading layer did not run "
                    "them so; set NUMBA_THREADING_LAYER=omp (or workqueue) to profile it")

        def production():
            self.train_epoch(X, Y, batches, lr)

        instrumented()  # compiles the instrumented build, untimed
        self.load_weights(saved)
        # both builds alternate, 3 runs each (a single run can land on a slow moment); the
        # phases are those of the median instrumented run
        runs: dict = {"production": [], "instrumented": []}
        kept = []
        for _ in range(3):
            for name, fn in (("production", production), ("instrumented", instrumented)):
                cycles[:] = 0
                t0 = time.perf_counter()
                fn()
                runs[name].append((time.perf_counter() - t0) / steps)
                self.load_weights(saved)
            kept.append(cycles.copy())
        cycles = kept[int(np.argsort(runs["instrumented"])[1])]
        production_s, instrumented_s = (float(np.median(runs[k])) for k in runs)
        seconds = fp.phase_seconds(cycles, threads, fp.cycles_per_second())
        return {"phases_ms": {p: 1e3 * s / steps for p, s in seconds.items()},
                "step_ms": 1e3 * production_s, "instrumented_step_ms": 1e3 * instrumented_s,
                "handoff_us": 1e6 * fp.handoff_seconds(),
                "parallel_regions_per_step": 0, "regions_per_epoch": 1 if parallel else 0,
                "barriers_per_step": nf.BARRIERS_PER_STEP if parallel else 0,
                "parts": parts, "threads": threads}
