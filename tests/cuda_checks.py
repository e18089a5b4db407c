"""The Numba CUDA kernels against the float64 oracle, on tiny irregular shapes.

Not collected by a plain `pytest` (the name has no test_ prefix): tests/test_numba_cuda.py
runs this file under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) in a subprocess, and
bench/gpu_check.sh runs it on a real GPU. Without either, every test skips with the reason.
Shapes are small and not multiples of the 16-wide tiles, so every edge path runs; the
simulator runs each CUDA thread as a Python thread, so a launch of this size takes seconds.
"""

import numpy as np
import pytest

from implementations.checks import assert_close, random_batch, random_params
from implementations.oracle import oracle_step
from kernels._cuda import SIMULATED, cuda, unavailable_reason

if not SIMULATED and unavailable_reason():
    pytest.skip(f"neither a GPU nor the CUDA simulator: {unavailable_reason()}",
                allow_module_level=True)

from implementations.models.numba_cuda import CudaScratchMLP, NumbaCudaFusedMLP  # noqa: E402
from kernels import numba_cuda as nk  # noqa: E402
from kernels import numba_cuda_fused as ncf  # noqa: E402

K = 10
RNG = np.random.default_rng(0)
# the fused kernel's tests: one group of lanes, and two (the GPU runs 256 threads: 8 groups);
# smaller shapes than the kernel tests, since every block sync is a Python barrier here
FUSED_THREADS = (ncf.LANES, 2 * ncf.LANES)
DF, HF = 13, 9  # inputs and hidden units: no multiple of any tile or lane group


def _dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def _f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_every_transpose(ta, tb):
    M, R, N = 9, 11, 7  # several tiles (4 wide under the simulator) and partial ones
    A = _f32(R, M) if ta else _f32(M, R)
    B = _f32(N, R) if tb else _f32(R, N)
    want = (A.T if ta else A).astype(np.float64) @ (B.T if tb else B)
    got = nk.gemm(_dev(A), _dev(B), trans_a=ta, trans_b=tb).copy_to_host()
    assert_close(f"gemm ta={ta} tb={tb}", got, want)


def test_linear_forward_and_backward():
    x, W, b, dz = _f32(7, DF), _f32(DF, HF), _f32(HF), _f32(7, HF)
    z = nk.linear_forward(_dev(x), _dev(W), _dev(b)).copy_to_host()
    assert_close("linear_forward", z, x.astype(np.float64) @ W + b)
    dx, dW, db = nk.linear_backward(_dev(dz), _dev(x), _dev(W))
    assert_close("dx", dx.copy_to_host(), dz.astype(np.float64) @ W.T)
    assert_close("dW", dW.copy_to_host(), x.T.astype(np.float64) @ dz)
    assert_close("db", db.copy_to_host(), dz.astype(np.float64).sum(0))
    assert nk.linear_backward(_dev(dz), _dev(x), _dev(W), need_dx=False)[0] is None


def test_activations_and_their_backward():
    z, da = _f32(7, HF), _f32(7, HF)
    a = 1 / (1 + np.exp(-z.astype(np.float64)))
    assert_close("sigmoid", nk.sigmoid_forward(_dev(z)).copy_to_host(), a)
    assert_close("sigmoid'", nk.sigmoid_backward(_dev(da), _dev(a.astype(np.float32)))
                 .copy_to_host(), da * a * (1 - a))
    assert_close("relu", nk.relu_forward(_dev(z)).copy_to_host(), np.maximum(z, 0))
    assert_close("relu'", nk.relu_backward(_dev(da), _dev(z)).copy_to_host(), da * (z > 0))


def test_softmax_cross_entropy_and_its_gradient():
    n = 150  # more rows than the block's threads: each thread takes several
    logits, y = 3 * _f32(n, K), RNG.integers(0, K, n)
    l64 = logits.astype(np.float64)
    p = np.exp(l64 - l64.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    want_loss = -np.log(p[np.arange(n), y]).mean()
    onehot = np.eye(K)[y]
    loss, dl = nk.softmax_cross_entropy(_dev(logits), _dev(y))
    assert_close("loss", loss.copy_to_host()[0], want_loss)
    assert_close("dlogits", dl.copy_to_host(), (p - onehot) / n)
    slots = cuda.device_array(3, np.float32)
    nk.softmax_cross_entropy(_dev(logits), _dev(y), loss=slots, slot=2)
    assert_close("loss into a slot", slots.copy_to_host()[2], want_loss)


def test_sgd_update_and_gather():
    p, g = _f32(5, 6), _f32(5, 6)
    dp = _dev(p)
    nk.sgd_update(dp, _dev(g), 0.5)
    assert_close("sgd 2-D", dp.copy_to_host(), p - 0.5 * g)
    b, gb = _f32(6), _f32(6)
    db = _dev(b)
    nk.sgd_update(db, _dev(gb), 0.25)
    assert_close("sgd 1-D", db.copy_to_host(), b - 0.25 * gb)
    with pytest.raises(ValueError, match="param"):
        nk.sgd_update(dp, db, 0.1)
    X, Y = _f32(20, DF), RNG.integers(0, K, 20)
    order = RNG.permutation(20)
    xb, yb = nk.gather(_dev(X), _dev(Y), _dev(order), 3, 9)
    np.testing.assert_array_equal(xb.copy_to_host(), X[order[3:12]])
    np.testing.assert_array_equal(yb.copy_to_host(), Y[order[3:12]])


def _oracle_epoch(params, x, y, batches, activation, lr):
    """Per-step losses and the final weights of the float64 oracle over `batches`."""
    losses = []
    for b in batches:
        r = oracle_step(params, x[b], y[b], activation, lr)
        losses.append(r["loss"])
        params = {n: r[n] for n in ("W1", "b1", "W2", "b2")}
    return np.array(losses), params


def _batches(n, size):
    order = np.random.default_rng(5).permutation(n)
    return [order[i:i + size] for i in range(0, n, size)]


@pytest.mark.parametrize("activation", ["sigmoid"])  # relu: the fused test's unfused epoch
def test_numba_cuda_epoch_matches_the_oracle(activation):
    params = random_params(DF, HF, K, seed=2)
    x, y = random_batch(14, DF, K, seed=3)
    batches = _batches(14, 6)  # 6, 6 and a partial 2
    m = CudaScratchMLP(params, activation)
    got = m.train_epoch(*m.prepare(x, y), batches, 0.5)
    want, final = _oracle_epoch(params, x, y, batches, activation, 0.5)
    assert_close("numba-cuda epoch losses", got, want)
    for name, w in m.weights().items():
        assert_close(f"numba-cuda {name}", w, final[name])
    assert_close("numba-cuda predict", m.predict(x[:5]),
                 oracle_step(final, x[:5], y[:5], activation, 0.0)["logits"])


@pytest.mark.parametrize("activation,threads", [("relu", FUSED_THREADS[0]),
                                                ("sigmoid", FUSED_THREADS[1])])
def test_fused_epoch_matches_the_unfused_composition(activation, threads):
    """The one-kernel epoch == numba-cuda's op-by-op steps, over 2 full batches and a
    partial one, and both == the float64 oracle."""
    params = random_params(DF, HF, K, seed=4)
    x, y = random_batch(14, DF, K, seed=6)
    batches = _batches(14, 6)
    fused = NumbaCudaFusedMLP(params, activation, threads=threads)
    unfused = CudaScratchMLP(params, activation)
    got = fused.train_epoch(*fused.prepare(x, y), batches, 0.5)
    ref = unfused.train_epoch(*unfused.prepare(x, y), batches, 0.5)
    want, final = _oracle_epoch(params, x, y, batches, activation, 0.5)
    assert_close("fused vs unfused losses", got, ref)
    assert_close("fused vs oracle losses", got, want)
    for name, w in fused.weights().items():
        assert_close(f"fused vs unfused {name}", w, unfused.weights()[name])
        assert_close(f"fused vs oracle {name}", w, final[name])


def test_fused_step_forward_and_masked_phases():
    params = random_params(DF, HF, K, seed=8)
    x, y = random_batch(13, DF, K, seed=9)
    m = NumbaCudaFusedMLP(params, "relu", threads=FUSED_THREADS[0])
    want = oracle_step(params, x, y, "relu", 0.5)
    assert_close("predict", m.predict(x), want["logits"])
    assert_close("step loss", float(m.train_step(*m.take(*m.prepare(x, y), np.arange(13)),
                                                 0.5)), want["loss"])
    for name, w in m.weights().items():
        assert_close(f"step {name}", w, want[name])
    before = m.weights()
    X, Y = m.prepare(x, y)
    m.phase_epoch(X, Y, [np.arange(13)], 0.5, ncf.FORWARD)
    for name, w in m.weights().items():
        np.testing.assert_array_equal(w, before[name])


def test_fused_refuses_shapes_it_cannot_take():
    params = random_params(ncf.MAX_D + 1, 4, K)
    m = NumbaCudaFusedMLP(params, "relu", threads=FUSED_THREADS[0])
    x, y = random_batch(3, ncf.MAX_D + 1, K)
    with pytest.raises(ValueError, match="inputs"):
        m.train_epoch(*m.prepare(x, y), [np.arange(3)], 0.1)
    with pytest.raises(ValueError, match="multiple of"):
        NumbaCudaFusedMLP(random_params(DF, HF, K), "relu",
                          threads=ncf.LANES + 1).train_epoch(
            *m.prepare(*random_batch(3, DF, K)), [np.arange(3)], 0.1)


def test_launches_and_allocations_per_numba_cuda_step(monkeypatch):
    """gpu_floor's floor of numba-cuda counts LAUNCHES_PER_STEP kernels and
    ALLOCATIONS_PER_STEP device arrays per step: count them in a two-step epoch."""
    from implementations.models import numba_cuda as gpu_models

    counts = {"launches": 0, "allocations": 0}

    class Counted:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, config):
            counts["launches"] += 1
            return self.kernel[config]

    for name in ("_gemm", "_column_sums", "_activation", "_activation_backward",
                 "_softmax_ce", "_sgd_1d", "_sgd_2d", "_gather"):
        monkeypatch.setattr(nk, name, Counted(getattr(nk, name)))
    real = cuda.device_array

    def counted_array(*args, **kwargs):
        counts["allocations"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(cuda, "device_array", counted_array)
    m = CudaScratchMLP(random_params(DF, HF, K), "relu")
    x, y = random_batch(8, DF, K)
    X, Y = m.prepare(x, y)
    m.train_epoch(X, Y, [np.arange(4), np.arange(4, 8)], 0.1)
    assert counts["launches"] == 2 * gpu_models.LAUNCHES_PER_STEP
    assert counts["allocations"] == 2 * gpu_models.ALLOCATIONS_PER_STEP + 1  # + the losses
