"""The instrumented build of `numba-fused`: the same epoch, with a timestamp between phases.

The profiles use it to see inside the fused step. It calls the very helpers that
kernels.numba_fused inlines into its production entry points, in the same order, on the same
buffers; the only additions are reads of the CPU's cycle counter (llvm.readcyclecounter: the
TSC on x86, a few ns each) between phases. Its losses and weights equal the production
epoch's (tested); its time is checked against the production epoch's by the profile (phases
within 10% of the measured step).

A step is two parallel regions, each split into `parts` groups of hidden-unit panels
(numba_fused._train_step). Per part, `cycles[p]` sums its phases: layer-1 forward with bias
and activation, its partial logits (region 1), hidden backward, layer-2 update, layer-1
weight gradient with its update and the next batch's prefetch interleaved, and its share
of the next batch's copy into the contiguous batch buffer (region 2). Row
`cycles[parts]` holds what runs on one thread (the labels, the logits' sum, softmax-CE and
the b2 update) and the two regions' wall time. `phase_seconds` turns these into the mean
thread's time per phase and the rest of the regions' wall time: the hand-offs and the wait
for the slowest thread.
"""

import numpy as np
from numba import njit, prange

from kernels._jit import CACHE, FMA_REASSOC
from kernels.intrinsics import cycles as _cycles
from kernels.numba_fused import (
    _bias2_update,
    _copy_first_batch,
    _copy_rows,
    _empty_aligned,
    _hidden_backward_part,
    _hidden_part,
    _layer1_update_part,
    _layer2_update_part,
    _partial_logits,
    _parts,
    _softmax_ce,
    part_bounds,
    step_buffers,
)

PHASES = ("layer-1 forward + activation", "partial logits", "softmax-CE + b2 update",
          "hidden backward", "layer-2 update", "layer-1 weight gradient + update",
          "next batch copy", "hand-offs + waiting")
PART_PHASES = (0, 1, 3, 4, 5, 6)  # columns of cycles[p] summed per part
SERIAL, WALLS = 2, 7  # columns of cycles[parts]: the one-thread work, the regions' wall time
PARALLEL_PHASES = 2  # parallel regions per step


@njit(cache=CACHE)
def cycle_counter():
    return _cycles()


@njit(inline="always")
def _epoch_phases(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, P, cycles):
    S, D = order.shape[0], X.shape[1]
    P1, NB, K = W1p.shape[0], W1p.shape[2], W2p.shape[0]
    P = _parts(P, P1)
    z1, a1, dz1, z2, dz2, zp, g2 = step_buffers(batch_size, P1, NB, K, P, X.dtype)
    xbuf = _empty_aligned(2 * batch_size * D, X.dtype).reshape((2, batch_size, D))
    _copy_first_batch(X, order, batch_size, P, xbuf)
    yb = np.empty(batch_size, np.int64)
    step = 0
    for start in range(0, S, batch_size):
        t0 = _cycles()
        n = min(batch_size, S - start)
        for i in range(n):
            yb[i] = Y[order[start + i]]
        nxt = order[start + n:min(start + n + batch_size, S)]
        xb, xn = xbuf[step % 2], xbuf[(step + 1) % 2]
        t1 = _cycles()
        for p in prange(P):
            j0, j1 = part_bounds(P1, P, p)
            c0 = _cycles()
            _hidden_part(xb, n, W1p, b1, act, z1, a1, j0, j1)
            c1 = _cycles()
            _partial_logits(a1, W2p, n, zp[p], j0, j1)
            c2 = _cycles()
            cycles[p, 0] += c1 - c0
            cycles[p, 1] += c2 - c1
        t2 = _cycles()
        losses[step] = _softmax_ce(zp, P, n, b2, yb, z2, dz2)
        _bias2_update(dz2, n, lr, b2)
        t3 = _cycles()
        for p in prange(P):
            j0, j1 = part_bounds(P1, P, p)
            i0, i1 = part_bounds(nxt.shape[0], P, p)
            c1 = _cycles()
            _hidden_backward_part(dz2, W2p, z1, a1, act, dz1, n, j0, j1)
            c2 = _cycles()
            _layer2_update_part(dz2, a1, lr, W2p, g2[p], n, j0, j1)
            c3 = _cycles()
            _layer1_update_part(dz1, xb, n, X, nxt[i0:i1], lr, W1p, b1, j0, j1)
            c4 = _cycles()
            _copy_rows(X, nxt, i0, i1, xn)
            c5 = _cycles()
            cycles[p, 3] += c2 - c1
            cycles[p, 4] += c3 - c2
            cycles[p, 5] += c4 - c3
            cycles[p, 6] += c5 - c4
        t4 = _cycles()
        cycles[P, SERIAL] += (t1 - t0) + (t3 - t2)
        cycles[P, WALLS] += (t2 - t1) + (t4 - t3)
        step += 1


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def train_epoch_phases(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, parts,
                       cycles):
    """numba_fused.train_epoch with per-phase cycle counts added into cycles
    (parts + 1, len(PHASES)) int64 (see the module docstring for the layout)."""
    _epoch_phases(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, parts, cycles)


@njit(fastmath=FMA_REASSOC, cache=CACHE)
def train_epoch_phases_serial(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses,
                              parts, cycles):
    """train_epoch_phases on one thread (numba_fused's serial build, below 32 samples)."""
    _epoch_phases(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, parts, cycles)


def phase_seconds(cycles: np.ndarray, threads: int, rate: float) -> dict[str, float]:
    """Seconds per phase over the run, from train_epoch_phases' cycles (parts + 1, PHASES).

    A part phase counts the mean thread's time (its sum over parts / threads, threads =
    the threads the parts ran on); "hand-offs + waiting" is the regions' wall time less the
    mean thread's busy time in them, so the phases add up to the instrumented steps' time.
    rate: cycle-counter ticks per second (cycles_per_second).
    """
    parts = cycles.shape[0] - 1
    threads = max(1, min(threads, parts))
    per_part = cycles[:parts].sum(axis=0) / threads
    out = {PHASES[c]: float(per_part[c]) / rate for c in PART_PHASES}
    out[PHASES[SERIAL]] = float(cycles[parts, SERIAL]) / rate
    busy = sum(float(per_part[c]) for c in PART_PHASES)
    out[PHASES[WALLS]] = max(0.0, float(cycles[parts, WALLS]) - busy) / rate
    return {p: out[p] for p in PHASES}


@njit(cache=CACHE, parallel=True)
def _empty_regions(reps, out):
    for _ in range(reps):
        for i in prange(out.size):
            out[i] += 1.0


def handoff_seconds(reps: int = 2000) -> float:
    """Seconds of one empty parallel region (fork, join, no work): the hand-off cost each
    parallel phase pays. Best of 5 runs of `reps` regions."""
    import time

    import numba

    out = np.zeros(numba.get_num_threads())
    _empty_regions(10, out)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        _empty_regions(reps, out)
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def cycles_per_second(seconds: float = 0.05) -> float:
    """The cycle counter's rate, against time.perf_counter over a short busy wait."""
    import time

    c0, t0 = cycle_counter(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pass
    return (cycle_counter() - c0) / (time.perf_counter() - t0)
