"""Tier `numba-cuda-fused`: a whole epoch in one persistent cooperative Numba CUDA kernel.

One launch runs every step of the epoch. The shuffled order lives in a device buffer and
each step's loss is written to a device array, so the host waits once per epoch. Blocks
stay resident for the whole epoch (a cooperative launch, at most as many blocks as fit on
the GPU at once) and meet at a grid-wide sync only where a phase needs what other blocks
wrote: twice per step.

Ownership, which is what removes the other syncs: a block owns hidden units (h =
blockIdx.x, blockIdx.x + gridDim.x, ...) for the layer-1 forward and for the weight update,
and owns samples (rows i = blockIdx.x, ...) for the output layer and the hidden backward.
Per step, on the batch rows order[start:start + n]:

1. hidden units (block-owned columns): z1[:, h] = X[rows] @ W1t[h] + b1[h], a1 = act(z1).
   The block stages W1t[h] (D,) in shared memory; its threads form groups of LANES; group g
   takes rows g, g + groups, ...; lane l sums d = l, l + LANES, ... (consecutive lanes read
   consecutive addresses of a sample's row), and a shared-memory tree adds the LANES partial
   sums. -- grid sync: a1 is complete.
2. samples (block-owned rows): z2[i] = a1[i] @ W2t.T + b2 (a group of lanes per class, tree
   sums), softmax + cross-entropy for the row (its loss into rowloss[i]), dz2[i] =
   (softmax - onehot) / n, then dz1[i, h] = (dz2[i] @ W2t[:, h]) * act'(z1[i, h]), one
   thread per hidden unit, W2 still the step's old one. -- grid sync: dz1, dz2 complete.
3. block 0's thread 0 writes losses[step] = sum(rowloss[:n]) / n (in row order:
   deterministic) and its other threads update b2; each block updates what it owns (its
   hidden units):
   W1t[h] -= lr * dz1[:, h] @ X[rows] (one thread per input d: consecutive threads read
   consecutive addresses), b1[h] -= lr * dz1[:, h].sum(), W2t[:, h] -= lr * dz2.T @ a1[:, h].
   No grid sync follows: the next step's phase 1 reads only the block's own W1t rows and
   b1, and its phase 2 comes after the next sync, by which every block's updates are done.

`mask` selects phases (FORWARD, OUTPUT, UPDATE bits) while keeping every sync: phase-masked
runs time the phases (implementations.models.numba_cuda), and forward-only runs serve the forward
benchmarks. Phases are device functions, so each compiles to PTX on a machine without a
GPU (tests/test_numba_cuda.py); the kernel itself is checked under the CUDA simulator, which
supports a grid sync only in a one-block grid (kernels/_cuda.py).

Shapes: X (S, D) float32 resident; Y (S,) int64; order (M,) int64; W1t (H, D); b1 (H,);
W2t (K, H); b2 (K,); work arrays z1, a1, dz1 (>= B, H), z2, dz2 (>= B, K), rowloss (>= B,);
losses (ceil(count / B),). D <= MAX_D, K <= MAX_K.
"""

import math

import numpy as np

from kernels._cuda import SIMULATED, cuda

RELU, SIGMOID = 0, 1
FORWARD, OUTPUT, UPDATE = 1, 2, 4
ALL = FORWARD | OUTPUT | UPDATE
# threads that share one dot product (a power of two). Under the simulator, whose block
# syncs are Python barriers over Python threads, groups of 4 keep the tests fast; the code
# is the same, and PTX and the GPU use 32 (a warp).
LANES = 4 if SIMULATED else 32
MAX_THREADS = 256  # threads per block at most (the size of the reduction buffer)
MAX_D = 1024  # inputs per sample at most (the staged weight row)
MAX_K = 32  # classes at most (a row's logits in shared memory)


def _group_sum(red, t, lanes):
    """Tree-sum red[g*lanes : (g+1)*lanes] into red[g*lanes] for every group g at once.
    Every thread of the block must call it (it syncs the block)."""
    step = lanes // 2
    while step > 0:
        cuda.syncthreads()
        if t % lanes < step:
            red[t] += red[t + step]
        step //= 2
    cuda.syncthreads()


def _activate(v, act):
    if act == RELU:
        return v if v > 0 else np.float32(0.0)
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def hidden_columns(X, order, start, n, W1t, b1, act, z1, a1, wrow, red):
    """Phase 1 for this block's hidden units (see the module docstring)."""
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    groups = nt // LANES
    g, lane = t // LANES, t % LANES
    D, H = X.shape[1], W1t.shape[0]
    for h in range(cuda.blockIdx.x, H, cuda.gridDim.x):
        for d in range(t, D, nt):
            wrow[d] = W1t[h, d]
        cuda.syncthreads()
        bias = b1[h]
        for r0 in range(0, n, groups):
            i = r0 + g
            s = np.float32(0.0)
            if i < n:
                src = order[start + i]
                for d in range(lane, D, LANES):
                    s += X[src, d] * wrow[d]
            red[t] = s
            _group_sum(red, t, LANES)
            if lane == 0 and i < n:
                v = red[t] + bias
                z1[i, h] = v
                a1[i, h] = _activate(v, act)
            cuda.syncthreads()


def output_rows(Y, order, start, n, W2t, b2, act, z1, a1, z2, dz2, dz1, rowloss, red,
                logit):
    """Phase 2 for this block's samples (see the module docstring)."""
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    groups = nt // LANES
    g, lane = t // LANES, t % LANES
    H, K = W2t.shape[1], W2t.shape[0]
    inv_n = np.float32(1.0) / n
    for i in range(cuda.blockIdx.x, n, cuda.gridDim.x):
        for k0 in range(0, K, groups):
            k = k0 + g
            s = np.float32(0.0)
            if k < K:
                for h in range(lane, H, LANES):
                    s += a1[i, h] * W2t[k, h]
            red[t] = s
            _group_sum(red, t, LANES)
            if lane == 0 and k < K:
                logit[k] = red[t] + b2[k]
            cuda.syncthreads()
        if t == 0:
            label = Y[order[start + i]]
            m = logit[0]
            for k in range(1, K):
                m = max(m, logit[k])
            tot = np.float32(0.0)
            for k in range(K):
                tot += math.exp(logit[k] - m)
            rowloss[i] = math.log(tot) - (logit[label] - m)
            for k in range(K):
                z2[i, k] = logit[k]
                p = math.exp(logit[k] - m) / tot
                logit[k] = (p - (np.float32(1.0) if k == label else np.float32(0.0))) * inv_n
                dz2[i, k] = logit[k]
        cuda.syncthreads()
        for h in range(t, H, nt):
            s = np.float32(0.0)
            for k in range(K):
                s += logit[k] * W2t[k, h]
            if act == RELU:
                dz1[i, h] = s if z1[i, h] > 0 else np.float32(0.0)
            else:
                a = a1[i, h]
                dz1[i, h] = s * a * (1 - a)
        cuda.syncthreads()


def update_columns(X, order, start, n, lr, W1t, b1, W2t, a1, dz1, dz2):
    """Phase 3's weight updates for this block's hidden units (see the module docstring)."""
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    D, H, K = X.shape[1], W1t.shape[0], W2t.shape[0]
    for h in range(cuda.blockIdx.x, H, cuda.gridDim.x):
        for d in range(t, D, nt):
            s = np.float32(0.0)
            for i in range(n):
                s += dz1[i, h] * X[order[start + i], d]
            W1t[h, d] -= lr * s
        if t == 0:
            s = np.float32(0.0)
            for i in range(n):
                s += dz1[i, h]
            b1[h] -= lr * s
        for k in range(t, K, nt):
            s = np.float32(0.0)
            for i in range(n):
                s += dz2[i, k] * a1[i, h]
            W2t[k, h] -= lr * s


def loss_and_output_bias(n, lr, b2, dz2, rowloss, losses, step, update):
    """Phase 3 on block 0: the step's mean loss (thread 0, rows in order) and, if update,
    b2 -= lr * dz2.sum(0) (the other threads take the classes in turn; thread 0 too in a
    one-thread block)."""
    if cuda.blockIdx.x != 0:
        return
    t, nt = cuda.threadIdx.x, cuda.blockDim.x
    if t == 0:
        s = np.float32(0.0)
        for i in range(n):
            s += rowloss[i]
        losses[step] = s / n
    if update and (t > 0 or nt == 1):
        workers = max(1, nt - 1)
        for k in range(t - 1 if nt > 1 else 0, b2.shape[0], workers):
            g = np.float32(0.0)
            for i in range(n):
                g += dz2[i, k]
            b2[k] -= lr * g


PHASE_FUNCTIONS = {"_activate": _activate, "_group_sum": _group_sum,
                   "hidden_columns": hidden_columns, "output_rows": output_rows,
                   "update_columns": update_columns,
                   "loss_and_output_bias": loss_and_output_bias}

# the device functions the kernel calls (each also compiled alone to PTX by the tests)
_group_sum = cuda.jit(device=True)(_group_sum)
_activate = cuda.jit(device=True)(_activate)
_hidden_columns = cuda.jit(device=True)(hidden_columns)
_output_rows = cuda.jit(device=True)(output_rows)
_update_columns = cuda.jit(device=True)(update_columns)
_loss_and_output_bias = cuda.jit(device=True)(loss_and_output_bias)


def epoch_kernel(X, Y, order, count, batch, W1t, b1, W2t, b2, lr, act, mask, z1, a1, dz1, z2,
                 dz2, rowloss, losses):
    """The epoch: ceil(count / batch) steps over order[:count] (see the module docstring)."""
    grid = cuda.cg.this_grid()
    red = cuda.shared.array(MAX_THREADS, np.float32)
    wrow = cuda.shared.array(MAX_D, np.float32)
    logit = cuda.shared.array(MAX_K, np.float32)
    steps = (count + batch - 1) // batch
    for step in range(steps):
        start = step * batch
        n = min(batch, count - start)
        if mask & FORWARD:
            _hidden_columns(X, order, start, n, W1t, b1, act, z1, a1, wrow, red)
        grid.sync()
        if mask & OUTPUT:
            _output_rows(Y, order, start, n, W2t, b2, act, z1, a1, z2, dz2, dz1, rowloss, red,
                         logit)
        grid.sync()
        if mask & OUTPUT:
            _loss_and_output_bias(n, lr, b2, dz2, rowloss, losses, step, mask & UPDATE)
        if mask & UPDATE:
            _update_columns(X, order, start, n, lr, W1t, b1, W2t, a1, dz1, dz2)
        cuda.syncthreads()


_epoch = cuda.jit(epoch_kernel)


def launch(X, Y, order, count, batch, W1t, b1, W2t, b2, lr, act, bufs, losses, mask=ALL,
           blocks=None, threads=MAX_THREADS):
    """Run the epoch kernel (one cooperative launch; returns without waiting).

    bufs: (z1, a1, dz1, z2, dz2, rowloss) device work arrays for batches up to `batch`;
    blocks: grid size (default max_blocks(H)); threads: per block, a multiple of LANES up
    to MAX_THREADS.
    Raises ValueError for shapes the kernel cannot take.
    """
    D, H, K = X.shape[1], W1t.shape[0], W2t.shape[0]
    if D > MAX_D or K > MAX_K:
        raise ValueError(f"numba-cuda-fused takes up to {MAX_D} inputs and {MAX_K} classes, "
                         f"got {D} and {K}")
    if threads % LANES or not LANES <= threads <= MAX_THREADS:
        raise ValueError(f"threads per block must be a multiple of {LANES} up to "
                         f"{MAX_THREADS}, got {threads}")
    if blocks is None:
        blocks = max_blocks(H)
    z1, a1, dz1, z2, dz2, rowloss = bufs
    _epoch[blocks, threads](X, Y, order, count, batch, W1t, b1, W2t, b2, np.float32(lr), act,
                            mask, z1, a1, dz1, z2, dz2, rowloss, losses)


def max_blocks(hidden: int) -> int:
    """Blocks for the epoch kernel on this GPU: one per hidden unit, at most one per
    multiprocessor, which a cooperative launch can always keep resident (1 under the
    simulator, whose grid sync works in one block only)."""
    from kernels._cuda import SIMULATED

    if SIMULATED:
        return 1
    return max(1, min(hidden, cuda.get_current_device().MULTIPROCESSOR_COUNT))
