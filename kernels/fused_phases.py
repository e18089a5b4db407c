"""The instrumented build of `numba-fused`: the same epoch, with a timestamp between phases.

The profiles use it to see inside the fused step. It calls the very helpers that
kernels.numba_fused inlines into its production entry points, in the same order, on the same
buffers; the only additions are reads of the CPU's cycle counter (llvm.readcyclecounter: the
TSC on x86, a few ns each) between phases, summed per phase into `cycles`. Its losses and
weights equal the production epoch's (tested); its time is checked against the production
epoch's by the profile (phases within 10% of the measured step).

Phases per step (PHASES): the shuffled gather; layer-1 forward with bias and activation (a
parallel region); the output layer with softmax + cross-entropy and its gradient; the hidden
layer's backward; the layer-2 update; the layer-1 weight gradient with its update (a
parallel region; so is the layer-2 update). Each parallel phase includes its thread
hand-off, which `handoff` measures apart: an empty parallel region.
"""

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from kernels._jit import CACHE, FMA_REASSOC
from kernels.numba_fused import (
    _hidden_backward,
    _hidden_forward,
    _output_softmax_ce,
    _sgd_tn,
    step_buffers,
)

PHASES = ("gather", "layer-1 forward + activation", "output layer + softmax-CE",
          "hidden backward", "layer-2 update", "layer-1 weight gradient + update")
PARALLEL_PHASES = 3  # layer-1 forward, layer-2 update, layer-1 update


@intrinsic
def _cycles(typingctx):
    """The CPU's cycle counter (int64), read inside compiled code."""
    from llvmlite import ir

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = builder.module.declare_intrinsic("llvm.readcyclecounter", fnty=fnty)
        return builder.call(fn, [])

    return types.int64(), codegen


@njit(cache=CACHE)
def cycle_counter():
    return _cycles()


@njit(inline="always")
def _epoch_phases(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses, cycles):
    S, D = order.shape[0], X.shape[1]
    H, K = W1t.shape[0], W2t.shape[0]
    xb = np.empty((batch_size, D), X.dtype)
    yb = np.empty(batch_size, np.int64)
    step = 0
    for start in range(0, S, batch_size):
        t0 = _cycles()
        n = min(batch_size, S - start)
        for i in range(n):
            src = order[start + i]
            xb[i] = X[src]
            yb[i] = Y[src]
        t1 = _cycles()
        x, y = xb[:n], yb[:n]
        z1, a1, z2, dz2, dz1 = step_buffers(x, H, K)
        _hidden_forward(x, W1t, b1, act, z1, a1)
        t2 = _cycles()
        losses[step] = _output_softmax_ce(a1, W2t, b2, y, z2, dz2)
        t3 = _cycles()
        _hidden_backward(dz2, W2t, z1, a1, act, dz1)
        t4 = _cycles()
        _sgd_tn(dz2, a1, lr, W2t, b2)
        t5 = _cycles()
        _sgd_tn(dz1, x, lr, W1t, b1)
        t6 = _cycles()
        cycles[0] += t1 - t0
        cycles[1] += t2 - t1
        cycles[2] += t3 - t2
        cycles[3] += t4 - t3
        cycles[4] += t5 - t4
        cycles[5] += t6 - t5
        step += 1


@njit(fastmath=FMA_REASSOC, cache=CACHE, parallel=True)
def train_epoch_phases(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses, cycles):
    """numba_fused.train_epoch with per-phase cycle counts added into cycles (len(PHASES),)."""
    _epoch_phases(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses, cycles)


@njit(fastmath=FMA_REASSOC, cache=CACHE)
def train_epoch_phases_serial(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses,
                              cycles):
    """train_epoch_phases on one thread (numba_fused's serial build, below 32 samples)."""
    _epoch_phases(X, Y, order, batch_size, W1t, b1, W2t, b2, lr, act, losses, cycles)


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
