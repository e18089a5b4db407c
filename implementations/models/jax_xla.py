"""The network in JAX, compiled by XLA: the peer a user would pick instead of hand fusion.

`jax`: a jitted train step (jax.value_and_grad + SGD, the parameters donated so XLA updates
them in place) called once per batch from Python: the framework's per-step dispatch cost,
the twin of torch-cpu. `jax-scan`: the whole epoch as one XLA program, lax.scan over the
full batches of the shared order and then the last partial batch, the twin of numba-fused's
epoch and torch-cuda-graph's epoch graph: can a compiler do what we did by hand?

Same function as every tier: x (N, 784) @ W1 (784, H) + b1, ReLU or sigmoid, @ W2 (H, 10)
+ b2, softmax cross-entropy (max-stabilized, jax.nn.log_softmax) averaged over the batch,
plain SGD. float32, and float64 with jax_enable_x64 (turned on here: without it JAX
silently computes float64 arrays in float32; float32 inputs stay float32). Compilation
happens in prepare_batches / prepare_epoch (AOT: jit(...).lower(...).compile()), before any
timing; a new shape (the last partial batch) compiles there, never inside a timed epoch.
Each model is pinned to one device: the CPU for `jax` and `jax-scan`, the first GPU for
`jax-cuda` and `jax-scan-cuda` (which need a jaxlib with CUDA; the CPU wheel has none), so
a result's device is the device that ran it.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from implementations.formats import numpy_dtype
from implementations.models.base import PARAM_NAMES, Model
from implementations.validation import check_activation

jax.config.update("jax_enable_x64", True)

ACTIVATIONS = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}


def _logits(params, x, act):
    """x (N, D) -> logits (N, K) of the 784 -> H -> 10 network."""
    h = ACTIVATIONS[act](x @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]


def _loss_and_logits(params, x, y, act, compute=None):
    """Mean softmax cross-entropy over the batch (y (N,) int labels) and the logits.

    compute: None (the parameters' own dtype) or "bfloat16": the matmuls and activations
    in bfloat16 from float32 master weights (autocast-style: the casts are inside the
    differentiated function, so the gradients reach the float32 weights), the
    log-softmax and the mean in float32."""
    if compute is not None:
        params = jax.tree_util.tree_map(lambda p: p.astype(compute), params)
        x = x.astype(compute)
    logits = _logits(params, x, act)
    logp = jax.nn.log_softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)),
                              axis=1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), logits


def _step(params, x, y, lr, act, compute=None):
    """One SGD step: (new params, loss of the batch before the update)."""
    (loss, _), grads = jax.value_and_grad(_loss_and_logits, has_aux=True)(params, x, y, act,
                                                                          compute)
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), loss


def _epoch(params, X, Y, full, tail, lr, act, compute=None):
    """full (S, B) and tail (r,) sample indices: S scanned steps, then the partial batch
    (r = 0: none). Returns (new params, the S (+1) losses in order)."""

    def body(p, idx):
        return _step(p, X[idx], Y[idx], lr, act, compute)

    params, losses = lax.scan(body, params, full)
    if tail.shape[0]:
        params, last = _step(params, X[tail], Y[tail], lr, act, compute)
        losses = jnp.concatenate([losses, last[None]])
    return params, losses


class JaxMLP(Model):
    """784 -> H -> 10 MLP in JAX; `scan`: train_epoch runs the epoch as one XLA program.

    params: initial W1 (D, H), b1 (H,), W2 (H, K), b2 (K,) NumPy arrays; dtype "float32"
    or "float64". No separate backward (has_backward False): value_and_grad and the update
    are one compiled step.
    """

    has_backward = False

    def __init__(self, params, activation="relu", dtype="float32", name=None, scan=False,
                 device="cpu"):
        super().__init__()
        # "cuda" (the registry's name for a GPU) is JAX's "gpu" platform
        self.device = jax.devices("gpu" if device == "cuda" else device)[0]
        self.name = name or type(self).__name__  # the registry passes the tier's name
        self.activation = check_activation(activation)
        self.dtype = np.dtype(numpy_dtype(dtype))  # the weights' (float32 for bfloat16)
        self.compute = "bfloat16" if dtype == "bfloat16" else None
        self.scan = scan
        self._step = jax.jit(_step, static_argnames=("act", "compute"), donate_argnums=0)
        self._forward = jax.jit(_loss_and_logits, static_argnames=("act", "compute"))
        self._epochs = {}  # (X shape, S, B, r) -> compiled epoch program
        self._last_logits = None
        self._lr_cache = (None, None)
        self.load_weights(params)

    # -- data -------------------------------------------------------------------------
    def prepare(self, x, y):
        return (jax.device_put(np.asarray(x, self.dtype), self.device),
                jax.device_put(np.asarray(y, np.int32), self.device))

    def take(self, X, Y, idx):
        with self.clock("gather"):  # the batch's rows, gathered on the device
            idx = jax.device_put(np.asarray(idx), self.device)
            return X[idx], Y[idx]

    def sync(self):
        jax.block_until_ready(self.params)

    def _lr(self, lr):
        """The learning rate on the model's device, transferred once per value (not on
        every step of the per-batch tier's timed loop)."""
        if self._lr_cache[0] != lr:
            self._lr_cache = (lr, jax.device_put(np.asarray(lr, self.dtype), self.device))
        return self._lr_cache[1]

    # -- one step ------------------------------------------------------------------------
    def forward(self, x, y):
        loss, self._last_logits = self._forward(self.params, x, y, act=self.activation,
                                                compute=self.compute)
        return loss

    def train_step(self, x, y, lr):
        with self.clock("fused_step"):  # value_and_grad + SGD: one compiled XLA program
            self.params, loss = self._step(self.params, x, y, self._lr(lr),
                                           act=self.activation, compute=self.compute)
        return loss

    # -- the epoch -------------------------------------------------------------------------
    @staticmethod
    def _layout(batches):
        """(full (S, B), tail (r,)) index arrays when every batch but the last has one size
        and the last is no larger; None otherwise (then the epoch loops over steps)."""
        sizes = {len(b) for b in batches[:-1]} or {len(batches[-1])}
        if len(sizes) != 1 or len(batches[-1]) > next(iter(sizes)):
            return None
        size = sizes.pop()
        full = [b for b in batches if len(b) == size]
        tail = batches[len(full):]
        return (np.asarray(full, np.int32).reshape(len(full), size),
                np.asarray(tail[0] if tail else [], np.int32))

    def _compiled_epoch(self, X, Y, full, tail, lr):
        key = (X.shape, full.shape, tail.shape)
        if key not in self._epochs:
            fn = jax.jit(_epoch, static_argnames=("act", "compute"), donate_argnums=0)
            full, tail = (jax.device_put(a, self.device) for a in (full, tail))
            self._epochs[key] = fn.lower(self.params, X, Y, full, tail, self._lr(lr),
                                         act=self.activation,
                                         compute=self.compute).compile()
        return self._epochs[key]

    def prepare_epoch(self, X, Y, batches, lr):
        if self.scan and batches:
            layout = self._layout(batches)
            if layout:
                self._compiled_epoch(X, Y, *layout, lr)

    def prepare_batches(self, batch_sizes, lr):
        for n in batch_sizes:  # the per-step program at each size (the jax tier's epoch)
            x = jax.device_put(np.zeros((n, self.params["W1"].shape[0]), self.dtype),
                               self.device)
            y = jax.device_put(np.zeros((n,), np.int32), self.device)
            self._step.lower(self.params, x, y, self._lr(lr), act=self.activation,
                             compute=self.compute).compile()

    def train_epoch(self, X, Y, batches, lr):
        layout = self._layout(batches) if self.scan and batches else None
        if layout is None:
            return super().train_epoch(X, Y, batches, lr)
        program = self._compiled_epoch(X, Y, *layout, lr)
        full, tail = (jax.device_put(a, self.device) for a in layout)
        self.params, losses = program(self.params, X, Y, full, tail, self._lr(lr))
        return np.asarray(losses, np.float64)

    # -- read-back ------------------------------------------------------------------------
    def predict(self, x):
        x = jax.device_put(np.asarray(x, self.dtype), self.device)
        y = jax.device_put(np.zeros(x.shape[0], np.int32), self.device)
        return np.asarray(self._forward(self.params, x, y, act=self.activation,
                                        compute=self.compute)[1], np.float32)

    def weights(self):
        return {k: np.array(self.params[k]) for k in PARAM_NAMES}

    def load_weights(self, params):
        self.params = {k: jax.device_put(np.array(params[k], self.dtype), self.device)
                       for k in PARAM_NAMES}

    def logits(self):
        return np.asarray(self._last_logits)  # bfloat16 stays bfloat16 (ml_dtypes)

    @property
    def options(self) -> dict:
        """What the training JSON records of how XLA ran (its device and platform)."""
        return {"xla_device": str(self.device), "xla_platform": self.device.platform}
