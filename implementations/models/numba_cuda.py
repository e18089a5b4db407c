"""The Numba CUDA tiers' models: `numba-cuda` (op by op) and `numba-cuda-fused` (one kernel
per epoch). Both keep the dataset resident on the device and read losses back once per
epoch; weights and gradients are read back as NumPy arrays for the cross-tier checks.
"""

import numpy as np

from implementations.models.base import Model
from implementations.models.scratch import ScratchMLP
from implementations.validation import check_activation

# what one numba-cuda train step costs at launch level (bench/studies/gpu_floor.py's floor), counted
# by tests/cuda_checks.py: the batch gather, the forward (2 GEMMs, the activation,
# softmax-CE), the backward (3 GEMMs, 2 column sums, the activation's backward) and 4 SGD
# updates; and the device arrays those calls allocate (their outputs, the loss included)
LAUNCHES_PER_STEP = 15
ALLOCATIONS_PER_STEP = 13


class DeviceScalar:
    """A loss left on the device (a (1,) device array) until someone asks for its value."""

    def __init__(self, array):
        self.array = array

    def __float__(self) -> float:
        return float(self.array.copy_to_host()[0])


class CudaScratchMLP(ScratchMLP):
    """ScratchMLP over kernels.numba_cuda: every op is a kernel launch on device arrays.

    prepare() moves the dataset to the device once; take() gathers a batch there; an epoch
    uploads its order once and writes each step's loss into a device array.
    """

    def __init__(self, params, activation="relu", dtype="float32", name=None):
        from kernels import numba_cuda

        name = name or type(self).__name__  # the registry passes the tier's name
        if dtype != "float32":
            raise ValueError(f"tier {name!r} computes in float32 only, got {dtype}")
        super().__init__(numba_cuda, params, activation, np.float32, name)

    def prepare(self, x, y):
        return self.k.from_numpy(np.ascontiguousarray(x, np.float32)), self.k.from_numpy(y)

    def take(self, X, Y, idx):
        order = self.k.from_numpy(np.asarray(idx, np.int64))
        return self.k.gather(X, Y, order, 0, len(idx))

    def sync(self):
        self.k.cuda.synchronize()

    def forward(self, x, y):
        return DeviceScalar(super().forward(x, y))

    def train_epoch(self, X, Y, batches, lr):
        k = self.k
        order = k.from_numpy(np.concatenate(batches).astype(np.int64))
        losses = k.cuda.device_array(len(batches), np.float32)
        start = 0
        # frees are held back until the epoch ends: cuMemFree would wait for the device
        with k.cuda.defer_cleanup():
            for step, b in enumerate(batches):
                x, y = k.gather(X, Y, order, start, len(b))
                start += len(b)
                loss = self.train_step(x, y, lr)
                losses[step:step + 1].copy_to_device(loss.array)  # device to device
        return losses.copy_to_host().astype(np.float64)

    def predict(self, x):
        k, p = self.k, self.p
        X = k.from_numpy(np.ascontiguousarray(x, np.float32))
        a1 = self.act_forward(k.linear_forward(X, p["W1"], p["b1"]))
        return k.to_numpy(k.linear_forward(a1, p["W2"], p["b2"]))


class NumbaCudaFusedMLP(Model):
    """784 -> H -> 10 MLP whose epoch is one launch of kernels.numba_cuda_fused.

    Weights live on the device transposed (W1t (H, D), W2t (K, H)).
    A train step is the epoch kernel over one batch; the forward pass is the same kernel
    with only its forward phases (its `mask`). has_backward is False: the backward cannot
    run apart from the update, so checks compare the updated weights.
    """

    has_backward = False

    def __init__(self, params, activation="relu", dtype="float32", name=None, threads=None):
        from kernels import numba_cuda_fused as ncf
        from kernels._cuda import cuda

        if dtype != "float32":
            raise ValueError(f"{name or type(self).__name__} computes in float32 only, got "
                             f"{dtype}")
        self.f, self.cuda = ncf, cuda
        super().__init__()
        self.name = name or type(self).__name__  # the registry passes the tier's name
        self.activation = check_activation(activation)
        self.act = ncf.RELU if activation == "relu" else ncf.SIGMOID
        self.threads = threads or ncf.MAX_THREADS
        self._bufs: dict = {}
        self._step_loss = cuda.device_array(1, np.float32)
        self._last = None
        self.load_weights(params)

    # -- weights ---------------------------------------------------------------------------
    def load_weights(self, params):
        to = self.cuda.to_device
        self.W1t = to(np.ascontiguousarray(np.asarray(params["W1"], np.float32).T))
        self.b1 = to(np.ascontiguousarray(params["b1"], np.float32))
        self.W2t = to(np.ascontiguousarray(np.asarray(params["W2"], np.float32).T))
        self.b2 = to(np.ascontiguousarray(params["b2"], np.float32))

    def weights(self):
        return {"W1": self.W1t.copy_to_host().T.copy(), "b1": self.b1.copy_to_host(),
                "W2": self.W2t.copy_to_host().T.copy(), "b2": self.b2.copy_to_host()}

    # -- data --------------------------------------------------------------------------------
    def prepare(self, x, y):
        return (self.cuda.to_device(np.ascontiguousarray(x, np.float32)),
                self.cuda.to_device(np.asarray(y, np.int64)))

    def take(self, X, Y, idx):
        """The batch as ((X, order), Y): the kernel reads its rows through the order."""
        return (X, self.cuda.to_device(np.asarray(idx, np.int64))), Y

    def sync(self):
        self.cuda.synchronize()

    def _buffers(self, batch: int):
        """Work arrays for batches up to `batch` (grown on demand, kept between calls)."""
        H, K = self.W1t.shape[0], self.W2t.shape[0]
        if self._bufs.get("batch", 0) < batch or self._bufs.get("shape") != (H, K):
            da = self.cuda.device_array
            self._bufs = {"batch": batch, "shape": (H, K), "arrays": (
                da((batch, H), np.float32), da((batch, H), np.float32),
                da((batch, H), np.float32), da((batch, K), np.float32),
                da((batch, K), np.float32), da(batch, np.float32))}
        return self._bufs["arrays"]

    def _run(self, X, Y, order, count, batch, lr, mask, steps):
        # a one-step run (the per-pass benchmarks) reuses one loss slot, so no allocation
        # is timed with the step (its DeviceScalar holds the latest step's loss); an epoch
        # gets its own array, which it returns
        if steps == 1:
            losses = self._step_loss
        else:
            losses = self.cuda.device_array(steps, np.float32)
        bufs = self._buffers(batch)
        self.f.launch(X, Y, order, count, batch, self.W1t, self.b1, self.W2t, self.b2, lr,
                      self.act, bufs, losses, mask=mask, threads=self.threads)
        self._last = (bufs[3], count - (steps - 1) * batch)  # the last step's rows
        return losses

    # -- one step, one epoch ---------------------------------------------------------------
    def forward(self, x, y):
        (X, order), Y = x, y
        n = order.shape[0]
        with self.clock("fused_forward"):
            losses = self._run(X, Y, order, n, n, 0.0, self.f.FORWARD | self.f.OUTPUT, 1)
        return DeviceScalar(losses)

    def train_step(self, x, y, lr):
        (X, order), Y = x, y
        n = order.shape[0]
        with self.clock("fused_step"):
            return DeviceScalar(self._run(X, Y, order, n, n, lr, self.f.ALL, 1))

    def checked_train_step(self, x, y, lr):
        from implementations.validation import check_batch

        check_batch(x, y)
        X, Y = self.prepare(x, y)
        return float(self.train_step(*self.take(X, Y, np.arange(x.shape[0])), lr))

    def train_epoch(self, X, Y, batches, lr):
        batch = len(batches[0])
        if any(len(b) != batch for b in batches[:-1]) or len(batches[-1]) > batch:
            raise ValueError("the fused epoch takes equal batches with only the last one "
                             "smaller")
        order = self.cuda.to_device(np.concatenate(batches).astype(np.int64))
        count = order.shape[0]
        losses = self._run(X, Y, order, count, batch, lr, self.f.ALL, len(batches))
        return losses.copy_to_host().astype(np.float64)

    def phase_epoch(self, X, Y, batches, lr, mask) -> float:
        """One epoch with only the phases in `mask` (the syncs kept), weights restored:
        the phase-masked runs of the profile. Returns the seconds from launch to the
        device's finish (the order upload and the weight save and restore are outside)."""
        import time

        saved = self.weights()
        order = self.cuda.to_device(np.concatenate(batches).astype(np.int64))
        self.sync()
        t0 = time.perf_counter()
        self._run(X, Y, order, order.shape[0], len(batches[0]), lr, mask, len(batches))
        self.sync()
        seconds = time.perf_counter() - t0
        self.load_weights(saved)
        return seconds

    def phase_breakdown(self, X, Y, batches, lr) -> dict:
        """Where the fused epoch's time goes, from phase-masked epochs (every grid sync kept,
        weights restored after each): the syncs and launch alone, + layer 1, + the output
        layer and hidden backward, + the updates (the full epoch); each phase is the
        difference of consecutive masks, each mask the median of 3 runs after a warm one.
        Returns ms per step per phase, the full epoch's step time, and one grid sync's cost
        (us) from the syncs-only epoch (its launch spread over the steps)."""
        f = self.f
        masks = (("grid syncs + launch", 0), ("layer-1 forward + activation", f.FORWARD),
                 ("output layer + softmax-CE + hidden backward", f.FORWARD | f.OUTPUT),
                 ("weight updates + loss", f.ALL))
        steps = len(batches)
        ms = {}
        for name, mask in masks:
            self.phase_epoch(X, Y, batches, lr, mask)  # warm
            ms[name] = 1e3 * float(np.median([self.phase_epoch(X, Y, batches, lr, mask)
                                              for _ in range(3)])) / steps
        names = [n for n, _ in masks]
        phases = {names[0]: ms[names[0]]}
        for prev, cur in zip(names, names[1:]):
            phases[cur] = max(0.0, ms[cur] - ms[prev])
        return {"phases_ms": phases, "step_ms": ms[names[-1]],
                "instrumented_step_ms": ms[names[-1]],
                "handoff_us": 1e3 * ms[names[0]] / 2, "parallel_regions_per_step": 2,
                "parts": self.f.max_blocks(self.W1t.shape[0]), "threads": self.threads,
                "method": "phase-masked runs"}

    def predict(self, x):
        """Logits of x (N, 784), through the forward phases over every sample at once."""
        X, Y = self.prepare(x, np.zeros(x.shape[0], np.int64))
        self.forward(*self.take(X, Y, np.arange(x.shape[0])))
        return self.logits()

    def logits(self):
        z2, n = self._last
        return z2.copy_to_host()[:n].copy()

    def gradients(self):
        raise NotImplementedError("numba-cuda-fused never stores gradients (fused update)")

