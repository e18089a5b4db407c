"""Tier `numpy`: the loops vectorized over the batch with NumPy (BLAS matmuls, array expressions).

Called with float64 arrays this module is the oracle every other tier is checked against.

Dimension legend: N batch, D inputs, H hidden, K classes (a layer maps D -> H or H -> K).
Every function returns new arrays unless it says "in place"; dtypes follow the inputs.
"""

import numpy as np


def from_numpy(a):
    """Representation of this tier: the array itself (no copy)."""
    return a


def to_numpy(a):
    """Identity read-back."""
    return a


def linear_forward(x, W, b):
    """z = x @ W + b.

    x: (N, D) inputs; W: (D, H) weights; b: (H,) bias. Returns z (N, H).
    """
    z = x @ W
    z += b
    return z


def linear_backward(dz, x, W, need_dx=True):
    """Gradients of z = x @ W + b.

    dz: (N, H) upstream gradient; x: (N, D) layer input; W: (D, H) weights.
    Returns (dx (N, D) or None when need_dx is False, dW (D, H), db (H,)); all overwritten.
    """
    dW = x.T @ dz
    db = dz.sum(axis=0)
    dx = dz @ W.T if need_dx else None
    return dx, dW, db


def sigmoid_forward(z):
    """a = 1 / (1 + exp(-z)) without overflow warnings. z: (N, H). Returns a (N, H)."""
    # exp(-|z|) never overflows; the two branches are the same function.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def sigmoid_backward(da, a):
    """dz = da * a * (1 - a). da, a: (N, H). Returns dz (N, H)."""
    return da * a * (1 - a)


def relu_forward(z):
    """a = max(z, 0). z: (N, H). Returns a (N, H)."""
    return np.maximum(z, 0)


def relu_backward(da, z):
    """dz = da where z > 0 else 0. da, z: (N, H). Returns dz (N, H)."""
    return np.where(z > 0, da, 0).astype(da.dtype, copy=False)


def softmax_cross_entropy(logits, y):
    """Fused, max-stabilized softmax + mean cross-entropy.

    logits: (N, K); y: (N,) int labels in 0..K-1.
    Returns (loss: float, dlogits (N, K)) with dlogits = (softmax - onehot) / N.
    """
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = float(np.mean(np.log(s[:, 0]) - shifted[rows, y]))
    dlogits = e / (s * n)
    dlogits[rows, y] -= 1.0 / n
    return loss, dlogits.astype(logits.dtype, copy=False)


def sgd_update(param, grad, lr):
    """param -= lr * grad, in place. param, grad: any matching shape."""
    param -= param.dtype.type(lr) * grad
