"""Tier `loops`: pure Python lists and for-loops; no NumPy in the math. The baseline.

Arrays are lists of rows (a matrix (N, D) is a list of N lists of D floats), vectors are
lists. Written as a careful Python programmer would: row-major traversal, locals hoisted out of
inner loops, list comprehensions for the innermost axis.

Dimension legend: N batch, D inputs, H hidden, K classes (a layer maps D -> H or H -> K).
Every function returns new lists unless it says "in place".
"""

import math

import numpy as np


def from_numpy(a):
    """NumPy array -> nested Python lists of floats (the representation of this tier)."""
    return np.asarray(a, dtype=np.float64).tolist()


def to_numpy(a):
    """Nested lists -> float64 NumPy array (for checks and read-back)."""
    return np.asarray(a, dtype=np.float64)


def linear_forward(x, W, b):
    """z = x @ W + b.

    x: (N, D) inputs; W: (D, H) weights; b: (H,) bias. Returns z (N, H).
    """
    z = []
    for xn in x:
        row = list(b)
        for xv, Wd in zip(xn, W):
            # axpy over the contiguous row W[d]: row-major, no index arithmetic
            row = [r + xv * w for r, w in zip(row, Wd)]
        z.append(row)
    return z


def linear_backward(dz, x, W, need_dx=True):
    """Gradients of z = x @ W + b.

    dz: (N, H) upstream gradient; x: (N, D) layer input; W: (D, H) weights.
    Returns (dx (N, D) or None when need_dx is False, dW (D, H), db (H,)); all overwritten.
    """
    H = len(dz[0])
    D = len(x[0])
    dW = [[0.0] * H for _ in range(D)]
    db = [0.0] * H
    for xn, dzn in zip(x, dz):
        db = [a + g for a, g in zip(db, dzn)]
        for d in range(D):
            # dense, like every tier: skipping MNIST's ~80% zero pixels would change the
            # arithmetic being compared (and 0 * inf is NaN, not 0)
            xv = xn[d]
            dW[d] = [a + xv * g for a, g in zip(dW[d], dzn)]
    dx = None
    if need_dx:
        dx = [[sum(g * w for g, w in zip(dzn, Wd)) for Wd in W] for dzn in dz]
    return dx, dW, db


def sigmoid_forward(z):
    """a = 1 / (1 + exp(-z)), evaluated without overflow. z: (N, H). Returns a (N, H)."""
    exp = math.exp
    out = []
    for row in z:
        r = []
        for v in row:
            if v >= 0.0:
                r.append(1.0 / (1.0 + exp(-v)))
            else:
                e = exp(v)
                r.append(e / (1.0 + e))
        out.append(r)
    return out


def sigmoid_backward(da, a):
    """dz = da * a * (1 - a). da, a: (N, H). Returns dz (N, H)."""
    return [[g * s * (1.0 - s) for g, s in zip(gr, ar)] for gr, ar in zip(da, a)]


def relu_forward(z):
    """a = max(z, 0). z: (N, H). Returns a (N, H)."""
    return [[v if v > 0.0 else 0.0 for v in row] for row in z]


def relu_backward(da, z):
    """dz = da where z > 0 else 0. da, z: (N, H). Returns dz (N, H)."""
    return [[g if v > 0.0 else 0.0 for g, v in zip(gr, zr)] for gr, zr in zip(da, z)]


def softmax_cross_entropy(logits, y):
    """Fused, max-stabilized softmax + mean cross-entropy.

    logits: (N, K); y: (N,) int labels in 0..K-1.
    Returns (loss: float, dlogits (N, K)) with dlogits = (softmax - onehot) / N.
    """
    n = len(logits)
    exp, log = math.exp, math.log
    loss = 0.0
    dlogits = []
    for row, label in zip(logits, y):
        m = max(row)
        e = [exp(v - m) for v in row]
        s = sum(e)
        loss += log(s) - (row[label] - m)
        g = [v / (s * n) for v in e]
        g[label] -= 1.0 / n
        dlogits.append(g)
    return loss / n, dlogits


def sgd_update(param, grad, lr):
    """param -= lr * grad, in place. param, grad: (R, C) nested lists or (C,) lists."""
    if param and isinstance(param[0], list):
        for i, (p, g) in enumerate(zip(param, grad)):
            param[i] = [pv - lr * gv for pv, gv in zip(p, g)]
    else:
        param[:] = [pv - lr * gv for pv, gv in zip(param, grad)]
