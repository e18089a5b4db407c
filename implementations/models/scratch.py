"""The from-scratch MLP, built over any kernels module (loops, vectorized, numba_cpu).

The network is driven op by op from Python; the kernels module decides how each op runs.
"""

import numpy as np

from implementations.models.base import PARAM_NAMES, Model
from implementations.validation import check_activation


class ScratchMLP(Model):
    """784 -> H -> 10 MLP over `kernels`, a module exporting the kernel contract.

    params: initial W1 (D, H), b1 (H,), W2 (H, K), b2 (K,) (copied into the tier's form).
    dtype: float type of the math (float32 for the tiers; float64 for the oracle).
    """

    def __init__(self, kernels, params, activation="relu", dtype=np.float32, name="scratch"):
        super().__init__()
        self.k = kernels
        self.name = name
        self.dtype = dtype
        self.activation = check_activation(activation)
        self.act_forward = getattr(kernels, f"{activation}_forward")
        self.act_backward = getattr(kernels, f"{activation}_backward")
        self.load_weights(params)
        self.g: dict = {}
        self.cache: tuple = ()

    def load_weights(self, params):
        self.p = {n: self.k.from_numpy(np.array(params[n], dtype=self.dtype))
                  for n in PARAM_NAMES}

    def prepare(self, x, y):
        return np.ascontiguousarray(x, dtype=self.dtype), np.asarray(y, dtype=np.int64)

    def take(self, X, Y, idx):
        return self.k.from_numpy(X[idx]), Y[idx]

    def forward(self, x, y):
        k, p, clock = self.k, self.p, self.clock
        with clock("forward/linear1"):
            z1 = k.linear_forward(x, p["W1"], p["b1"])
        with clock("forward/activation"):
            a1 = self.act_forward(z1)
        with clock("forward/linear2"):
            z2 = k.linear_forward(a1, p["W2"], p["b2"])
        with clock("forward/softmax_ce"):
            loss, dz2 = k.softmax_cross_entropy(z2, y)
        self.cache = (x, z1, a1, z2, dz2)
        return loss

    def backward(self):
        k, p, clock = self.k, self.p, self.clock
        x, z1, a1, _, dz2 = self.cache
        with clock("backward/linear2"):
            da1, dW2, db2 = k.linear_backward(dz2, a1, p["W2"])
        with clock("backward/activation"):
            dz1 = self.act_backward(da1, a1 if self.activation == "sigmoid" else z1)
        with clock("backward/linear1"):
            _, dW1, db1 = k.linear_backward(dz1, x, p["W1"], need_dx=False)
        self.g = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    def update(self, lr):
        with self.clock("update"):
            for n in PARAM_NAMES:
                self.k.sgd_update(self.p[n], self.g[n], lr)

    def predict(self, x):
        X, _ = self.prepare(x, np.zeros(0, dtype=np.int64))
        k, p = self.k, self.p
        a1 = self.act_forward(k.linear_forward(k.from_numpy(X), p["W1"], p["b1"]))
        return np.asarray(k.to_numpy(k.linear_forward(a1, p["W2"], p["b2"])))

    def weights(self):
        return {n: np.array(self.k.to_numpy(self.p[n])) for n in PARAM_NAMES}

    def gradients(self):
        return {f"d{n}": np.array(self.k.to_numpy(self.g[n])) for n in PARAM_NAMES}

    def logits(self):
        return np.array(self.k.to_numpy(self.cache[3]))
