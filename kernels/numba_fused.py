"""Tier `numba-fused`: the whole train step, and the whole epoch, in one compiled function.

What changed from `numba`: no Python between ops. Per batch: gather the shuffled samples,
z1 = x @ W1 with bias + activation fused into the same pass, z2 = a1 @ W2 + b2 with
softmax + cross-entropy + its gradient fused, dh = dlogits @ W2.T fused with the activation's
backward, and the SGD update fused into each weight gradient (a row of dW is built in a
thread-private buffer and subtracted at once, so no dW matrix is ever stored). The epoch loop
and the batch gather run in compiled code too.

Every matmul is ours (from kernels.numba_cpu), none is BLAS: the forward products use the
dot-product tile `matmul_nt` on weights stored transposed (W1t (H, D), W2t (K, H)), and the
weight gradients use the 2 x 4 axpy tile of `matmul_tn` with the update as epilogue.

Dimension legend: N batch, D inputs, H hidden, K classes. C-contiguous float32 throughout, or
float64 throughout (--dtype float64: Numba specializes the same code per dtype).
"""

import math

import numpy as np
from numba import njit, prange

from kernels._jit import CACHE, FMA_REASSOC
from kernels.numba_cpu import PARALLEL_MIN_ROWS, nt_kernel

# The helpers are inlined (Numba IR level) into the three compiled entry points below, which
# are the only parallel functions here: their prange loops then belong to one compilation
# unit, which is what Numba's on-disk cache can reload safely (see numba_cpu.nt_kernel).
# The entry points use {"contract", "reassoc"} so the inlined dot products vectorize.

RELU, SIGMOID = 0, 1


@njit(inline="always")
def _hidden_forward(x, W1t, b1, act, z1, a1):
    """z1 = x @ W1t.T + b1 and a1 = act(z1), overwritten. x (N, D); W1t (H, D); b1 (H,);
    z1, a1 (N, H). The bias and activation run in the same pass over z1."""
    nt_kernel(x, W1t, z1)
    N, H = z1.shape
    for n in range(N):
        for h in range(H):
            v = z1[n, h] + b1[h]
            z1[n, h] = v
            if act == RELU:
                a1[n, h] = v if v > 0 else z1.dtype.type(0.0)
            elif v >= 0:
                a1[n, h] = 1.0 / (1.0 + math.exp(-v))
            else:
                e = math.exp(v)
                a1[n, h] = e / (1.0 + e)


@njit(inline="always")
def _output_softmax_ce(a1, W2t, b2, y, z2, dz2):
    """z2 = a1 @ W2t.T + b2, then softmax + mean cross-entropy and its gradient in one pass.

    a1 (N, H); W2t (K, H); b2 (K,); y (N,) labels; z2, dz2 (N, K) overwritten
    (dz2 = (softmax - onehot) / N). Returns the mean loss.
    """
    N, H = a1.shape
    K = W2t.shape[0]
    inv_n = 1.0 / N
    loss = 0.0
    for n in range(N):
        m = -np.inf
        for k in range(K):
            s = b2[k]
            for h in range(H):
                s += a1[n, h] * W2t[k, h]
            z2[n, k] = s
            m = max(m, s)
        tot = 0.0
        for k in range(K):
            e = math.exp(z2[n, k] - m)
            dz2[n, k] = e
            tot += e
        loss += math.log(tot) - (z2[n, y[n]] - m)
        scale = inv_n / tot
        for k in range(K):
            dz2[n, k] *= scale
        dz2[n, y[n]] -= inv_n
    return loss * inv_n


@njit(inline="always")
def _hidden_backward(dz2, W2t, z1, a1, act, dz1):
    """dz1 = (dz2 @ W2t) * act'(z1), overwritten: dh never stored. dz2 (N, K); W2t (K, H);
    z1, a1, dz1 (N, H). Each dh row is built as K axpys over contiguous rows of W2t
    (vectorized over H), then scaled by the activation's derivative in the same row."""
    N, H = z1.shape
    K = dz2.shape[1]
    for n in range(N):
        row = dz1[n]
        for h in range(H):
            row[h] = 0.0
        for k in range(K):
            g = dz2[n, k]
            w = W2t[k]
            for h in range(H):
                row[h] += g * w[h]
        if act == RELU:
            for h in range(H):
                if z1[n, h] <= 0:
                    row[h] = 0.0
        else:
            for h in range(H):
                s = a1[n, h]
                row[h] *= s * (1 - s)


@njit(inline="always")
def _sgd_tn(dz, x, lr, Wt, b):
    """Wt -= lr * dz.T @ x and b -= lr * dz.sum(0), in place, without storing dW.

    dz (N, R) output gradient; x (N, C) layer input; Wt (R, C) weights stored transposed;
    b (R,). Each task builds 4 rows of dW in a private (4, C) buffer and subtracts them at
    once. 4 rows x 2 samples per pass (8 broadcast scalars, 2 loads of x, 8 FMAs per column):
    the samples' rows are streamed from L2 once per 4 weight rows, not once per row, which
    took this product from ~177 to ~133 us at 64 x 128 x 784 (1-row version: 1 x 4 tile).
    """
    N, R = dz.shape
    C = x.shape[1]
    dzt = np.empty((R, N), dz.dtype)  # per-row scalars contiguous
    for n in range(N):
        for r in range(R):
            dzt[r, n] = dz[n, r]
    n2 = N - N % 2
    for rb in prange((R + 3) // 4):
        r0 = 4 * rb
        acc = np.zeros((4, C), x.dtype)
        g0, g1, g2, g3 = acc[0], acc[1], acc[2], acc[3]
        # a last partial block reads row R-1 for its missing rows and never writes them back
        d0, d1 = dzt[r0], dzt[min(r0 + 1, R - 1)]
        d2, d3 = dzt[min(r0 + 2, R - 1)], dzt[min(r0 + 3, R - 1)]
        for n in range(0, n2, 2):
            xa, xb = x[n], x[n + 1]
            p0, p1, p2, p3 = d0[n], d1[n], d2[n], d3[n]
            q0, q1, q2, q3 = d0[n + 1], d1[n + 1], d2[n + 1], d3[n + 1]
            for c in range(C):
                u, v = xa[c], xb[c]
                g0[c] += p0 * u + q0 * v
                g1[c] += p1 * u + q1 * v
                g2[c] += p2 * u + q2 * v
                g3[c] += p3 * u + q3 * v
        if n2 < N:
            xa = x[n2]
            p0, p1, p2, p3 = d0[n2], d1[n2], d2[n2], d3[n2]
            for c in range(C):
                u = xa[c]
                g0[c] += p0 * u
                g1[c] += p1 * u
                g2[c] += p2 * u
                g3[c] += p3 * u
        for i in range(min(4, R - r0)):
            w, a, d = Wt[r0 + i], acc[i], dzt[r0 + i]
            for c in range(C):
                w[c] -= lr * a[c]
            gb = dz.dtype.type(0.0)
            for n in range(N):
                gb += d[n]
            b[r0 + i] -= lr * gb


@njit(inline="always")
def step_buffers(x, H, K):
    """A step's work arrays in x's dtype: z1, a1 (N, H), z2, dz2 (N, K), dz1 (N, H)."""
    N = x.shape[0]
    return (np.empty((N, H), x.dtype), np.empty((N, H), x.dtype), np.empty((N, K), x.dtype),
            np.empty((N, K), x.dtype), np.empty((N, H), x.dtype))


@njit(inline="always")
def _train_step(x, y, W1t, b1, W2t, b2, lr, act):
    """One fused SGD step on a batch, weights updated in place; returns the loss.

    x (N, D) float32 or float64; y (N,) int64; W1t (H, D); b1 (H,); W2t (K, H); b2 (K,);
    act RELU/SIGMOID.
    """
    z1, a1, z2, dz2, dz1 = step_buffers(x, W1t.shape[0], W2t.shape[0])
    _hidden_forward(x, W1t, b1, act, z1, a1)
    loss = _output_softmax_ce(a1, W2t, b2, y, z2, dz2)
    _hidden_backward(dz2, W2t, z1, a1, act, dz1)  # reads W2 before its update
    _sgd_tn(dz2, a1, lr, W2t, b2)
    _sgd_tn(dz1, x, lr, W1t, b1)
    return loss


@njit(inline="always")
def _train_epoch(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses):
    S, D = order.shape[0], X.shape[1]  # the epoch is the order, which may not cover all of X
    xb = np.empty((batch_size, D), X.dtype)
    yb = np.empty(batch_size, np.int64)
    step = 0
    for start in range(0, S, batch_size):
        n = min(batch_size, S - start)
        for i in range(n):  # the shuffled gather, row by row
            src = order[start + i]
            xb[i] = X[src]
            yb[i] = Y[src]
        losses[step] = _train_step(xb[:n], yb[:n], W1t, b1, W2t, b2, lr, act)
        step += 1


# The compiled entry points, each in a threaded and a serial build (separate functions, so
# their on-disk cache entries never mix). Below numba_cpu.PARALLEL_MIN_ROWS samples a thread
# hand-off costs more than the work it shares: callers pick with `pick(n)`.


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def train_step(x, y, W1t, b1, W2t, b2, lr, act):
    """One fused SGD step on a batch, weights updated in place; returns the loss.

    x (N, D) float32 or float64; y (N,) int64; W1t (H, D); b1 (H,); W2t (K, H); b2 (K,);
    act RELU/SIGMOID.
    """
    return _train_step(x, y, W1t, b1, W2t, b2, lr, act)


@njit(fastmath=FMA_REASSOC, cache=CACHE)
def train_step_serial(x, y, W1t, b1, W2t, b2, lr, act):
    """train_step on one thread."""
    return _train_step(x, y, W1t, b1, W2t, b2, lr, act)


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def forward(x, y, W1t, b1, W2t, b2, act, z1, a1, z2, dz2):
    """The fused forward alone: hidden layer, then output + softmax-CE. Returns the loss;
    z1, a1 (N, H), z2, dz2 (N, K) overwritten."""
    _hidden_forward(x, W1t, b1, act, z1, a1)
    return _output_softmax_ce(a1, W2t, b2, y, z2, dz2)


@njit(fastmath=FMA_REASSOC, cache=CACHE)
def forward_serial(x, y, W1t, b1, W2t, b2, act, z1, a1, z2, dz2):
    """forward on one thread."""
    _hidden_forward(x, W1t, b1, act, z1, a1)
    return _output_softmax_ce(a1, W2t, b2, y, z2, dz2)


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def train_epoch(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses):
    """One epoch in compiled code: batches are consecutive slices of `order`, the last one
    partial, exactly like implementations.experiment.epoch_batches.

    X (S, D) float32 or float64; Y (S,) int64; order (M,) sample indices, M <= S (a
    permutation of range(S) for a full epoch); losses (ceil(M/B),) overwritten.
    """
    _train_epoch(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses)


@njit(fastmath=FMA_REASSOC, cache=CACHE)
def train_epoch_serial(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses):
    """train_epoch on one thread."""
    _train_epoch(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses)


def pick(n: int):
    """The entry points (train_step, forward, train_epoch) to use for batches of n samples."""
    if n >= PARALLEL_MIN_ROWS:
        return train_step, forward, train_epoch
    return train_step_serial, forward_serial, train_epoch_serial
