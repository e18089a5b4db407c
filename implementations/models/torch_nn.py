"""The PyTorch tiers: nn.Module + nn.CrossEntropyLoss + torch.optim.SGD, the framework's way.

One class serves them all: eager on CPU, under torch.compile (on CPU, and on CUDA in mode
"reduce-overhead"), eager on CUDA with the data resident on the device, and on CUDA the
whole epoch captured as one CUDA graph and replayed (with a per-step graph for the
per-pass benchmarks).
"""

import contextlib

import numpy as np
import torch
from torch import nn

from implementations.formats import numpy_dtype
from implementations.models.base import Model
from implementations.validation import check_activation

LOADERS = ("resident", "dataloader")
COMPILE_MODE_NOTE = (
    "torch-cuda-compile uses mode 'reduce-overhead'. At batch 64 a train step is a few "
    "microseconds of GPU arithmetic behind tens of kernel launches, so what torch.compile "
    "can save is launches: 'reduce-overhead' replays Inductor's fused kernels as CUDA graphs "
    "(cudagraph trees), the default mode launches them one by one, and 'max-autotune' spends "
    "its effort tuning matmuls too small to gain. This is the expectation, not yet a "
    "measurement: bench/studies/compile_modes.py, run by bench/gpu_check.sh, times the step "
    "in each mode on the GPU and the choice stands or falls by it.")


class MLP(nn.Module):
    """784 -> H -> 10 with a sigmoid or ReLU hidden layer; returns logits (N, 10)."""

    def __init__(self, d, h, k, activation):
        super().__init__()
        self.fc1 = nn.Linear(d, h)
        self.act = nn.ReLU() if activation == "relu" else nn.Sigmoid()
        self.fc2 = nn.Linear(h, k)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


_NO_AUTOCAST = contextlib.nullcontext()  # reusable: no allocation per step


class Precision:
    """How a torch tier computes in a number format (implementations.formats): parameters
    and data in float64 for "float64", else float32 (the master weights); "bfloat16" and
    "float16" run forward and loss under torch.autocast, so matmuls take operands in that
    format; "tf32" lets CUDA matmuls round operands to TF32."""

    def __init__(self, name: str, device_type: str):
        self.name = name
        self.device_type = device_type
        self.param_dtype = torch.float64 if name == "float64" else torch.float32
        self.numpy_dtype = numpy_dtype(name)
        self.autocast_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(name)
        self.scaled = name == "float16"  # float16 gradients need a loss scaler

    def autocast(self):
        if self.autocast_dtype is None:
            return _NO_AUTOCAST
        # no weight-cast cache: a captured CUDA graph must redo the casts on every replay
        return torch.autocast(self.device_type, dtype=self.autocast_dtype, cache_enabled=False)


class TorchModel(Model):
    """The PyTorch MLP behind the torch-* tiers.

    device: "cpu" or "cuda"; compile: wrap the module in torch.compile: True on the CPU
    (default mode, dynamic shapes, so the last partial batch does not recompile), or a mode
    name on CUDA (static shapes: one compile per batch size; see COMPILE_MODE_NOTE); graph:
    capture each epoch as one CUDA graph (every batch's gather, forward, loss, backward and
    SGD step, its loss into a device buffer) and replay it, and each single train step as
    its own graph per batch size (the per-pass benchmarks); loader: "resident" (index
    tensors already on the device) or "dataloader" (torch.utils.data.DataLoader over a
    TensorDataset, same batches); tf32: allow TF32 matmuls on CUDA (off: agreement with the
    float32 oracle), the same as dtype="tf32"; dtype: the number format (see Precision).
    """

    def __init__(self, params, activation="relu", device="cpu", compile=False, graph=False,
                 loader="resident", tf32=False, dtype="float32", name="torch"):
        super().__init__()
        if loader not in LOADERS:
            raise ValueError(f"unknown loader {loader!r}; choose one of {', '.join(LOADERS)}")
        tf32 = bool(tf32) or dtype == "tf32"
        if tf32 and device != "cuda":
            raise ValueError("--tf32 applies to the CUDA tiers only")
        self.name = name
        self.activation = check_activation(activation)
        self.device = torch.device(device)
        self.loader = loader
        self.graph = graph
        self.precision = Precision(dtype, self.device.type)
        self.options = {"loader": loader, "tf32": tf32}  # the format: TrainResult.dtype
        if device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
            torch.backends.cudnn.allow_tf32 = bool(tf32)
        d, h = np.shape(params["W1"])
        k = np.shape(params["W2"])[1]
        self.module = MLP(d, h, k, activation).to(self.device, self.precision.param_dtype)
        self.load_weights(params)
        self.compile_mode = compile if isinstance(compile, str) else None
        if self.compile_mode:
            self.net = torch.compile(self.module, mode=self.compile_mode, dynamic=False)
        elif compile:
            self.net = torch.compile(self.module, dynamic=True)
        else:
            self.net = self.module
        self.criterion = nn.CrossEntropyLoss()
        self.lr = 0.1
        self.optimizer = torch.optim.SGD(self.module.parameters(), lr=self.lr)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision.scaled else None
        self._graphs: dict = {}
        self._logits = self._loss = None

    # -- weights -------------------------------------------------------------------------
    def _params(self):
        m = self.module
        return {"W1": m.fc1.weight, "b1": m.fc1.bias, "W2": m.fc2.weight, "b2": m.fc2.bias}

    def load_weights(self, params):
        """Copy in place (a captured CUDA graph keeps pointing at the same storage).
        nn.Linear stores weight as (out, in): the transpose of our W (in, out)."""
        with torch.no_grad():
            for name, p in self._params().items():
                value = torch.as_tensor(np.asarray(params[name], self.precision.numpy_dtype))
                p.copy_(value.T if name.startswith("W") else value)

    def weights(self):
        return {n: to_numpy(p.T if n.startswith("W") else p) for n, p in self._params().items()}

    def gradients(self):
        scale = float(self.scaler.get_scale()) if self.scaler else 1.0  # unscaled read-back
        return {f"d{n}": to_numpy(p.grad.T if n.startswith("W") else p.grad) / scale
                for n, p in self._params().items()}

    def logits(self):
        return to_numpy(self._logits)

    # -- data ------------------------------------------------------------------------------
    def prepare(self, x, y):
        X = torch.from_numpy(np.ascontiguousarray(x, self.precision.numpy_dtype))
        Y = torch.from_numpy(np.asarray(y, np.int64))
        if self.loader == "dataloader":
            return X, Y  # the DataLoader yields host batches, moved per step
        return X.to(self.device), Y.to(self.device)

    def take(self, X, Y, idx):
        i = torch.from_numpy(np.asarray(idx, np.int64)).to(X.device)
        return X[i].to(self.device), Y[i].to(self.device)

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    # -- one step ------------------------------------------------------------------------
    def forward(self, x, y):
        if self.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # a new iteration: earlier outputs
            # of the compiled graphs may be overwritten from here on
        with self.precision.autocast():
            with self.clock("forward"):
                self._logits = self.net(x)
            with self.clock("loss"):
                self._loss = self.criterion(self._logits, y)
        return self._loss.detach()

    def backward(self):
        with self.clock("backward"):
            # under CUDA-graph trees (reduce-overhead) a replay may reuse the memory the last
            # backward's gradients were stolen into: drop them instead of zeroing in place
            self.optimizer.zero_grad(set_to_none=self.compile_mode == "reduce-overhead")
            (self.scaler.scale(self._loss) if self.scaler else self._loss).backward()

    def update(self, lr):
        with self.clock("optimizer"):
            if lr != self.lr:
                self.lr = lr
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
            if self.scaler:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()

    def compute_dtype(self) -> str:
        """The dtype the last forward's matmuls produced ("bfloat16" under autocast)."""
        return str(self._logits.dtype).removeprefix("torch.")

    def train_step(self, x, y, lr):
        if self.graph:
            return self._replay(x, y, lr)
        return super().train_step(x, y, lr)

    def train_epoch(self, X, Y, batches, lr):
        if self.loader == "dataloader":
            return self._epoch_dataloader(X, Y, batches, lr)
        if self.graph:
            return self._epoch_replay(X, Y, batches, lr)
        order = torch.from_numpy(np.concatenate(batches)).to(self.device)
        losses = torch.empty(len(batches), device=self.device)
        start = 0
        for i, b in enumerate(batches):
            idx = order[start:start + len(b)]
            start += len(b)
            losses[i] = self.train_step(X[idx], Y[idx], lr)
        return losses.cpu().numpy()  # one synchronization per epoch

    def _epoch_dataloader(self, X, Y, batches, lr):
        from torch.utils.data import DataLoader, TensorDataset

        loader = DataLoader(TensorDataset(X, Y), batch_sampler=[b.tolist() for b in batches],
                            pin_memory=self.device.type == "cuda")
        losses = torch.empty(len(batches), device=self.device)
        for i, (x, y) in enumerate(loader):
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            losses[i] = self.train_step(x, y, lr)
        return losses.cpu().numpy()

    def predict(self, x):
        with torch.no_grad(), self.precision.autocast():
            X = torch.from_numpy(np.ascontiguousarray(x, self.precision.numpy_dtype))
            return to_numpy(self.net(X.to(self.device)))

    # -- CUDA graph ------------------------------------------------------------------------
    def prepare_batches(self, batch_sizes, lr):
        """Capture the graphs an epoch will need before timing starts (graph tier only)."""
        if not self.graph:
            return
        for n in sorted(set(batch_sizes)):
            self._graph_for(n, lr)

    def _graph_for(self, n, lr):
        key = (n, float(lr))
        if key in self._graphs:
            return self._graphs[key]
        d = self.module.fc1.in_features
        static_x = torch.zeros(n, d, device=self.device, dtype=self.precision.param_dtype)
        static_y = torch.zeros(n, dtype=torch.int64, device=self.device)
        saved = self.weights()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.lr = lr
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
            for _ in range(3):
                self.optimizer.zero_grad(set_to_none=True)
                with self.precision.autocast():
                    loss = self.criterion(self.module(static_x), static_y)
                loss.backward()
                self.optimizer.step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            with self.precision.autocast():
                static_logits = self.module(static_x)
                static_loss = self.criterion(static_logits, static_y)
            static_loss.backward()
            self.optimizer.step()
        self.load_weights(saved)  # the warm-up steps must not count as training
        self._graphs[key] = (graph, static_x, static_y, static_logits, static_loss)
        return self._graphs[key]

    def _replay(self, x, y, lr):
        graph, sx, sy, slogits, sloss = self._graph_for(x.shape[0], lr)
        with self.clock("graph_replay"):
            sx.copy_(x)
            sy.copy_(y)
            graph.replay()
        self._logits = slogits
        return sloss.detach().clone()


    def prepare_epoch(self, X, Y, batches, lr):
        """Capture the epoch graph for this batch layout before timing starts (graph tier,
        resident data)."""
        if self.graph and self.loader == "resident":
            self._epoch_graph_for(X, Y, tuple(len(b) for b in batches), lr)

    def _epoch_graph_for(self, X, Y, sizes: tuple, lr):
        """The epoch graph for batches of these sizes over the resident X, Y (captured on
        first use; a new X, batch layout or lr captures another)."""
        key = ("epoch", X.data_ptr(), Y.data_ptr(), sizes, float(lr))
        if key in self._graphs:
            return self._graphs[key]
        order = torch.zeros(sum(sizes), dtype=torch.int64, device=self.device)
        losses = torch.zeros(len(sizes), dtype=torch.float32, device=self.device)
        saved = self.weights()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.lr = lr

        offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()

        def steps(which):
            for i in which:
                idx = order[offsets[i]:offsets[i + 1]]
                self.optimizer.zero_grad(set_to_none=False)
                with self.precision.autocast():
                    loss = self.criterion(self.module(X.index_select(0, idx)),
                                          Y.index_select(0, idx))
                loss.backward()
                self.optimizer.step()
                losses[i].copy_(loss.detach())

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up, as capture requires (and gradients exist
            # after it): the first batches and the last, maybe partial, one
            steps(sorted({*range(min(3, len(sizes))), len(sizes) - 1}))
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            steps(range(len(sizes)))
        self.load_weights(saved)  # the warm-up steps must not count as training
        # the graph reads X, Y and writes these gradients by address: keep them alive with it
        grads = [p.grad for p in self.module.parameters()]
        self._graphs[key] = (graph, order, losses, (grads, X, Y))
        return self._graphs[key]

    def _epoch_replay(self, X, Y, batches, lr):
        """One epoch as one graph replay: the order goes to the static buffer first."""
        graph, order, losses, _ = self._epoch_graph_for(X, Y, tuple(len(b) for b in batches),
                                                        lr)
        with self.clock("graph_replay"):
            order.copy_(torch.from_numpy(np.concatenate(batches).astype(np.int64)))
            graph.replay()
        return losses.cpu().numpy().astype(np.float64)  # one synchronization per epoch


def to_numpy(t) -> np.ndarray:
    """A tensor as a NumPy copy (never a view of a live parameter): float64 stays float64,
    every other float type becomes float32."""
    t = t.detach().cpu()
    return (t.numpy() if t.dtype == torch.float64 else t.float().numpy()).copy()
