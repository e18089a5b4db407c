"""The `torch-ddp` tier: the torch-cpu network split across W processes with
DistributedDataParallel (gloo on the CPU; NCCL, one GPU per rank, for torch-ddp-cuda).

What changed from `torch-cpu`: each global mini-batch of the shared order is split across W
worker processes; each computes its part, DDP all-reduces (averages) the gradients, every
rank takes the same SGD step. The workers are started once per model (torch.multiprocessing,
spawn) with cores // W threads each, hold the dataset in shared memory, and keep one process
group for the model's life; `close()` (or garbage collection, or interpreter exit) tears it
down.

The split rule, for a global batch of B sample indices (B >= 1) and W ranks:
    rank r takes np.array_split(batch, W)[r]: the first B % W ranks get ceil(B / W)
    samples, the others floor(B / W); a rank may get none (B < W), and still joins the
    all-reduce with zero gradients.
Rank r's loss is (W / B) * sum of its samples' cross-entropies, so DDP's average over the W
ranks is (1 / B) * the sum over the whole batch: every update equals single-process SGD on
the global batch, for even and uneven splits and for the last partial batch alike.

Errors: a worker that raises (or dies) makes the parent raise RuntimeError naming the rank
and the error within a second or so; every worker is then terminated, none is orphaned (they
also die with their parent: PR_SET_PDEATHSIG). The rendezvous store listens on a port the
OS picks, so a busy default port (29500) does not matter.
"""

import atexit
import contextlib
import datetime
import signal
import threading
import time
import traceback
import weakref
from multiprocessing.connection import wait

import numpy as np

from implementations import settings
from implementations.allreduce import gradient_bytes
from implementations.formats import numpy_dtype
from implementations.models.base import Model
from implementations.models.torch_nn import to_numpy
from implementations.validation import check_activation

HOST = "127.0.0.1"
TIMEOUT = datetime.timedelta(seconds=120)
REPLY_POLL_SECONDS = 0.5


# --- the worker process ------------------------------------------------------------------

def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies (no orphan blocked in a collective)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _CommTimer:
    """State of the timed all-reduce hook: wall seconds from each bucket's hand-off to the
    completion of its all-reduce, summed (what the rank waits on, imbalance included)."""

    def __init__(self, world: int):
        self.world = world
        self.seconds = 0.0


def _timed_allreduce(state: _CommTimer, bucket):
    """DDP's default all-reduce hook (divide by W, sum over ranks), with a timer around it."""
    import torch.distributed as dist

    t0 = time.perf_counter()
    buffer = bucket.buffer().div_(state.world)
    fut = dist.all_reduce(buffer, async_op=True).get_future()

    def done(f):
        state.seconds += time.perf_counter() - t0
        return f.value()[0]

    return fut.then(done)


class _Rank:
    """One worker's replica: module, DDP wrapper, optimizer and its share of each batch."""

    def __init__(self, rank, world, params, activation, device, dtype="float32"):
        import torch
        from torch.nn.parallel import DistributedDataParallel as DDP

        from implementations.models.torch_nn import MLP, Precision

        self.rank, self.world = rank, world
        self.device = torch.device(f"cuda:{rank}" if device == "cuda" else "cpu")
        self.precision = Precision(dtype, self.device.type)
        d, h = np.shape(params["W1"])
        self.module = MLP(d, h, np.shape(params["W2"])[1], activation).to(
            self.device, self.precision.param_dtype)
        self.load_weights(params)
        ids = [rank] if device == "cuda" else None
        self.ddp = DDP(self.module, device_ids=ids)
        self.comm = _CommTimer(world)
        self.ddp.register_comm_hook(self.comm, _timed_allreduce)
        self.optimizer = torch.optim.SGD(self.module.parameters(), lr=0.1)
        self.X = self.Y = None
        self.steps = 0

    def load_weights(self, params):
        import torch

        m = self.module
        with torch.no_grad():
            for p, name in ((m.fc1.weight, "W1"), (m.fc1.bias, "b1"), (m.fc2.weight, "W2"),
                            (m.fc2.bias, "b2")):
                value = torch.as_tensor(np.asarray(params[name], self.precision.numpy_dtype))
                p.copy_(value.T if name.startswith("W") else value)

    def weights(self):
        """W1 (D, H), b1 (H,), W2 (H, K), b2 (K,) as NumPy copies (in the parameters'
        dtype: float64 for float64, else float32)."""
        m = self.module
        return {name: to_numpy(t) for name, t in
                (("W1", m.fc1.weight.T), ("b1", m.fc1.bias), ("W2", m.fc2.weight.T),
                 ("b2", m.fc2.bias))}

    def data(self, X, Y):
        self.X, self.Y = X.to(self.device, self.precision.param_dtype), Y.to(self.device)

    def part(self, batch):
        import torch

        mine = np.array_split(np.asarray(batch, np.int64), self.world)[self.rank]
        i = torch.from_numpy(mine).to(self.device)
        return self.X[i], self.Y[i]

    def step(self, batch, lr, fault=None, timed=False):
        """One DDP step on this rank's part of `batch`; returns (its loss sum, phase times)."""
        import torch.nn.functional as F

        self.steps += 1
        if fault is not None and fault == (self.rank, self.steps):
            raise RuntimeError(f"injected fault at step {self.steps}")
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = self.part(batch)
        comm0, t0 = self.comm.seconds, time.perf_counter()
        with self.precision.autocast():
            loss_sum = F.cross_entropy(self.ddp(x), y, reduction="sum")
        t1 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=False)
        (loss_sum * (self.world / len(batch))).backward()
        t2 = time.perf_counter()
        self.optimizer.step()
        t3 = time.perf_counter()
        comm = self.comm.seconds - comm0
        phases = {"forward": t1 - t0, "backward": t2 - t1 - comm, "allreduce": comm,
                  "optimizer": t3 - t2} if timed else None
        return float(loss_sum.detach()), phases

    def epoch(self, order, batch_size, lr, fault=None):
        comm0 = self.comm.seconds
        sums = [self.step(order[s:s + batch_size], lr, fault)[0]
                for s in range(0, len(order), batch_size)]
        return sums, self.comm.seconds - comm0

    def forward(self, batch):
        import torch
        import torch.nn.functional as F

        x, y = self.part(batch)
        with torch.no_grad(), self.precision.autocast():
            logits = self.module(x)
            loss = float(F.cross_entropy(logits, y, reduction="sum"))
        return to_numpy(logits), loss, str(logits.dtype).removeprefix("torch.")

    def predict(self, x):
        import torch

        with torch.no_grad(), self.precision.autocast():
            x = torch.from_numpy(x).to(self.device, self.precision.param_dtype)
            return to_numpy(self.module(x))

    def allreduce_times(self, sizes, repeats):
        """Median seconds of one all-reduce of each size in bytes (float32 buffers)."""
        import torch
        import torch.distributed as dist

        out = []
        for nbytes in sizes:
            buf = torch.zeros(max(1, nbytes // 4), device=self.device)
            for _ in range(3):  # warm-up: connections and buffers set up
                dist.all_reduce(buf)
            times = []
            for _ in range(repeats):
                dist.barrier()
                t0 = time.perf_counter()
                dist.all_reduce(buf)
                times.append(time.perf_counter() - t0)
            out.append(float(np.median(times)))
        return out


def _worker(rank, world, port, device, conn):
    """A worker's life: take the model from the parent, join the process group, then serve
    the parent's commands. (The model comes through the pipe, not as a process argument:
    a large argument can block the parent's start() on a child that dies early.)"""
    _die_with_parent()
    # Ctrl-C reaches the whole process group: the parent alone answers it (it stops the
    # workers), so the ranks print no tracebacks of their own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        params, activation, threads, dtype = conn.recv()
        import torch
        import torch.distributed as dist

        torch.set_num_threads(threads)
        store = dist.TCPStore(HOST, port, world + 1, False, timeout=TIMEOUT)
        dist.init_process_group("nccl" if device == "cuda" else "gloo", store=store,
                                rank=rank, world_size=world, timeout=TIMEOUT)
        replica = _Rank(rank, world, params, activation, device, dtype)
        conn.send(("ok", torch.get_num_threads()))
    except Exception:  # noqa: BLE001 - every failure goes back to the parent, named
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        try:
            cmd, args = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            break
        if cmd == "stop":
            break
        try:
            conn.send(("ok", getattr(replica, cmd)(*args)))
        except Exception:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))
            break
    with contextlib.suppress(Exception):
        dist.destroy_process_group()
    conn.close()


# --- the parent's model --------------------------------------------------------------------

@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored while a worker starts (a spawned child inherits the ignored signal,
    and Python keeps an inherited SIG_IGN), restored after; a no-op off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _shutdown(procs, conns) -> None:
    for c in conns:
        with contextlib.suppress(OSError, ValueError):
            c.send(("stop", ()))
    deadline = time.monotonic() + 5
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(2)
        if p.is_alive():
            p.kill()
            p.join(1)
    for c in conns:
        c.close()


class DDPModel(Model):
    """784 -> H -> 10 MLP trained by W DistributedDataParallel ranks (see the module doc).

    params: initial W1 (D, H), b1 (H,), W2 (H, K), b2 (K,); procs: W >= 1 worker processes;
    threads: per rank (default: the cores this process may use, divided by W, at least 1);
    device: "cpu" (gloo) or "cuda" (NCCL, rank r on cuda:r); fault: (rank, step) makes that
    rank raise at its step-th train step (to test the failure path).
    Data live in the workers: prepare() ships the dataset once (shared memory) and take()
    returns the batch's indices. weights() and predict() come from rank 0.
    """

    has_backward = False  # gradients exist only inside the ranks, all-reduced in backward

    def __init__(self, params, activation="relu", procs=2, threads=None, device="cpu",
                 fault=None, dtype="float32", name=None):
        super().__init__()
        import torch.distributed as dist
        import torch.multiprocessing as mp

        from implementations.threads import available_cores

        procs = settings.check("procs", procs)
        self.name = name or type(self).__name__  # the registry passes the tier's name
        self.activation = check_activation(activation)
        self.world = procs
        self.fault = fault
        self._numpy_dtype = numpy_dtype(dtype)
        threads = threads or max(1, available_cores() // procs)
        t_start = time.perf_counter()
        ctx = mp.get_context("spawn")
        self._store = dist.TCPStore(HOST, 0, procs + 1, True, timeout=TIMEOUT,
                                    wait_for_workers=False)
        self._procs, self._conns = [], []
        for rank in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, name=f"{name}-rank{rank}", daemon=True,
                            args=(rank, procs, self._store.port, device, child))
            with _sigint_ignored():  # inherited by the spawned interpreter from its start
                p.start()
            child.close()
            self._procs.append(p)
            self._conns.append(parent)
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns)
        atexit.register(self._finalizer)
        init = ({k: np.asarray(v, self._numpy_dtype) for k, v in params.items()}, activation,
                threads, dtype)
        for conn in self._conns:
            with contextlib.suppress(OSError):  # a dead worker is reported by _replies
                conn.send(init)
        ran = self._replies(range(procs))
        self.startup_seconds = time.perf_counter() - t_start
        d, h = np.shape(params["W1"])
        self.grad_bytes = gradient_bytes(d, h, np.shape(params["W2"])[1])
        self.options = {"procs": procs, "threads_per_proc": ran[0],
                        "backend": "nccl" if device == "cuda" else "gloo"}
        self._logits = None
        self.allreduce_seconds = 0.0  # summed over the epochs run, as seen by rank 0

    # -- talking to the ranks ------------------------------------------------------------
    def _send(self, ranks, cmd, *args):
        for r in ranks:
            self._conns[r].send((cmd, args))
        return self._replies(ranks)

    def _replies(self, ranks):
        """One reply from each rank, in rank order; RuntimeError naming the first rank that
        failed or died (after every worker has been stopped)."""
        ranks = list(ranks)
        pending = {self._conns[r]: r for r in ranks}
        sentinels = {self._procs[r].sentinel: r for r in ranks}
        out = {}
        while pending:
            ready = wait(list(pending) + list(sentinels), timeout=REPLY_POLL_SECONDS)
            for obj in ready:
                if obj in pending:
                    r = pending.pop(obj)
                    try:
                        status, value = obj.recv()
                    except (EOFError, OSError):
                        self._procs[r].join(1)
                        self._fail(r, self._ended(r))
                    if status == "error":
                        self._fail(r, value.strip().splitlines()[-1], value)
                    out[r] = value
                    sentinels = {s: q for s, q in sentinels.items() if q != r}
                elif obj in sentinels and sentinels[obj] in pending.values():
                    r = sentinels[obj]
                    if not self._conns[r].poll():  # died without a reply
                        self._procs[r].join(1)
                        self._fail(r, self._ended(r))
        return [out[r] for r in ranks]

    def _ended(self, rank) -> str:
        return (f"its process ended (exit code {self._procs[rank].exitcode}). Workers are "
                f"started with spawn, which re-imports the main module: a script that builds "
                f"this model must guard its entry point with `if __name__ == '__main__':`")

    def _fail(self, rank, message, trace=""):
        self.close()
        detail = f"\n{trace}" if trace else ""
        raise RuntimeError(f"{self.name} rank {rank} of {self.world} failed: {message}{detail}")

    def close(self) -> None:
        """Stop the workers and destroy the process group (idempotent)."""
        self._finalizer()

    # -- the Model interface ---------------------------------------------------------------
    def prepare(self, x, y):
        import torch

        X = torch.from_numpy(np.ascontiguousarray(x, self._numpy_dtype)).share_memory_()
        Y = torch.from_numpy(np.asarray(y, np.int64)).share_memory_()
        self._send(range(self.world), "data", X, Y)
        return "resident-in-ranks", len(x)

    def take(self, X, Y, idx):
        return np.asarray(idx, np.int64), None

    def load_weights(self, params):
        self._send(range(self.world), "load_weights", params)

    def weights(self):
        (w,) = self._send([0], "weights")
        return w

    def forward(self, x, y=None):
        parts = self._send(range(self.world), "forward", x)
        self._logits = np.concatenate([p[0] for p in parts])
        self._computed_in = parts[0][2]
        return sum(p[1] for p in parts) / len(x)

    def logits(self):
        return self._logits.copy()

    def compute_dtype(self) -> str:
        """The dtype rank 0's last forward produced ("bfloat16" under autocast)."""
        return self._computed_in

    def train_step(self, x, y, lr):
        timed = self.clock is not None and hasattr(self.clock, "add")
        parts = self._send(range(self.world), "step", x, float(lr), self.fault, timed)
        if timed:
            for phase, seconds in parts[0][1].items():  # rank 0's view
                self.clock.add(phase, seconds)
        return sum(p[0] for p in parts) / len(x)

    def train_epoch(self, X, Y, batches, lr):
        order = np.concatenate(batches)
        batch_size = len(batches[0])
        if any(len(b) != batch_size for b in batches[:-1]):
            raise ValueError("the DDP epoch takes equal batches with only the last partial")
        parts = self._send(range(self.world), "epoch", order, batch_size, float(lr),
                           self.fault)
        sums = np.sum([p[0] for p in parts], axis=0)
        self.allreduce_seconds += parts[0][1]
        return sums / np.array([len(b) for b in batches])

    def predict(self, x):
        (logits,) = self._send([0], "predict", np.ascontiguousarray(x, self._numpy_dtype))
        return logits

    def allreduce_times(self, sizes=None, repeats=20):
        """{bytes: median seconds} of one all-reduce of each float32 buffer size (default:
        4 B to 4 MiB and this network's gradient), rank 0's view (for the alpha-beta model:
        t = alpha + bytes / bandwidth)."""
        sizes = sorted(sizes or {4, 4096, 65536, 1 << 18, 1 << 20, 4 << 20, self.grad_bytes})
        times = self._send(range(self.world), "allreduce_times", list(sizes), repeats)[0]
        return dict(zip(sizes, times))
