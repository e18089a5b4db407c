"""Tier `numba`: the loop algorithms compiled with Numba's @njit; our own matmuls, no BLAS.

What changed from `numpy`: every op is a compiled loop nest. The three matmul shapes of the
network get loop orders chosen for row-major data, unrolled over the reduction axis so each
output row is loaded and stored once per 4 products, and cache-blocked so a block of B rows
stays in L1 while it is reused. Large batches run row blocks in parallel with prange.

Dimension legend: N batch, D inputs, H hidden, K classes (a layer maps D -> H or H -> K).
Arrays are C-contiguous float32, or float64 (--dtype float64: the same kernels, which Numba
specializes per dtype; every literal and allocation takes the inputs' dtype). Every function
returns new arrays unless it says "in place".

fastmath: only {"contract"} (fused multiply-add) in the axpy-shaped matmuls, and
{"contract", "reassoc"} in the dot-product shaped one, where reassociating the sum is what lets
LLVM vectorize it. Both change rounding only at float32 epsilon level (checked in the tests);
no flag that assumes "no NaN/inf" is used, so bad values still propagate visibly.
"""

import math

import numpy as np
from numba import njit, prange

from kernels._jit import CACHE, FMA, FMA_REASSOC

ROW_BLOCK = 16  # rows of the output per parallel task: B's 4 reused rows stay in L1 for all 16
PARALLEL_MIN_ROWS = 32  # below this, a prange launch costs more than it saves


def from_numpy(a):
    """The tier's representation: a C-contiguous float64 array if given float64, else
    float32 (copied only if needed)."""
    a = np.asarray(a)
    return np.ascontiguousarray(a, dtype=np.float64 if a.dtype == np.float64 else np.float32)


def to_numpy(a):
    return a


# --- matmuls ------------------------------------------------------------------------
@njit(fastmath=FMA, cache=CACHE, inline="always")
def _rows_nn(A, B, out, i0, i1, accumulate):
    """out[i0:i1] (+)= A[i0:i1] @ B. A (M, Kr), B (Kr, Nc), out (M, Nc).

    Axpy order: out row += A[i, k] * B[k, :], the contiguous axis innermost (vectorized over
    j). A plain axpy loads and stores its out element once per FMA, which bounds it at a
    fraction of peak; here a 2 x 4 register tile (2 out rows, 4 B rows, 8 broadcast A values:
    14 of the 16 AVX2 registers) does 8 FMAs per 6 loads and 2 stores.
    """
    Kr, Nc = B.shape
    k4 = Kr - Kr % 4
    if not accumulate:
        for i in range(i0, i1):
            for j in range(Nc):
                out[i, j] = 0.0
    for k in range(0, k4, 4):  # k outside i: the 4 B rows are reused for every row of the block
        b0, b1, b2, b3 = B[k], B[k + 1], B[k + 2], B[k + 3]
        i = i0
        while i + 1 < i1:
            a00, a01, a02, a03 = A[i, k], A[i, k + 1], A[i, k + 2], A[i, k + 3]
            a10, a11, a12, a13 = A[i + 1, k], A[i + 1, k + 1], A[i + 1, k + 2], A[i + 1, k + 3]
            o0, o1 = out[i], out[i + 1]
            for j in range(Nc):
                c0, c1, c2, c3 = b0[j], b1[j], b2[j], b3[j]
                o0[j] += a00 * c0 + a01 * c1 + a02 * c2 + a03 * c3
                o1[j] += a10 * c0 + a11 * c1 + a12 * c2 + a13 * c3
            i += 2
        if i < i1:
            a00, a01, a02, a03 = A[i, k], A[i, k + 1], A[i, k + 2], A[i, k + 3]
            o0 = out[i]
            for j in range(Nc):
                o0[j] += a00 * b0[j] + a01 * b1[j] + a02 * b2[j] + a03 * b3[j]
    for k in range(k4, Kr):
        b0 = B[k]
        for i in range(i0, i1):
            a00 = A[i, k]
            o0 = out[i]
            for j in range(Nc):
                o0[j] += a00 * b0[j]


@njit(fastmath=FMA, cache=CACHE, parallel=True)
def _matmul_parallel(A, B, out, accumulate):
    M = A.shape[0]
    nblocks = (M + ROW_BLOCK - 1) // ROW_BLOCK
    for blk in prange(nblocks):
        _rows_nn(A, B, out, blk * ROW_BLOCK, min(M, (blk + 1) * ROW_BLOCK), accumulate)


@njit(fastmath=FMA, cache=CACHE)
def _matmul_serial(A, B, out, accumulate):
    M = A.shape[0]
    for i0 in range(0, M, ROW_BLOCK):
        _rows_nn(A, B, out, i0, min(M, i0 + ROW_BLOCK), accumulate)


def matmul(A, B, out=None):
    """out = A @ B with our own loops. A (M, Kr), B (Kr, Nc) -> out (M, Nc), overwritten."""
    if out is None:
        out = np.empty((A.shape[0], B.shape[1]), dtype=A.dtype)
    if A.shape[0] >= PARALLEL_MIN_ROWS:
        _matmul_parallel(A, B, out, False)
    else:
        _matmul_serial(A, B, out, False)
    return out


@njit(fastmath=FMA, cache=CACHE)
def _row_tn(A, B, o, r):
    """o = A[:, r] @ B: one row of A.T @ B. A (M, R), B (M, Nc), o (Nc,)."""
    for j in range(B.shape[1]):
        o[j] = 0.0
    for m in range(A.shape[0]):
        a = A[m, r]
        b = B[m]
        for j in range(B.shape[1]):
            o[j] += a * b[j]


@njit(fastmath=FMA, cache=CACHE, parallel=True)
def matmul_tn(A, B, out):
    """out = A.T @ B, overwritten. A (M, R), B (M, Nc) -> out (R, Nc).

    The weight-gradient shape (x.T @ dz). Pairs of out rows are split across threads (no two
    threads write one row); each pair is built with the same 2 x 4 register tile as `matmul`,
    the reduction running over the M samples.
    """
    M, R = A.shape
    Nc = B.shape[1]
    m4 = M - M % 4
    for rp in prange((R + 1) // 2):
        r = 2 * rp
        if r + 1 == R:  # odd R: the last row alone
            _row_tn(A, B, out[r], r)
            continue
        r1 = r + 1
        o0, o1 = out[r], out[r1]
        for j in range(Nc):
            o0[j] = 0.0
            o1[j] = 0.0
        for m in range(0, m4, 4):
            a00, a01, a02, a03 = A[m, r], A[m + 1, r], A[m + 2, r], A[m + 3, r]
            a10, a11, a12, a13 = A[m, r1], A[m + 1, r1], A[m + 2, r1], A[m + 3, r1]
            b0, b1, b2, b3 = B[m], B[m + 1], B[m + 2], B[m + 3]
            for j in range(Nc):
                c0, c1, c2, c3 = b0[j], b1[j], b2[j], b3[j]
                o0[j] += a00 * c0 + a01 * c1 + a02 * c2 + a03 * c3
                o1[j] += a10 * c0 + a11 * c1 + a12 * c2 + a13 * c3
        for m in range(m4, M):
            a00, a10 = A[m, r], A[m, r1]
            b0 = B[m]
            for j in range(Nc):
                o0[j] += a00 * b0[j]
                o1[j] += a10 * b0[j]
    return out


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def matmul_nt(A, B, out):
    """out = A @ B.T, overwritten. A (M, Kr), B (Nc, Kr) -> out (M, Nc). See nt_kernel."""
    nt_kernel(A, B, out)
    return out


@njit(inline="always")
def nt_kernel(A, B, out):
    """out = A @ B.T, overwritten. A (M, Kr), B (Nc, Kr) -> out (M, Nc).

    Inlined into its callers (Numba IR level) so that its prange becomes part of the caller's
    own parallel region: a cached function calling a separately compiled parallel function
    is not safe to load from Numba's cache (a segfault, seen here).

    Both operands are read along contiguous rows, so each output is a dot product; a 4 x 2
    register tile keeps 8 running sums (each vectorized by reassociating it), so every loaded
    vector feeds 2 or 4 FMAs. Tails reuse the last row/column (clamped indices): they compute
    a duplicate and store the same value twice, which is harmless because nothing accumulates.
    """
    M, Kr = A.shape
    Nc = B.shape[0]
    for ib in prange((M + 3) // 4):
        i0 = 4 * ib
        i1, i2, i3 = min(i0 + 1, M - 1), min(i0 + 2, M - 1), min(i0 + 3, M - 1)
        a0, a1, a2, a3 = A[i0], A[i1], A[i2], A[i3]
        for j0 in range(0, Nc, 2):
            j1 = min(j0 + 1, Nc - 1)
            s00, s01, s10, s11, s20, s21, s30, s31 = dot_tile_4x2(a0, a1, a2, a3, B[j0], B[j1])
            out[i0, j0], out[i0, j1] = s00, s01
            out[i1, j0], out[i1, j1] = s10, s11
            out[i2, j0], out[i2, j1] = s20, s21
            out[i3, j0], out[i3, j1] = s30, s31


@njit(inline="always")
def dot_tile_4x2(a0, a1, a2, a3, b0, b1):
    """The 8 dot products of rows a0..a3 with rows b0, b1 (all of one length), as
    (a0.b0, a0.b1, a1.b0, a1.b1, a2.b0, a2.b1, a3.b0, a3.b1): 6 loads feed 8 FMAs per
    element, each running sum vectorized by reassociating it (the caller's fastmath)."""
    s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = a0.dtype.type(0.0)
    for k in range(a0.shape[0]):
        x0, x1, x2, x3, y0, y1 = a0[k], a1[k], a2[k], a3[k], b0[k], b1[k]
        s00 += x0 * y0
        s01 += x0 * y1
        s10 += x1 * y0
        s11 += x1 * y1
        s20 += x2 * y0
        s21 += x2 * y1
        s30 += x3 * y0
        s31 += x3 * y1
    return s00, s01, s10, s11, s20, s21, s30, s31


# --- the kernel contract -------------------------------------------------------------
@njit(cache=CACHE)
def _add_bias(z, b):
    N, H = z.shape
    for n in range(N):
        for h in range(H):
            z[n, h] += b[h]


def linear_forward(x, W, b):
    """z = x @ W + b. x: (N, D); W: (D, H); b: (H,). Returns z (N, H)."""
    z = matmul(x, W)
    _add_bias(z, b)
    return z


@njit(cache=CACHE)
def column_sums(a):
    """a (N, H) -> (H,) sums over the batch, accumulated in a's dtype row by row."""
    out = np.zeros(a.shape[1], dtype=a.dtype)
    for n in range(a.shape[0]):
        for h in range(a.shape[1]):
            out[h] += a[n, h]
    return out


def linear_backward(dz, x, W, need_dx=True):
    """Gradients of z = x @ W + b.

    dz: (N, H) upstream gradient; x: (N, D) layer input; W: (D, H) weights.
    Returns (dx (N, D) or None when need_dx is False, dW (D, H), db (H,)); all overwritten.
    """
    dW = matmul_tn(x, dz, np.empty((x.shape[1], dz.shape[1]), dtype=dz.dtype))
    db = column_sums(dz)
    dx = matmul_nt(dz, W, np.empty((dz.shape[0], W.shape[0]), dz.dtype)) if need_dx else None
    return dx, dW, db


@njit(cache=CACHE)
def sigmoid_forward(z):
    """a = 1 / (1 + exp(-z)) without overflow. z: (N, H). Returns a (N, H)."""
    a = np.empty_like(z)
    for n in range(z.shape[0]):
        for h in range(z.shape[1]):
            v = z[n, h]
            if v >= 0:
                a[n, h] = 1.0 / (1.0 + math.exp(-v))
            else:
                e = math.exp(v)
                a[n, h] = e / (1.0 + e)
    return a


@njit(cache=CACHE)
def sigmoid_backward(da, a):
    """dz = da * a * (1 - a). da, a: (N, H). Returns dz (N, H)."""
    return da * a * (a.dtype.type(1.0) - a)


@njit(cache=CACHE)
def relu_forward(z):
    """a = max(z, 0). z: (N, H). Returns a (N, H)."""
    a = np.empty_like(z)
    for n in range(z.shape[0]):
        for h in range(z.shape[1]):
            v = z[n, h]
            a[n, h] = v if v > 0 else z.dtype.type(0.0)
    return a


@njit(cache=CACHE)
def relu_backward(da, z):
    """dz = da where z > 0 else 0. da, z: (N, H). Returns dz (N, H)."""
    dz = np.empty_like(da)
    for n in range(da.shape[0]):
        for h in range(da.shape[1]):
            dz[n, h] = da[n, h] if z[n, h] > 0 else da.dtype.type(0.0)
    return dz


@njit(cache=CACHE)
def _softmax_ce(logits, y, dlogits):
    N, K = logits.shape
    inv_n = 1.0 / N
    loss = 0.0
    for n in range(N):
        row = logits[n]
        m = row[0]
        for k in range(1, K):
            m = max(m, row[k])
        s = 0.0
        for k in range(K):
            e = math.exp(row[k] - m)
            dlogits[n, k] = e
            s += e
        loss += math.log(s) - (row[y[n]] - m)
        scale = inv_n / s
        for k in range(K):
            dlogits[n, k] *= scale
        dlogits[n, y[n]] -= inv_n
    return loss * inv_n


def softmax_cross_entropy(logits, y):
    """Fused, max-stabilized softmax + mean cross-entropy.

    logits: (N, K); y: (N,) int labels. Returns (loss, dlogits (N, K) = (softmax - onehot)/N).
    """
    dlogits = np.empty_like(logits)
    loss = _softmax_ce(logits, np.asarray(y, dtype=np.int64), dlogits)
    return loss, dlogits


@njit(cache=CACHE)
def _sgd_flat(p, g, lr):
    for i in range(p.size):
        p[i] -= lr * g[i]


def sgd_update(param, grad, lr):
    """param -= lr * grad, in place. param, grad: any matching C-contiguous shape."""
    _sgd_flat(param.reshape(-1), grad.reshape(-1), param.dtype.type(lr))
