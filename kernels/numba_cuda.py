"""Tier `numba-cuda`: the kernel contract as our own Numba CUDA kernels on device arrays.

The GPU twin of `numba`: the same ops, one kernel launch each, driven op by op from Python
(implementations.models.numba_cuda.CudaScratchMLP), with the dataset resident on the device. No
cuBLAS, no CuPy: the matmuls are a shared-memory tiled GEMM of our own.

- `gemm`: C (M, N) = op(A) @ op(B) (+ bias per column), op = transpose or not. Each block
  computes one TILE x TILE tile of C; per step along the reduction axis, its threads load a
  TILE x TILE tile of op(A) and of op(B) into shared memory (zeros past the edges), sync,
  and each thread adds TILE products for its output. One thread per output element.
- activations and their backward: one thread per element.
- `softmax_cross_entropy`: one block; its threads take rows in turn (max-stabilized
  softmax, the row's loss, dlogits = (softmax - onehot) / N), then a shared-memory tree sums
  the loss, so the result does not depend on scheduling.
- `column_sums` (bias gradients): one thread per column; `sgd_update`: one per element.

Legend: N batch, D inputs, H hidden, K classes. Device arrays are C-contiguous float32
(labels int64). Every function returns new device arrays unless it says "in place"; the
loss is a (1,) device array, read back with to_numpy.
"""

import math

import numpy as np

from kernels._cuda import SIMULATED, cuda

# Block sizes. The simulator runs each CUDA thread as a Python thread, so there the same
# kernels run with small blocks (the code is identical; its edge handling is exercised
# more, with more blocks per launch); PTX and the GPU use the real sizes.
TILE = 4 if SIMULATED else 16  # GEMM tile edge: TILE x TILE threads, two shared tiles
THREADS = 32 if SIMULATED else 256  # threads per block of the element-wise kernels
SOFTMAX_THREADS = 16 if SIMULATED else 128  # the softmax-CE block (a power of two)
RELU, SIGMOID = 0, 1


def from_numpy(a):
    """A NumPy array on the device (float arrays as float32, integer ones as int64)."""
    a = np.asarray(a)
    dtype = np.int64 if np.issubdtype(a.dtype, np.integer) else np.float32
    return cuda.to_device(np.ascontiguousarray(a, dtype))


def to_numpy(a):
    """A device array copied to the host (a NumPy array is returned as it is)."""
    return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)


def synchronize():
    """Wait for every queued kernel (timings of single kernels call it)."""
    cuda.synchronize()


def _blocks(n: int, per: int) -> int:
    return max(1, (n + per - 1) // per)


# --- GEMM ---------------------------------------------------------------------------
@cuda.jit
def _gemm(A, B, C, bias, trans_a, trans_b, has_bias):
    """C = op(A) @ op(B) (+ bias), one TILE x TILE tile of C per block (see module doc)."""
    sa = cuda.shared.array((TILE, TILE), np.float32)
    sb = cuda.shared.array((TILE, TILE), np.float32)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty
    col = cuda.blockIdx.x * TILE + tx
    M, N = C.shape
    red = A.shape[0] if trans_a else A.shape[1]
    acc = np.float32(0.0)
    for t in range((red + TILE - 1) // TILE):
        ka = t * TILE + tx  # this thread loads op(A)[row, ka] and op(B)[kb, col]
        kb = t * TILE + ty
        if row < M and ka < red:
            sa[ty, tx] = A[ka, row] if trans_a else A[row, ka]
        else:
            sa[ty, tx] = 0.0
        if kb < red and col < N:
            sb[ty, tx] = B[col, kb] if trans_b else B[kb, col]
        else:
            sb[ty, tx] = 0.0
        cuda.syncthreads()
        for j in range(TILE):
            acc += sa[ty, j] * sb[j, tx]
        cuda.syncthreads()
    if row < M and col < N:
        if has_bias:
            acc += bias[col]
        C[row, col] = acc


def gemm(A, B, trans_a=False, trans_b=False, bias=None):
    """op(A) @ op(B) (+ bias (N,)) as a new (M, N) device array; op transposes when asked.
    A (M, R) or (R, M) with trans_a; B (R, N) or (N, R) with trans_b."""
    M = A.shape[1] if trans_a else A.shape[0]
    N = B.shape[0] if trans_b else B.shape[1]
    ra = A.shape[0] if trans_a else A.shape[1]
    rb = B.shape[1] if trans_b else B.shape[0]
    if ra != rb:
        raise ValueError(f"gemm: op(A) is ({M}, {ra}) but op(B) is ({rb}, {N})")
    C = cuda.device_array((M, N), np.float32)
    b = bias if bias is not None else C[0]  # any float32 vector: unused without a bias
    _gemm[(_blocks(N, TILE), _blocks(M, TILE)), (TILE, TILE)](A, B, C, b, trans_a, trans_b,
                                                              bias is not None)
    return C


# --- the kernel contract -------------------------------------------------------------
def linear_forward(x, W, b):
    """z = x @ W + b. x (N, D), W (D, H), b (H,) -> z (N, H)."""
    return gemm(x, W, bias=b)


@cuda.jit
def _column_sums(a, out):
    j = cuda.grid(1)
    if j < a.shape[1]:
        s = np.float32(0.0)
        for i in range(a.shape[0]):
            s += a[i, j]
        out[j] = s


def column_sums(a):
    """a.sum(0): (N, H) -> (H,), one thread per column."""
    out = cuda.device_array(a.shape[1], np.float32)
    _column_sums[_blocks(a.shape[1], THREADS), THREADS](a, out)
    return out


def linear_backward(dz, x, W, need_dx=True):
    """dz (N, H), x (N, D), W (D, H) -> dx (N, D) or None, dW = x.T @ dz (D, H),
    db = dz.sum(0) (H,)."""
    dW = gemm(x, dz, trans_a=True)
    db = column_sums(dz)
    dx = gemm(dz, W, trans_b=True) if need_dx else None
    return dx, dW, db


@cuda.jit
def _activation(z, out, act):
    j, i = cuda.grid(2)
    if i < z.shape[0] and j < z.shape[1]:
        v = z[i, j]
        if act == RELU:
            out[i, j] = v if v > 0 else np.float32(0.0)
        elif v >= 0:
            out[i, j] = 1.0 / (1.0 + math.exp(-v))
        else:
            e = math.exp(v)
            out[i, j] = e / (1.0 + e)


@cuda.jit
def _activation_backward(da, ref, out, act):
    """act == RELU: ref is z, out = da * (z > 0); SIGMOID: ref is a, out = da * a(1-a)."""
    j, i = cuda.grid(2)
    if i < da.shape[0] and j < da.shape[1]:
        r = ref[i, j]
        if act == RELU:
            out[i, j] = da[i, j] if r > 0 else np.float32(0.0)
        else:
            out[i, j] = da[i, j] * r * (1 - r)


def _grid2(shape):
    """Launch shape over a (rows, cols) array for kernels that take `j, i = cuda.grid(2)`:
    x runs along the columns, so a warp touches consecutive (coalesced) addresses."""
    return (_blocks(shape[1], TILE), _blocks(shape[0], TILE)), (TILE, TILE)


def _elementwise(kernel, act, *inputs):
    """kernel(*inputs, out, act) over the first input's shape, into a new array `out`."""
    out = cuda.device_array(inputs[0].shape, np.float32)
    grid, block = _grid2(out.shape)
    kernel[grid, block](*inputs, out, act)
    return out


def sigmoid_forward(z):
    """(N, H) -> (N, H)."""
    return _elementwise(_activation, SIGMOID, z)


def sigmoid_backward(da, a):
    """da * a * (1 - a), from the forward's output a. (N, H) -> (N, H)."""
    return _elementwise(_activation_backward, SIGMOID, da, a)


def relu_forward(z):
    """(N, H) -> (N, H)."""
    return _elementwise(_activation, RELU, z)


def relu_backward(da, z):
    """da * (z > 0), from the forward's input z. (N, H) -> (N, H)."""
    return _elementwise(_activation_backward, RELU, da, z)


@cuda.jit
def _softmax_ce(logits, y, dlogits, loss, slot):
    """One block: rows in turn per thread, then a tree sum of the loss (see module doc)."""
    part = cuda.shared.array(SOFTMAX_THREADS, np.float32)
    t = cuda.threadIdx.x
    N, K = logits.shape
    inv_n = np.float32(1.0) / N
    acc = np.float32(0.0)
    for i in range(t, N, SOFTMAX_THREADS):
        m = logits[i, 0]
        for k in range(1, K):
            m = max(m, logits[i, k])
        tot = np.float32(0.0)
        for k in range(K):
            e = math.exp(logits[i, k] - m)
            dlogits[i, k] = e
            tot += e
        acc += math.log(tot) - (logits[i, y[i]] - m)
        scale = inv_n / tot
        for k in range(K):
            dlogits[i, k] *= scale
        dlogits[i, y[i]] -= inv_n
    part[t] = acc
    step = SOFTMAX_THREADS // 2
    while step > 0:
        cuda.syncthreads()
        if t < step:
            part[t] += part[t + step]
        step //= 2
    if t == 0:
        loss[slot] = part[0] * inv_n


def softmax_cross_entropy(logits, y, loss=None, slot=0):
    """Mean cross-entropy of softmax(logits) and its gradient. logits (N, K), y (N,) int64
    labels -> (loss (1,) device array, or `loss` with loss[slot] written; dlogits (N, K))."""
    dlogits = cuda.device_array(logits.shape, np.float32)
    if loss is None:
        loss, slot = cuda.device_array(1, np.float32), 0
    _softmax_ce[1, SOFTMAX_THREADS](logits, y, dlogits, loss, slot)
    return loss, dlogits


@cuda.jit
def _sgd_1d(p, g, lr):
    i = cuda.grid(1)
    if i < p.shape[0]:
        p[i] -= lr * g[i]


@cuda.jit
def _sgd_2d(p, g, lr):
    j, i = cuda.grid(2)
    if i < p.shape[0] and j < p.shape[1]:
        p[i, j] -= lr * g[i, j]


def sgd_update(param, grad, lr):
    """param -= lr * grad, in place (1-D or 2-D device arrays of one shape)."""
    if param.shape != grad.shape:
        raise ValueError(f"sgd_update: param {param.shape} vs grad {grad.shape}")
    if len(param.shape) == 1:
        _sgd_1d[_blocks(param.shape[0], THREADS), THREADS](param, grad, np.float32(lr))
    else:
        grid, block = _grid2(param.shape)
        _sgd_2d[grid, block](param, grad, np.float32(lr))


# --- data on the device --------------------------------------------------------------
@cuda.jit
def _gather(X, Y, order, start, xb, yb):
    """xb[i] = X[order[start + i]], yb[i] = Y[order[start + i]] for i < xb.shape[0]."""
    j, i = cuda.grid(2)
    if i < xb.shape[0]:
        src = order[start + i]
        if j < X.shape[1]:
            xb[i, j] = X[src, j]
        if j == 0:
            yb[i] = Y[src]


def gather(X, Y, order, start, n):
    """The batch order[start:start + n] of resident data: (xb (n, D), yb (n,)) new device
    arrays. X (S, D), Y (S,), order (M,) device arrays."""
    xb = cuda.device_array((n, X.shape[1]), np.float32)
    yb = cuda.device_array(n, np.int64)
    grid, block = _grid2((n, X.shape[1]))
    _gather[grid, block](X, Y, order, start, xb, yb)
    return xb, yb
