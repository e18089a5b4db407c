"""The instrumented build of `numba-fused`: the same epoch, with a timestamp between phases.

The profiles use it to see inside the fused step. It calls the very helpers that
kernels.numba_fused inlines into its production entry points, in the same order, on the same
buffers; the only additions are reads of the CPU's cycle counter (llvm.readcyclecounter: the
TSC on x86, a few ns each) between phases. Its losses and weights equal the production
epoch's (tested); its time is checked against the production epoch's by the profile (phases
within 10% of the measured step).

The threaded build mirrors numba_fused's one-region epoch (_train_epoch_one_region: the
whole epoch in one parallel region whose `parts` groups of hidden-unit panels meet at three
barriers per step); the serial build mirrors its loop of steps (_train_epoch: per step,
two stretches of parts, run one after another, around the output layer). Per part,
`cycles[p]` sums its phases: layer-1 forward with bias and activation, its partial logits,
its share of softmax-CE (with the labels and, in part 0, the b2 update), hidden backward,
layer-2 update, layer-1 weight gradient with its update and the next batch's prefetch
interleaved, and its share of the next batch's copy into the contiguous batch buffer. Row
`cycles[parts]` holds what runs on one thread (in the serial build's loop: the labels,
softmax-CE and the b2 update) and the parallel wall time. `phase_seconds` turns these into
the mean thread's time per phase and the rest of the parallel wall time: the hand-offs,
barriers and the wait for the slowest thread.
"""

import numpy as np
from numba import njit, prange

from kernels._jit import CACHE, FMA_REASSOC
from kernels.intrinsics import atomic_load
from kernels.intrinsics import cycles as _cycles
from kernels.numba_fused import (
    ABORTED,
    LINE,
    _barrier,
    _bias2_update,
    _copy_rows,
    _hidden_backward_part,
    _hidden_part,
    _layer1_update_part,
    _layer2_update_part,
    _output_update,
    _partial_logits,
    _rendezvous,
    _softmax_ce,
    _softmax_ce_rows,
    epoch_setup,
    part_bounds,
    step_batch,
)

PHASES = ("layer-1 forward + activation", "partial logits", "softmax-CE + b2 update",
          "hidden backward", "layer-2 update", "layer-1 weight gradient + update",
          "next batch copy", "hand-offs + waiting")
SERIAL, WALLS = 2, 7  # columns of cycles[parts]: the one-thread work, the regions' wall time


@njit(cache=CACHE)
def cycle_counter():
    return _cycles()


@njit(inline="always")
def _backward_phases(xb, n, X, nxt, xn, W1p, b1, W2p, act, z1, a1, dz2, dz1, lr, P, p,
                     j0, j1, cyc):
    """numba_fused._backward_part, its phases' cycles added into cyc (PHASES,)."""
    i0, i1 = part_bounds(nxt.shape[0], P, p)
    c0 = _cycles()
    _hidden_backward_part(dz2, W2p, z1, a1, act, dz1, n, j0, j1)
    c1 = _cycles()
    _layer2_update_part(dz2, a1, lr, W2p, n, j0, j1)
    c2 = _cycles()
    _layer1_update_part(dz1, xb, n, X, nxt[i0:i1], lr, W1p, b1, j0, j1)
    c3 = _cycles()
    _copy_rows(X, nxt, i0, i1, xn)
    c4 = _cycles()
    cyc[3] += c1 - c0
    cyc[4] += c2 - c1
    cyc[5] += c3 - c2
    cyc[6] += c4 - c3


@njit(inline="always")
def _forward_phases(xb, n, W1p, b1, W2p, act, z1, a1, zp, j0, j1, cyc):
    """numba_fused._forward_part, its phases' cycles added into cyc (PHASES,)."""
    c0 = _cycles()
    _hidden_part(xb, n, W1p, b1, act, z1, a1, j0, j1)
    c1 = _cycles()
    _partial_logits(a1, W2p, n, zp, j0, j1)
    c2 = _cycles()
    cyc[0] += c1 - c0
    cyc[1] += c2 - c1


@njit(inline="always")
def _epoch_phases(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, P, cycles):
    """numba_fused._train_epoch, instrumented."""
    P, bufs, xbuf, yb = epoch_setup(X, order, batch_size, W1p, W2p, P)
    z1, a1, dz1, z2, dz2, zp = bufs
    P1 = W1p.shape[0]
    step = 0
    for start in range(0, order.shape[0], batch_size):
        t0 = _cycles()
        n, nxt, xb, xn = step_batch(Y, order, start, batch_size, step, xbuf, yb, 0,
                                    batch_size)
        t1 = _cycles()
        for p in prange(P):
            j0, j1 = part_bounds(P1, P, p)
            _forward_phases(xb, n, W1p, b1, W2p, act, z1, a1, zp[p], j0, j1, cycles[p])
        t2 = _cycles()
        losses[step] = _softmax_ce(zp, P, n, b2, yb, z2, dz2)
        _bias2_update(dz2, n, lr, b2)
        t3 = _cycles()
        for p in prange(P):
            j0, j1 = part_bounds(P1, P, p)
            _backward_phases(xb, n, X, nxt, xn, W1p, b1, W2p, act, z1, a1, dz2, dz1, lr,
                             P, p, j0, j1, cycles[p])
        t4 = _cycles()
        cycles[P, SERIAL] += (t1 - t0) + (t3 - t2)
        cycles[P, WALLS] += (t2 - t1) + (t4 - t3)
        step += 1


@njit(inline="always")
def _epoch_part_phases(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, P, p,
                       sync, bufs, xbuf, yb, sums, cyc):
    """numba_fused._epoch_part with its phases' cycles added into cyc (PHASES,)."""
    z1, a1, dz1, z2, dz2, zp = bufs
    j0, j1 = part_bounds(W1p.shape[0], P, p)
    step = 0
    for start in range(0, order.shape[0], batch_size):
        c0 = _cycles()
        i0, i1 = part_bounds(min(batch_size, order.shape[0] - start), P, p)
        n, nxt, xb, xn = step_batch(Y, order, start, batch_size, step, xbuf, yb, i0, i1)
        c1 = _cycles()
        if step > 0:
            _barrier(sync, P)
        _forward_phases(xb, n, W1p, b1, W2p, act, z1, a1, zp[p], j0, j1, cyc)
        _barrier(sync, P)
        c2 = _cycles()
        sums[p * LINE] = _softmax_ce_rows(zp, P, i0, i1, n, b2, yb, z2, dz2)
        c3 = _cycles()
        _barrier(sync, P)
        c4 = _cycles()
        if p == 0:
            losses[step] = _output_update(sums, P, dz2, n, lr, b2)
        c5 = _cycles()
        _backward_phases(xb, n, X, nxt, xn, W1p, b1, W2p, act, z1, a1, dz2, dz1, lr, P,
                         p, j0, j1, cyc)
        cyc[2] += (c1 - c0) + (c3 - c2) + (c5 - c4)
        step += 1


@njit(inline="always")
def _epoch_phases_one_region(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, P,
                             cycles):
    """numba_fused._train_epoch_one_region, instrumented; cycles[P, WALLS] gets the
    region's wall time. Returns False (nothing run) where the parts did not all run at
    once."""
    P, bufs, xbuf, yb = epoch_setup(X, order, batch_size, W1p, W2p, P)
    sums = np.zeros(P * LINE)
    sync = np.zeros(3 * LINE, np.int64)
    t0 = _cycles()
    for p in prange(P):
        if _rendezvous(sync, P):
            _epoch_part_phases(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, P,
                               p, sync, bufs, xbuf, yb, sums, cycles[p])
    cycles[P, WALLS] += _cycles() - t0
    return atomic_load(sync, 0) < ABORTED


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def train_epoch_phases(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, parts,
                       cycles):
    """numba_fused.train_epoch (its one-region epoch) with per-phase cycle counts added into
    cycles (parts + 1, len(PHASES)) int64 (see the module docstring for the layout).
    Returns False, having run nothing, where the parts could not all run at once."""
    return _epoch_phases_one_region(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act,
                                    losses, parts, cycles)


@njit(fastmath=FMA_REASSOC, cache=CACHE)
def train_epoch_phases_serial(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses,
                              parts, cycles):
    """train_epoch_phases on one thread (numba_fused's serial build, below 32 samples)."""
    _epoch_phases(X, Y, order, batch_size, W1p, b1, W2p, b2, lr, act, losses, parts, cycles)
    return True


def phase_seconds(cycles: np.ndarray, threads: int, rate: float) -> dict[str, float]:
    """Seconds per phase over the run, from train_epoch_phases' cycles (parts + 1, PHASES).

    A phase counts the mean thread's time in it (its sum over the parts / threads, threads
    = the threads the parts ran on) plus the one-thread time in row `parts`; "hand-offs +
    waiting" is the parallel wall time (row `parts`, column WALLS) less the mean thread's
    busy time in it (the fork and join of regions, the barriers, the wait for the slowest
    thread), so the phases add up to the instrumented run's time.
    rate: cycle-counter ticks per second (cycles_per_second).
    """
    parts = cycles.shape[0] - 1
    threads = max(1, min(threads, parts))
    per_part = cycles[:parts].sum(axis=0) / threads
    phases = [c for c in range(len(PHASES)) if c != WALLS]
    out = {PHASES[c]: (float(per_part[c]) + float(cycles[parts, c])) / rate for c in phases}
    busy = sum(float(per_part[c]) for c in phases)
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
