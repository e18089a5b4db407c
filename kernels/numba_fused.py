"""Tier `numba-fused`: the whole train step, and the whole epoch, in one compiled function.

What changed from `numba`: no Python between ops, and the work is split by hidden units.
A step runs `parts` slices of the hidden layer (one per thread; `pick` says how many) in two
parallel regions:

1. every part computes z1 = x @ W1 + b1 and a1 = act(z1) for its own hidden units (4 x 4
   tiles of dot products on weights stored transposed, W1t (H, D)), reading the batch's
   rows of X in place through the order (no gathered copy), then its share of the logits;
2. one thread sums the shares, runs softmax + cross-entropy with its gradient and updates
   b2;
3. every part computes dz1 for its own hidden units, then updates its own W2 columns and
   W1 rows with the SGD step fused into the weight gradient (4 rows of dW built in a
   part-private buffer, 4 samples per pass, subtracted at once: no dW is ever stored),
   prefetching its share of the next batch's rows of X as it goes.

Each thread thus reads and writes the same weight rows in both regions, and they stay in its
own core's cache from step to step; only the batch (read-only), the small logits and dz2
cross between cores. The epoch loop runs in compiled code too. kernels/README.md records
each step of this design with its measurements.

Every matmul is ours (the dot-product tiles come from kernels.numba_cpu), none is BLAS.

Dimension legend: N batch, D inputs, H hidden, K classes. C-contiguous float32 throughout, or
float64 throughout (--dtype float64: Numba specializes the same code per dtype).
"""

import math

import numba
import numpy as np
from numba import njit, prange

from kernels._jit import CACHE, FMA_REASSOC
from kernels.intrinsics import prefetch
from kernels.numba_cpu import PARALLEL_MIN_ROWS, dot_tile_4x4

# The helpers are inlined (Numba IR level) into the compiled entry points below, which are
# the only parallel functions here: their prange loops then belong to one compilation unit,
# which is what Numba's on-disk cache can reload safely (see numba_cpu.nt_kernel).
# The entry points use {"contract", "reassoc"} so the inlined dot products vectorize.

RELU, SIGMOID = 0, 1


@njit(inline="always")
def part_bounds(H, P, p):
    """Hidden units [h0, h1) of part p of P: contiguous, sizes differing by at most one."""
    return H * p // P, H * (p + 1) // P


@njit(inline="always")
def _bias_activation(z1, a1, b1, act, n, h0, h1):
    """z1[:n, h0:h1] += b1[h0:h1] and a1 = act(z1), row by row over contiguous hidden units
    (the activation test hoisted out of the loops, so each loop vectorizes)."""
    zero = z1.dtype.type(0.0)
    b = b1[h0:h1]
    for i in range(n):
        z, a = z1[i, h0:h1], a1[i, h0:h1]
        if act == RELU:
            for h in range(b.shape[0]):
                v = z[h] + b[h]
                z[h] = v
                a[h] = v if v > zero else zero
        else:
            for h in range(b.shape[0]):
                v = z[h] + b[h]
                z[h] = v
                if v >= 0:
                    a[h] = 1.0 / (1.0 + math.exp(-v))
                else:
                    e = math.exp(v)
                    a[h] = e / (1.0 + e)


@njit(inline="always")
def _hidden_part(X, rows, n, W1t, b1, act, z1, a1, h0, h1):
    """One part's share of the hidden layer, for hidden units h0:h1.

    z1[:n, h0:h1] = X[rows[:n]] @ W1t[h0:h1].T + b1[h0:h1] and a1 = act(z1) (4 x 2 tiles of
    dot products; bias and activation in one pass afterwards). X (S, D) read in place
    through rows (n,): no gathered copy. W1t (H, D); b1 (H,); z1, a1 (>= n, H).
    """
    for ib in range((n + 3) // 4):
        i0 = 4 * ib
        i1, i2, i3 = min(i0 + 1, n - 1), min(i0 + 2, n - 1), min(i0 + 3, n - 1)
        x0, x1, x2, x3 = X[rows[i0]], X[rows[i1]], X[rows[i2]], X[rows[i3]]
        for j0 in range(h0, h1, 4):
            j1, j2, j3 = min(j0 + 1, h1 - 1), min(j0 + 2, h1 - 1), min(j0 + 3, h1 - 1)
            s = dot_tile_4x4(x0, x1, x2, x3, W1t[j0], W1t[j1], W1t[j2], W1t[j3])
            z1[i0, j0], z1[i0, j1], z1[i0, j2], z1[i0, j3] = s[0], s[1], s[2], s[3]
            z1[i1, j0], z1[i1, j1], z1[i1, j2], z1[i1, j3] = s[4], s[5], s[6], s[7]
            z1[i2, j0], z1[i2, j1], z1[i2, j2], z1[i2, j3] = s[8], s[9], s[10], s[11]
            z1[i3, j0], z1[i3, j1], z1[i3, j2], z1[i3, j3] = s[12], s[13], s[14], s[15]
    _bias_activation(z1, a1, b1, act, n, h0, h1)


@njit(inline="always")
def _partial_logits(a1, W2t, n, zp, h0, h1):
    """zp[:n] = a1[:n, h0:h1] @ W2t[:, h0:h1].T: one part's share of the logits (K dot
    products over its hidden units per sample). a1 (>= n, H); W2t (K, H); zp (>= n, K)."""
    K = W2t.shape[0]
    for i in range(n):
        a = a1[i, h0:h1]
        for k in range(K):
            w = W2t[k, h0:h1]
            s = a1.dtype.type(0.0)
            for h in range(a.shape[0]):
                s += a[h] * w[h]
            zp[i, k] = s


@njit(inline="always")
def _forward_part(X, rows, n, W1t, b1, W2t, act, z1, a1, zp, h0, h1):
    """One part's share of the forward pass (region 1): its hidden units h0:h1, then its
    share of the logits zp (>= n, K)."""
    _hidden_part(X, rows, n, W1t, b1, act, z1, a1, h0, h1)
    _partial_logits(a1, W2t, n, zp, h0, h1)


@njit(inline="always")
def _softmax_ce(zp, P, n, b2, y, z2, dz2):
    """z2 = the parts' logits summed + b2, then softmax + mean cross-entropy and its gradient
    in one pass. zp (P, >= n, K) partial logits; b2 (K,); y (>= n,) labels; z2, dz2
    (>= n, K) overwritten (dz2 = (softmax - onehot) / n). Returns the mean loss."""
    K = b2.shape[0]
    inv_n = 1.0 / n
    loss = 0.0
    for i in range(n):
        m = -np.inf
        for k in range(K):
            s = b2[k]
            for p in range(P):
                s += zp[p, i, k]
            z2[i, k] = s
            m = max(m, s)
        tot = 0.0
        for k in range(K):
            e = math.exp(z2[i, k] - m)
            dz2[i, k] = e
            tot += e
        loss += math.log(tot) - (z2[i, y[i]] - m)
        scale = inv_n / tot
        for k in range(K):
            dz2[i, k] *= scale
        dz2[i, y[i]] -= inv_n
    return loss * inv_n


@njit(inline="always")
def _bias2_update(dz2, n, lr, b2):
    """b2 -= lr * dz2[:n].sum(0). dz2 (>= n, K); b2 (K,)."""
    for k in range(b2.shape[0]):
        gb = dz2.dtype.type(0.0)
        for i in range(n):
            gb += dz2[i, k]
        b2[k] -= lr * gb


@njit(inline="always")
def _prefetch_rows(X, nxt, i0, i1):
    """Prefetch every cache line of the rows nxt[i0:i1] of X (S, D): a share of the next
    batch, so its forward finds them in cache instead of waiting on DRAM."""
    line = max(1, 64 // X.itemsize)  # elements per 64-byte cache line
    for i in range(i0, i1):
        r = nxt[i]
        for c in range(0, X.shape[1], line):
            prefetch(X, r, c)


@njit(inline="always")
def _combine_rows(out, coeffs, M, count, h0, h1):
    """out = sum_j coeffs[j] * M[j, h0:h1] over j < count: axpys over contiguous columns.
    out (h1 - h0,); coeffs (>= count,); M (>= count, >= h1)."""
    m = h1 - h0
    for h in range(m):
        out[h] = out.dtype.type(0.0)
    for j in range(count):
        g, row = coeffs[j], M[j, h0:h1]
        for h in range(m):
            out[h] += g * row[h]


@njit(inline="always")
def _hidden_backward_part(dz2, W2t, z1, a1, act, dz1, n, h0, h1):
    """dz1[:n, h0:h1] = (dz2 @ W2t[:, h0:h1]) * act'(z1): K axpys per sample over the part's
    contiguous hidden units (dh never stored), W2 read before its update. dz2 (>= n, K);
    W2t (K, H); z1, a1, dz1 (>= n, H)."""
    zero = z1.dtype.type(0.0)
    m = h1 - h0
    for i in range(n):
        d, z, a = dz1[i, h0:h1], z1[i, h0:h1], a1[i, h0:h1]
        _combine_rows(d, dz2[i], W2t, W2t.shape[0], h0, h1)
        if act == RELU:
            for h in range(m):
                if z[h] <= 0:
                    d[h] = zero
        else:
            for h in range(m):
                s = a[h]
                d[h] *= s * (1 - s)


@njit(inline="always")
def _layer2_update_part(dz2, a1, lr, W2t, g2, n, h0, h1):
    """W2t[:, h0:h1] -= lr * dz2[:n].T @ a1[:n, h0:h1], each row of dW2 built in the part's
    buffer g2 (>= h1 - h0,) first. dz2 (>= n, K); a1 (>= n, H); W2t (K, H)."""
    m = h1 - h0
    g2 = g2[:m]
    for k in range(W2t.shape[0]):
        _combine_rows(g2, dz2[:, k], a1, n, h0, h1)
        w = W2t[k, h0:h1]
        for h in range(m):
            w[h] -= lr * g2[h]


@njit(inline="always")
def _layer1_update_part(dz1, X, rows, n, nxt, lr, W1t, b1, acc, h0, h1):
    """W1t[h0:h1] -= lr * dz1[:n, h0:h1].T @ X[rows[:n]] and b1[h0:h1] -= lr * dz1.sum(0),
    without storing dW: each 4 weight rows are built in the part's private acc (>= 4, D)
    buffer, 4 rows x 4 samples per pass (16 broadcast scalars, 4 loads of x, 16 FMAs per
    column against 4 loads and 4 stores of the buffer), and subtracted at once. Each block
    of 4 rows also prefetches its share of the next batch's rows nxt (m,), so those DRAM
    reads overlap the FMAs instead of stalling in one burst. dz1 (>= n, H); X (S, D); rows
    (n,); W1t (H, D)."""
    D = X.shape[1]
    zero = X.dtype.type(0.0)
    n4 = n - n % 4
    g0, g1, g2, g3 = acc[0], acc[1], acc[2], acc[3]
    blocks, m = (h1 - h0 + 3) // 4, nxt.shape[0]
    for r0 in range(h0, h1, 4):
        bi = (r0 - h0) // 4
        _prefetch_rows(X, nxt, bi * m // blocks, (bi + 1) * m // blocks)
        # a last partial block reads row h1-1 for its missing rows and never writes them back
        r1, r2, r3 = min(r0 + 1, h1 - 1), min(r0 + 2, h1 - 1), min(r0 + 3, h1 - 1)
        for c in range(D):
            g0[c] = g1[c] = g2[c] = g3[c] = zero
        for i in range(0, n4, 4):
            xa, xb, xc, xd = X[rows[i]], X[rows[i + 1]], X[rows[i + 2]], X[rows[i + 3]]
            da, db, dc, dd = dz1[i], dz1[i + 1], dz1[i + 2], dz1[i + 3]
            p0, p1, p2, p3 = da[r0], da[r1], da[r2], da[r3]
            q0, q1, q2, q3 = db[r0], db[r1], db[r2], db[r3]
            s0, s1, s2, s3 = dc[r0], dc[r1], dc[r2], dc[r3]
            t0, t1, t2, t3 = dd[r0], dd[r1], dd[r2], dd[r3]
            for c in range(D):
                u, v, s_, w = xa[c], xb[c], xc[c], xd[c]
                g0[c] += p0 * u + q0 * v + s0 * s_ + t0 * w
                g1[c] += p1 * u + q1 * v + s1 * s_ + t1 * w
                g2[c] += p2 * u + q2 * v + s2 * s_ + t2 * w
                g3[c] += p3 * u + q3 * v + s3 * s_ + t3 * w
        for i in range(n4, n):
            xa, da = X[rows[i]], dz1[i]
            p0, p1, p2, p3 = da[r0], da[r1], da[r2], da[r3]
            for c in range(D):
                u = xa[c]
                g0[c] += p0 * u
                g1[c] += p1 * u
                g2[c] += p2 * u
                g3[c] += p3 * u
        for q in range(min(4, h1 - r0)):
            w, a = W1t[r0 + q], acc[q]
            for c in range(D):
                w[c] -= lr * a[c]
            gb = zero
            for i in range(n):
                gb += dz1[i, r0 + q]
            b1[r0 + q] -= lr * gb


@njit(inline="always")
def _backward_part(X, rows, n, nxt, W1t, b1, W2t, act, z1, a1, dz2, dz1, acc, lr, h0, h1):
    """One part's share of the backward pass and the SGD update (region 2), for hidden
    units h0:h1: prefetch the next batch's rows nxt, then dz1, then the layer-2 and layer-1
    updates of this part's own weights (W2t columns, W1t rows), the latter prefetching the
    next batch's rows nxt as it goes. acc (>= 4, max(D, H))."""
    _hidden_backward_part(dz2, W2t, z1, a1, act, dz1, n, h0, h1)
    _layer2_update_part(dz2, a1, lr, W2t, acc[0], n, h0, h1)
    _layer1_update_part(dz1, X, rows, n, nxt, lr, W1t, b1, acc, h0, h1)


@njit(inline="always")
def step_buffers(N, H, K, D, P, dtype):
    """A step's work arrays: z1, a1, dz1 (N, H), z2, dz2 (N, K), the parts' partial logits
    zp (P, N, K) and their private weight-gradient rows acc (P, 4, max(D, H))."""
    return (np.empty((N, H), dtype), np.empty((N, H), dtype), np.empty((N, H), dtype),
            np.empty((N, K), dtype), np.empty((N, K), dtype), np.empty((P, N, K), dtype),
            np.empty((P, 5, max(D, H)), dtype))


@njit(inline="always")
def _parts(P, H):
    return max(1, min(P, H))


@njit(inline="always")
def _forward(X, rows, n, y, W1t, b1, W2t, b2, act, P, z1, a1, z2, dz2, zp):
    """The forward pass on X[rows[:n]]: region 1 (every part's hidden slice and partial
    logits), then the logits, softmax-CE and dz2 on one thread. Returns the mean loss."""
    H = W1t.shape[0]
    for p in prange(P):
        h0, h1 = part_bounds(H, P, p)
        _forward_part(X, rows, n, W1t, b1, W2t, act, z1, a1, zp[p], h0, h1)
    return _softmax_ce(zp, P, n, b2, y, z2, dz2)


@njit(inline="always")
def _train_step(X, rows, n, y, nxt, W1t, b1, W2t, b2, lr, act, P, bufs):
    """One fused SGD step on the samples X[rows[:n]], weights updated in place; returns the
    loss. Two parallel regions: the forward (split by hidden units), then, after the
    one-thread softmax-CE and b2 update, every part's backward and update of its own hidden
    units' weights (W1t rows, W2t columns), while prefetching the next batch nxt."""
    z1, a1, dz1, z2, dz2, zp, acc = bufs
    H = W1t.shape[0]
    loss = _forward(X, rows, n, y, W1t, b1, W2t, b2, act, P, z1, a1, z2, dz2, zp)
    _bias2_update(dz2, n, lr, b2)
    for p in prange(P):
        h0, h1 = part_bounds(H, P, p)
        _backward_part(X, rows, n, nxt[p::P], W1t, b1, W2t, act, z1, a1, dz2, dz1, acc[p], lr,
                       h0, h1)
    return loss


@njit(inline="always")
def _one_step(x, y, W1t, b1, W2t, b2, lr, act, P):
    N, D = x.shape
    H, K = W1t.shape[0], W2t.shape[0]
    P = _parts(P, H)
    rows = np.arange(N)
    bufs = step_buffers(N, H, K, D, P, x.dtype)
    return _train_step(x, rows, N, y, rows[:0], W1t, b1, W2t, b2, lr, act, P, bufs)


@njit(inline="always")
def _one_forward(x, y, W1t, b1, W2t, b2, act, z1, a1, z2, dz2, P):
    N = x.shape[0]
    P = _parts(P, W1t.shape[0])
    zp = np.empty((P, N, W2t.shape[0]), x.dtype)
    return _forward(x, np.arange(N), N, y, W1t, b1, W2t, b2, act, P, z1, a1, z2, dz2, zp)


@njit(inline="always")
def _train_epoch(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses, P):
    S, D = order.shape[0], X.shape[1]  # the epoch is the order, which may not cover all of X
    H, K = W1t.shape[0], W2t.shape[0]
    P = _parts(P, H)
    bufs = step_buffers(batch_size, H, K, D, P, X.dtype)
    yb = np.empty(batch_size, np.int64)
    step = 0
    for start in range(0, S, batch_size):
        n = min(batch_size, S - start)
        rows = order[start:start + n]
        for i in range(n):
            yb[i] = Y[rows[i]]
        nxt = order[start + n:min(start + n + batch_size, S)]
        losses[step] = _train_step(X, rows, n, yb, nxt, W1t, b1, W2t, b2, lr, act, P, bufs)
        step += 1


# The compiled entry points, each in a threaded and a serial build (separate functions, so
# their on-disk cache entries never mix). Below numba_cpu.PARALLEL_MIN_ROWS samples a thread
# hand-off costs more than the work it shares: callers pick with `pick(n)`.


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def train_step(x, y, W1t, b1, W2t, b2, lr, act, parts):
    """One fused SGD step on a batch, weights updated in place; returns the loss.

    x (N, D) float32 or float64; y (N,) int64; W1t (H, D); b1 (H,); W2t (K, H); b2 (K,);
    act RELU/SIGMOID; parts: hidden-unit slices (the threads, from `pick`; clamped to H).
    """
    return _one_step(x, y, W1t, b1, W2t, b2, lr, act, parts)


@njit(fastmath=FMA_REASSOC, cache=CACHE)
def train_step_serial(x, y, W1t, b1, W2t, b2, lr, act, parts):
    """train_step on one thread (its parts run one after another)."""
    return _one_step(x, y, W1t, b1, W2t, b2, lr, act, parts)


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def forward(x, y, W1t, b1, W2t, b2, act, z1, a1, z2, dz2, parts):
    """The fused forward alone: hidden layer, then output + softmax-CE. Returns the loss;
    z1, a1 (N, H), z2, dz2 (N, K) overwritten."""
    return _one_forward(x, y, W1t, b1, W2t, b2, act, z1, a1, z2, dz2, parts)


@njit(fastmath=FMA_REASSOC, cache=CACHE)
def forward_serial(x, y, W1t, b1, W2t, b2, act, z1, a1, z2, dz2, parts):
    """forward on one thread."""
    return _one_forward(x, y, W1t, b1, W2t, b2, act, z1, a1, z2, dz2, parts)


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def train_epoch(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses, parts):
    """One epoch in compiled code: batches are consecutive slices of `order`, the last one
    partial, exactly like implementations.experiment.epoch_batches.

    X (S, D) float32 or float64; Y (S,) int64; order (M,) sample indices, M <= S (a
    permutation of range(S) for a full epoch); losses (ceil(M/B),) overwritten; parts as
    in train_step.
    """
    _train_epoch(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses,
                 parts)


@njit(fastmath=FMA_REASSOC, cache=CACHE)
def train_epoch_serial(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses, parts):
    """train_epoch on one thread."""
    _train_epoch(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses, parts)


def pick(n: int):
    """The entry points (train_step, forward, train_epoch) for batches of n samples, and the
    `parts` to pass them: the threaded build with one hidden-unit slice per Numba thread, or
    the serial build with one slice."""
    if n >= PARALLEL_MIN_ROWS:
        return train_step, forward, train_epoch, numba.get_num_threads()
    return train_step_serial, forward_serial, train_epoch_serial, 1
