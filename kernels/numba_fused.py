"""Tier `numba-fused`: the whole train step, and the whole epoch, in one compiled function.

What changed from `numba`: no Python between ops, both large products run on a
register-blocked GEMM microkernel (kernels.intrinsics.gemm_microkernel), and the work is
split by hidden units. The hidden units live in panels of NB = panel_width(dtype) columns
(32 float32, 16 float64 with AVX-512): W1p (P1, D, NB) holds panel j's weights
W1[:, j*NB:(j+1)*NB] contiguously, zero past H, and z1, a1, dz1 are (P1, N, NB) the same way.
A step runs `parts` groups of panels (one per thread; `pick` says how many):

1. every part computes z1 = xb @ W1 + b1 and a1 = act(z1) for its own panels (tiles of 12
   samples x NB units held in registers over all D inputs), then its share of the logits;
2. the parts' shares are summed, softmax + cross-entropy and its gradient computed, and b2
   updated;
3. every part computes dz1 for its own panels, updates its own W2 columns, then its own W1
   panels with the SGD step fused into the weight gradient (tiles of 12 inputs x NB units
   summed over the samples in registers and subtracted from W1p at once: no dW is ever
   stored), prefetching its share of the next batch's rows of X as it goes and copying
   them, last, into the next step's contiguous batch buffer.

The threaded epoch is one parallel region (_train_epoch_one_region): the parts meet at
three spin barriers per step (after 1; after 2, which they split by samples; before the
next step), instead of forking and joining Numba parallel regions. Where its parts cannot
all run at once it falls back to the loop of steps, each step two parallel regions (1, then
3) around step 2 on one thread, which is also what train_step runs.

Each thread thus reads and writes the same weight panels in both regions, and they stay in
its own core's cache from step to step; only the batch (read-only), the small logits and
dz2 cross between cores. The epoch loop runs in compiled code too. kernels/README.md
records each step of this design with its measurements.

Every matmul is ours (the microkernel, and loops for the 10-class layer), none is BLAS.

Dimension legend: N batch, D inputs, H hidden, K classes, P1 panels (ceil(H / NB)),
Hp = P1 * NB. C-contiguous float32 throughout, or float64 throughout (--dtype float64:
Numba specializes the same code per dtype).
"""

import math

import numba
import numpy as np
from numba import njit, prange

from kernels._jit import CACHE, FMA_REASSOC
from kernels.intrinsics import (
    MAX_TILE_ROWS,
    PANEL_BYTES,
    address,
    atomic_add,
    atomic_load,
    compare_swap,
    cycles,
    gemm_microkernel,
    pause,
    prefetch,
)
from kernels.numba_cpu import PARALLEL_MIN_ROWS

# The helpers are inlined (Numba IR level) into the compiled entry points below, which are
# the only parallel functions here: their prange loops then belong to one compilation unit,
# which is what Numba's on-disk cache can reload safely (see numba_cpu.nt_kernel).
# The entry points use {"contract", "reassoc"} so the small loops vectorize.

RELU, SIGMOID = 0, 1
LINE = 64  # bytes per cache line: the panels, work arrays and batch buffers start on one
WGRAD_INPUTS = 4 * MAX_TILE_ROWS  # inputs per block of the weight gradient (one prefetch share)
WGRAD_SAMPLES = 256  # samples per pass of the weight gradient: its strip of X stays in L1
# how long (cycle-counter ticks: ~0.1 s at 3 GHz) a part of the one-region epoch waits for
# the others to start before the epoch falls back to two parallel regions per step
RENDEZVOUS_TICKS = 300_000_000
ABORTED = 1 << 40  # added to the rendezvous count by the part that gave up
BARRIERS_PER_STEP = 3  # in the one-region epoch (_epoch_part)


def panel_width(dtype) -> int:
    """Hidden units per panel for this dtype: one microkernel tile's width (NB)."""
    return PANEL_BYTES // np.dtype(dtype).itemsize


def aligned_zeros(shape, dtype) -> np.ndarray:
    """A C-contiguous zero array whose first element starts a cache line (LINE bytes): a
    panel row (2 vectors) is then 2 whole lines, and no vector load splits across two."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    buf = np.zeros(size + LINE // dtype.itemsize, dtype)
    start = (-buf.ctypes.data % LINE) // dtype.itemsize
    return buf[start:start + size].reshape(shape)


def pack_w1(W1: np.ndarray, dtype) -> np.ndarray:
    """W1 (D, H) -> W1p (P1, D, NB) in `dtype`, line-aligned: panel j = W1[:, j*NB:(j+1)*NB],
    zero past H."""
    D, H = W1.shape
    nb = panel_width(dtype)
    p1 = -(-H // nb)
    padded = np.zeros((D, p1 * nb), dtype)
    padded[:, :H] = W1
    out = aligned_zeros((p1, D, nb), dtype)
    out[:] = padded.reshape(D, p1, nb).transpose(1, 0, 2)
    return out


def unpack_w1(W1p: np.ndarray, H: int) -> np.ndarray:
    """W1p (P1, D, NB) -> W1 (D, H), a new array (the inverse of pack_w1)."""
    p1, D, nb = W1p.shape
    # a copy even where the slice would already be contiguous (H = NB: one full panel)
    return np.array(W1p.transpose(1, 0, 2).reshape(D, p1 * nb)[:, :H], order="C", copy=True)


def pad_w2(W2: np.ndarray, dtype) -> np.ndarray:
    """W2 (H, K) -> W2p (K, Hp) in `dtype`, line-aligned: transposed, zero columns past H."""
    H, K = W2.shape
    nb = panel_width(dtype)
    out = aligned_zeros((K, -(-H // nb) * nb), dtype)
    out[:, :H] = W2.T
    return out


@njit(inline="always")
def part_bounds(H, P, p):
    """Items [h0, h1) of part p of P over H items: contiguous, sizes differing by at most
    one (the parts' panels, and their shares of the next batch's rows)."""
    return H * p // P, H * (p + 1) // P


@njit(inline="always")
def _gemm_rows(m, A, a_off, a_sm, a_sr, B, b_off, b_sr, n_r, C, c_off, c_sm, alpha, acc):
    """gemm_microkernel over m rows (any m >= 0), in tiles of MAX_TILE_ROWS rows and one
    shorter last tile."""
    for t in range(0, m, MAX_TILE_ROWS):
        gemm_microkernel(min(MAX_TILE_ROWS, m - t), A, a_off + t * a_sm, a_sm, a_sr, B, b_off,
                         b_sr, n_r, C, c_off + t * c_sm, c_sm, alpha, acc)


@njit(inline="always")
def _hidden_part(xb, n, W1p, b1, act, z1, a1, j0, j1):
    """One part's share of the hidden layer, for panels j0:j1.

    z1[j, :n] = xb[:n] @ W1p[j] (microkernel tiles of 12 samples x NB units), then in one
    pass per row z1 += b1 and a1 = act(z1), with a1 = 0 past H (so padded units feed
    nothing forward or back). xb (>= n, D) the batch, contiguous; W1p (P1, D, NB); b1 (H,);
    z1, a1 (P1, >= n, NB).
    """
    D, NB, H = xb.shape[1], W1p.shape[2], b1.shape[0]
    one = xb.dtype.type(1.0)
    zero = xb.dtype.type(0.0)
    rows = z1.shape[1]
    for j in range(j0, j1):
        _gemm_rows(n, xb, 0, D, 1, W1p, j * D * NB, NB, D, z1, j * rows * NB, NB, one, False)
        units = min(NB, H - j * NB)
        b = b1[j * NB:j * NB + units]
        for i in range(n):
            z, a = z1[j, i], a1[j, i]
            if act == RELU:
                for c in range(units):
                    v = z[c] + b[c]
                    z[c] = v
                    a[c] = v if v > zero else zero
            else:
                for c in range(units):
                    v = z[c] + b[c]
                    z[c] = v
                    if v >= 0:
                        a[c] = 1.0 / (1.0 + math.exp(-v))
                    else:
                        e = math.exp(v)
                        a[c] = e / (1.0 + e)
            for c in range(units, NB):
                a[c] = zero


@njit(inline="always")
def _partial_logits(a1, W2p, n, zp, j0, j1):
    """zp[:n] = a1 @ W2p.T over panels j0:j1: one part's share of the logits. a1 (P1, >= n,
    NB); W2p (K, Hp); zp (>= n, K)."""
    K, NB = W2p.shape[0], a1.shape[2]
    for i in range(n):
        for k in range(K):
            s = a1.dtype.type(0.0)
            for j in range(j0, j1):
                a, w = a1[j, i], W2p[k, j * NB:(j + 1) * NB]
                for c in range(NB):
                    s += a[c] * w[c]
            zp[i, k] = s


@njit(inline="always")
def _forward_part(xb, n, W1p, b1, W2p, act, z1, a1, zp, j0, j1):
    """One part's share of the forward pass (region 1): its panels j0:j1, then its share of
    the logits zp (>= n, K)."""
    _hidden_part(xb, n, W1p, b1, act, z1, a1, j0, j1)
    _partial_logits(a1, W2p, n, zp, j0, j1)


@njit(inline="always")
def _softmax_ce_rows(zp, P, i0, i1, n, b2, y, z2, dz2):
    """Rows [i0, i1) of the output layer: z2 = the parts' logits summed + b2, then softmax
    + cross-entropy and its gradient in one pass. zp (P, >= n, K) partial logits; b2 (K,);
    y (>= n,) labels; z2, dz2 (>= n, K), rows i0:i1 overwritten (dz2 = (softmax - onehot)
    / n, n the batch). Returns the rows' summed loss (float64)."""
    K = b2.shape[0]
    inv_n = 1.0 / n
    loss = 0.0
    for i in range(i0, i1):
        m = z2.dtype.type(-np.inf)  # exp in the batch's dtype (expf for float32)
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
    return loss


@njit(inline="always")
def _softmax_ce(zp, P, n, b2, y, z2, dz2):
    """_softmax_ce_rows over the whole batch; returns the mean loss."""
    return _softmax_ce_rows(zp, P, 0, n, n, b2, y, z2, dz2) * (1.0 / n)


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
    batch, so its copy finds them in cache instead of waiting on DRAM."""
    line = max(1, 64 // X.itemsize)  # elements per 64-byte cache line
    for i in range(i0, i1):
        r = nxt[i]
        for c in range(0, X.shape[1], line):
            prefetch(X, r, c)


@njit(inline="always")
def _hidden_backward_part(dz2, W2p, z1, a1, act, dz1, n, j0, j1):
    """dz1[j, :n] = (dz2 @ W2p[:, panel j]) * act'(z1) for panels j0:j1: microkernel tiles
    (the reduction over the K classes), then act' in one pass; zero past H, where W2p is
    zero. W2 is read before its update. dz2 (>= n, K); W2p (K, Hp); z1, a1, dz1
    (P1, >= n, NB)."""
    K, Hp = W2p.shape
    NB, rows = z1.shape[2], z1.shape[1]
    one = z1.dtype.type(1.0)
    zero = z1.dtype.type(0.0)
    for j in range(j0, j1):
        _gemm_rows(n, dz2, 0, K, 1, W2p, j * NB, Hp, K, dz1, j * rows * NB, NB, one, False)
        for i in range(n):
            d, z, a = dz1[j, i], z1[j, i], a1[j, i]
            if act == RELU:
                for c in range(NB):
                    if z[c] <= 0:
                        d[c] = zero
            else:
                for c in range(NB):
                    s = a[c]
                    d[c] *= s * (1 - s)


@njit(inline="always")
def _layer2_update_part(dz2, a1, lr, W2p, n, j0, j1):
    """W2p[:, panel j] -= lr * dz2[:n].T @ a1[j, :n] for panels j0:j1: one microkernel tile
    of the K classes' rows (K <= MAX_TILE_ROWS) summed over the samples in registers,
    subtracted at once. dz2 (>= n, K); a1 (P1, >= n, NB); W2p (K, Hp)."""
    K, Hp = W2p.shape
    NB, rows = a1.shape[2], a1.shape[1]
    for j in range(j0, j1):
        _gemm_rows(K, dz2, 0, 1, K, a1, j * rows * NB, NB, n, W2p, j * NB, Hp, -lr, True)


@njit(inline="always")
def _layer1_update_part(dz1, xb, n, X, nxt, lr, W1p, b1, j0, j1):
    """W1p[j] -= lr * xb[:n].T @ dz1[j, :n] and b1 -= lr * dz1[j, :n].sum(0) for panels
    j0:j1, without storing dW: microkernel tiles of 12 inputs x NB units summed over up to
    WGRAD_SAMPLES samples in registers, then subtracted from W1p at once. Blocks of
    WGRAD_INPUTS inputs each prefetch a share of the next batch's rows nxt (X (S, D) rows),
    so those DRAM reads overlap the FMAs. dz1 (P1, >= n, NB); xb (>= n, D); W1p (P1, D, NB);
    b1 (H,)."""
    D, NB, H = xb.shape[1], W1p.shape[2], b1.shape[0]
    rows = dz1.shape[1]
    alpha = -lr
    blocks, m = (D + WGRAD_INPUTS - 1) // WGRAD_INPUTS, nxt.shape[0]
    for s0 in range(0, n, WGRAD_SAMPLES):
        ns = min(WGRAD_SAMPLES, n - s0)
        for bi in range(blocks):
            if s0 == 0:
                _prefetch_rows(X, nxt, bi * m // blocks, (bi + 1) * m // blocks)
            k0 = bi * WGRAD_INPUTS
            kn = min(WGRAD_INPUTS, D - k0)
            for j in range(j0, j1):
                _gemm_rows(kn, xb, s0 * D + k0, 1, D, dz1, j * rows * NB + s0 * NB, NB, ns,
                           W1p, j * D * NB + k0 * NB, NB, alpha, True)
    zero = xb.dtype.type(0.0)
    for j in range(j0, j1):
        for c in range(min(NB, H - j * NB)):
            gb = zero
            for i in range(n):
                gb += dz1[j, i, c]
            b1[j * NB + c] -= lr * gb


@njit(inline="always")
def _copy_rows(X, nxt, i0, i1, xn):
    """xn[i] = X[nxt[i]] for i in [i0, i1): a share of the next batch, made contiguous."""
    for i in range(i0, i1):
        src, dst = X[nxt[i]], xn[i]
        for c in range(X.shape[1]):
            dst[c] = src[c]


@njit(inline="always")
def _backward_part(xb, n, X, nxt, xn, W1p, b1, W2p, act, z1, a1, dz2, dz1, lr, P, p,
                   j0, j1):
    """Part p's share of the backward pass and the SGD update (region 2), for panels j0:j1:
    dz1, the layer-2 and layer-1 updates of this part's own weights (W2p columns, W1p
    panels), the latter prefetching this part's share of the next batch's rows nxt, which
    it then copies into xn (the next step's batch)."""
    i0, i1 = part_bounds(nxt.shape[0], P, p)
    _hidden_backward_part(dz2, W2p, z1, a1, act, dz1, n, j0, j1)
    _layer2_update_part(dz2, a1, lr, W2p, n, j0, j1)
    _layer1_update_part(dz1, xb, n, X, nxt[i0:i1], lr, W1p, b1, j0, j1)
    _copy_rows(X, nxt, i0, i1, xn)


@njit(inline="always")
def _empty_aligned(size, dtype):
    """An uninitialized 1-D array of `size` items starting on a cache line (LINE bytes)."""
    buf = np.empty(size + LINE, dtype)
    start = (-address(buf) % LINE) // buf.itemsize
    return buf[start:start + size]


@njit(inline="always")
def step_buffers(N, P1, NB, K, P, dtype):
    """A step's work arrays: z1, a1, dz1 (P1, N, NB), line-aligned, z2, dz2 (N, K) and the
    parts' partial logits zp (P, N, K)."""
    size = P1 * N * NB
    return (_empty_aligned(size, dtype).reshape((P1, N, NB)),
            _empty_aligned(size, dtype).reshape((P1, N, NB)),
            _empty_aligned(size, dtype).reshape((P1, N, NB)),
            np.empty((N, K), dtype), np.empty((N, K), dtype), np.empty((P, N, K), dtype))


@njit(inline="always")
def _parts(P, P1):
    """The parts that run: P clamped to 1..P1 (a part owns at least one panel)."""
    return max(1, min(P, P1))


@njit(inline="always")
def _forward(xb, n, y, W1p, b1, W2p, b2, act, P, z1, a1, z2, dz2, zp):
    """The forward pass on xb[:n]: region 1 (every part's panels and partial logits), then
    the logits, softmax-CE and dz2 on one thread. Returns the mean loss."""
    P1 = W1p.shape[0]
    for p in prange(P):
        j0, j1 = part_bounds(P1, P, p)
        _forward_part(xb, n, W1p, b1, W2p, act, z1, a1, zp[p], j0, j1)
    return _softmax_ce(zp, P, n, b2, y, z2, dz2)


@njit(inline="always")
def _train_step(xb, n, y, X, nxt, xn, W1p, b1, W2p, b2, lr, act, P, bufs):
    """One fused SGD step on the contiguous batch xb[:n], weights updated in place; returns
    the loss. Two parallel regions: the forward (split by panels), then, after the
    one-thread softmax-CE and b2 update, every part's backward and update of its own
    panels' weights (W1p panels, W2p columns), while prefetching the next batch X[nxt] and
    copying it into xn (nxt may be empty)."""
    z1, a1, dz1, z2, dz2, zp = bufs
    P1 = W1p.shape[0]
    loss = _forward(xb, n, y, W1p, b1, W2p, b2, act, P, z1, a1, z2, dz2, zp)
    _bias2_update(dz2, n, lr, b2)
    for p in prange(P):
        j0, j1 = part_bounds(P1, P, p)
        _backward_part(xb, n, X, nxt, xn, W1p, b1, W2p, act, z1, a1, dz2, dz1, lr, P,
                       p, j0, j1)
    return loss


@njit(inline="always")
def _one_step(x, y, W1p, b1, W2p, b2, lr, act, P):
    N = x.shape[0]
    P1, NB, K = W1p.shape[0], W1p.shape[2], W2p.shape[0]
    P = _parts(P, P1)
    bufs = step_buffers(N, P1, NB, K, P, x.dtype)
    none = np.empty(0, np.int64)
    return _train_step(x, N, y, x, none, x, W1p, b1, W2p, b2, lr, act, P, bufs)


@njit(inline="always")
def _one_forward(x, y, W1p, b1, W2p, b2, act, z1, a1, z2, dz2, P):
    N = x.shape[0]
    P = _parts(P, W1p.shape[0])
    zp = np.empty((P, N, W2p.shape[0]), x.dtype)
    return _forward(x, N, y, W1p, b1, W2p, b2, act, P, z1, a1, z2, dz2, zp)


@njit(inline="always")
def _copy_first_batch(X, order, batch_size, P, xb):
    """xb[0] = X[order[:batch_size]], copied by P parts. xb (2, B, D): the epoch's two batch
    buffers (step t reads xb[t % 2] and fills the other with the next batch)."""
    m = min(batch_size, order.shape[0])
    for p in prange(P):
        i0, i1 = part_bounds(m, P, p)
        _copy_rows(X, order, i0, i1, xb[0])


@njit(inline="always")
def epoch_setup(X, order, batch_size, W1p, W2p, P):
    """What an epoch allocates once: the parts that run (P clamped, _parts), the step
    buffers, the two batch buffers xbuf (2, B, D) with the first batch copied in (step t
    reads xbuf[t % 2] and fills the other) and the labels yb (B,)."""
    D = X.shape[1]
    P1, NB, K = W1p.shape[0], W1p.shape[2], W2p.shape[0]
    P = _parts(P, P1)
    bufs = step_buffers(batch_size, P1, NB, K, P, X.dtype)
    xbuf = _empty_aligned(2 * batch_size * D, X.dtype).reshape((2, batch_size, D))
    _copy_first_batch(X, order, batch_size, P, xbuf)
    return P, bufs, xbuf, np.empty(batch_size, np.int64)


@njit(inline="always")
def step_batch(Y, order, start, batch_size, step, xbuf, yb, i0, i1):
    """A step's batch: its size n, the labels of its rows [i0, i1) into yb, the next
    batch's sample indices nxt, and the batch buffers to read (xb) and fill (xn)."""
    S = order.shape[0]  # the epoch is the order, which may not cover all of X
    n = min(batch_size, S - start)
    for i in range(i0, min(i1, n)):
        yb[i] = Y[order[start + i]]
    nxt = order[start + n:min(start + n + batch_size, S)]
    return n, nxt, xbuf[step % 2], xbuf[(step + 1) % 2]


@njit(inline="always")
def _train_epoch(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, P):
    P, bufs, xbuf, yb = epoch_setup(X, order, batch_size, W1p, W2p, P)
    step = 0
    for start in range(0, order.shape[0], batch_size):
        n, nxt, xb, xn = step_batch(Y, order, start, batch_size, step, xbuf, yb, 0,
                                    batch_size)
        losses[step] = _train_step(xb, n, yb, X, nxt, xn, W1p, b1, W2p, b2, lr, act, P, bufs)
        step += 1


@njit(inline="always")
def _rendezvous(sync, P):
    """Whether all P parts are running at once. Each part arrives (sync[0] += 1) and waits
    for the rest up to RENDEZVOUS_TICKS; a part that gives up swaps the count it saw for
    ABORTED + count, which only succeeds while some part is still missing, so every part,
    early or late, gets the same answer. sync (>= 3,) int64, zeros."""
    atomic_add(sync, 0, 1)
    t0 = cycles()
    while True:
        seen = atomic_load(sync, 0)
        if seen >= ABORTED:
            return False
        if seen >= P:
            return True
        if cycles() - t0 > RENDEZVOUS_TICKS and compare_swap(sync, 0, seen, ABORTED + seen):
            return False
        pause()


@njit(inline="always")
def _barrier(sync, P):
    """Wait until all P running parts get here: a counting barrier (sync[1] arrivals) whose
    last arrival resets the count and starts the next generation (sync[2]), which the
    others spin on. Only after _rendezvous said all parts run at once."""
    generation = atomic_load(sync, 2)
    if atomic_add(sync, 1, 1) == P - 1:
        atomic_add(sync, 1, -P)
        atomic_add(sync, 2, 1)
    else:
        while atomic_load(sync, 2) == generation:
            pause()


@njit(inline="always")
def _output_update(sums, P, dz2, n, lr, b2):
    """After the softmax barrier, on one part: the step's mean loss from the parts' sums
    (sums[q * LINE]), returned, and the b2 update."""
    total = 0.0
    for q in range(P):
        total += sums[q * LINE]
    _bias2_update(dz2, n, lr, b2)
    return total * (1.0 / n)


@njit(inline="always")
def _epoch_part(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, P, p, sync,
                bufs, xbuf, yb, sums):
    """Part p's whole epoch inside the one parallel region. Per step: its forward; a
    barrier (every part's logits are in); softmax-CE on its share of the samples (labels,
    z2, dz2 rows, its loss sum in sums[p * LINE]); a barrier (dz2 complete), after which
    part 0 records the loss and updates b2; its backward and update; its share of the next
    batch's copy. A barrier opens each step after the first (the batch complete, the last
    step's zp no longer read). yb (>= B,), sums (P * LINE,) float64: shared."""
    z1, a1, dz1, z2, dz2, zp = bufs
    j0, j1 = part_bounds(W1p.shape[0], P, p)
    step = 0
    for start in range(0, order.shape[0], batch_size):
        i0, i1 = part_bounds(min(batch_size, order.shape[0] - start), P, p)
        n, nxt, xb, xn = step_batch(Y, order, start, batch_size, step, xbuf, yb, i0, i1)
        if step > 0:
            _barrier(sync, P)
        _forward_part(xb, n, W1p, b1, W2p, act, z1, a1, zp[p], j0, j1)
        _barrier(sync, P)
        sums[p * LINE] = _softmax_ce_rows(zp, P, i0, i1, n, b2, yb, z2, dz2)
        _barrier(sync, P)
        if p == 0:
            losses[step] = _output_update(sums, P, dz2, n, lr, b2)
        _backward_part(xb, n, X, nxt, xn, W1p, b1, W2p, act, z1, a1, dz2, dz1, lr, P,
                       p, j0, j1)
        step += 1


@njit(inline="always")
def _train_epoch_one_region(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, P):
    """The epoch as one parallel region of P parts (P no more than the Numba threads, as
    `pick` gives), which meet at three spin barriers per step instead of forking and
    joining two regions per step. Returns False, with nothing changed, when the parts did
    not all run at once (more parts than threads, a threading layer that queues them, a
    call from inside another parallel region)."""
    P, bufs, xbuf, yb = epoch_setup(X, order, batch_size, W1p, W2p, P)
    sums = np.zeros(P * LINE)  # the parts' loss sums, a cache line apart
    sync = np.zeros(3 * LINE, np.int64)
    for p in prange(P):
        if _rendezvous(sync, P):
            _epoch_part(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, P, p,
                        sync, bufs, xbuf, yb, sums)
    return atomic_load(sync, 0) < ABORTED


# The compiled entry points, each in a threaded and a serial build (separate functions, so
# their on-disk cache entries never mix). Below numba_cpu.PARALLEL_MIN_ROWS samples a thread
# hand-off costs more than the work it shares: callers pick with `pick(n)`.
# Shapes for all: W1p (P1, D, NB) from pack_w1; b1 (H,); W2p (K, Hp) from pad_w2; b2 (K,);
# act RELU/SIGMOID; parts: panel groups (the threads, from `pick`; clamped to 1..P1).


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def train_step(x, y, W1p, b1, W2p, b2, lr, act, parts):
    """One fused SGD step on a batch, weights updated in place; returns the loss.

    x (N, D) float32 or float64, C-contiguous; y (N,) int64; weights as above.
    """
    return _one_step(x, y, W1p, b1, W2p, b2, lr, act, parts)


@njit(fastmath=FMA_REASSOC, cache=CACHE)
def train_step_serial(x, y, W1p, b1, W2p, b2, lr, act, parts):
    """train_step on one thread (its parts run one after another)."""
    return _one_step(x, y, W1p, b1, W2p, b2, lr, act, parts)


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def forward(x, y, W1p, b1, W2p, b2, act, z1, a1, z2, dz2, parts):
    """The fused forward alone: hidden layer, then output + softmax-CE. Returns the loss;
    z1, a1 (P1, N, NB), z2, dz2 (N, K) overwritten."""
    return _one_forward(x, y, W1p, b1, W2p, b2, act, z1, a1, z2, dz2, parts)


@njit(fastmath=FMA_REASSOC, cache=CACHE)
def forward_serial(x, y, W1p, b1, W2p, b2, act, z1, a1, z2, dz2, parts):
    """forward on one thread."""
    return _one_forward(x, y, W1p, b1, W2p, b2, act, z1, a1, z2, dz2, parts)


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def train_epoch(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, parts):
    """One epoch in compiled code: batches are consecutive slices of `order`, the last one
    partial, exactly like implementations.experiment.epoch_batches.

    X (S, D) float32 or float64; Y (S,) int64; order (M,) sample indices, M <= S (a
    permutation of range(S) for a full epoch); losses (ceil(M/B),) overwritten; weights and
    parts as above. Runs as one parallel region (_train_epoch_one_region) and returns
    True; where its parts cannot all run at once, as two regions per step, returning False.
    """
    if _train_epoch_one_region(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses,
                               parts):
        return True
    _train_epoch(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, parts)
    return False


@njit(fastmath=FMA_REASSOC, cache=CACHE)
def train_epoch_serial(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, parts):
    """train_epoch on one thread (returns False: no parallel region)."""
    _train_epoch(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, parts)
    return False


def pick(n: int):
    """The entry points (train_step, forward, train_epoch) for batches of n samples, and the
    `parts` to pass them: the threaded build with one panel group per Numba thread, or the
    serial build with one group."""
    if n >= PARALLEL_MIN_ROWS:
        return train_step, forward, train_epoch, numba.get_num_threads()
    return train_step_serial, forward_serial, train_epoch_serial, 1
