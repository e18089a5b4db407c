"""Numba tiers: our matmuls on irregular shapes, fused kernels vs the unfused composition."""

import numpy as np
import pytest

from implementations.checks import assert_close, random_batch, random_params
from implementations.experiment import epoch_batches, init_params
from implementations.models.scratch import ScratchMLP
from implementations.registry import build_model
from kernels import numba_cpu as nc
from kernels import numba_fused as nf

# not multiples of any tile (4 x 2, 2 x 4, 16-row blocks); across the parallel threshold
MATMUL_SHAPES = [(1, 1, 1), (1, 13, 5), (3, 7, 2), (33, 29, 17), (37, 130, 11), (64, 784, 128)]


@pytest.mark.parametrize("m, k, n", MATMUL_SHAPES)
def test_own_matmuls_match_numpy(m, k, n):
    rng = np.random.default_rng(m * k * n)
    A = rng.standard_normal((m, k)).astype(np.float32)
    B = rng.standard_normal((k, n)).astype(np.float32)
    C = rng.standard_normal((m, n)).astype(np.float32)
    ref = A.astype(np.float64) @ B
    tol = {"rtol": 1e-4, "atol": 1e-4 * np.sqrt(k)}
    assert_close(f"matmul {m}x{k}x{n}", nc.matmul(A, B), ref, **tol)
    assert_close(f"matmul_nt {m}x{k}x{n}",
                 nc.matmul_nt(A, np.ascontiguousarray(B.T), np.empty((m, n), np.float32)),
                 ref, **tol)
    assert_close(f"matmul_tn {m}x{k}x{n}", nc.matmul_tn(A, C, np.empty((k, n), np.float32)),
                 A.T.astype(np.float64) @ C, **{"rtol": 1e-4, "atol": 1e-4 * np.sqrt(m)})


@pytest.mark.parametrize("threads,parts", [("parallel", 2), ("parallel", 3), ("parallel", 40),
                                           ("serial", 1), ("serial", 3)])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("n", [1, 13, 64])
def test_fused_step_matches_unfused_composition(n, activation, threads, parts):
    """One fused step == the numba tier's op-by-op step (forward, backward, update), in both
    the threaded and the serial build, with the hidden units' panels split into parts of
    uneven sizes (75 units: 3 panels of 32 with AVX-512, the last one mostly padding; 5 of
    16 otherwise) and more parts than panels (40: clamped to the panels). The padding
    stays zero."""
    d, h, k = 29, 75, 10
    params = random_params(d, h, k, seed=n)
    x, y = random_batch(n, d, k, seed=n)
    unfused = ScratchMLP(nc, params, activation)
    ref_loss = unfused.train_step(x, y, 0.5)
    W1p, W2p = nf.pack_w1(params["W1"], np.float32), nf.pad_w2(params["W2"], np.float32)
    b1, b2 = params["b1"].copy(), params["b2"].copy()
    act = nf.RELU if activation == "relu" else nf.SIGMOID
    step = nf.train_step if threads == "parallel" else nf.train_step_serial
    loss = step(x, y, W1p, b1, W2p, b2, np.float32(0.5), act, parts)
    assert_close("fused loss", loss, ref_loss)
    ref = unfused.weights()
    for name, got in {"W1": nf.unpack_w1(W1p, h), "b1": b1, "W2": W2p[:, :h].T,
                      "b2": b2}.items():
        assert_close(f"fused {name}", got, ref[name])
    assert not W2p[:, h:].any()
    assert not W1p.transpose(1, 0, 2).reshape(d, -1)[:, h:].any()


def test_panels_round_trip():
    W1 = np.random.default_rng(0).standard_normal((7, 45)).astype(np.float32)
    for dtype in (np.float32, np.float64):
        W1p = nf.pack_w1(W1, dtype)
        nb = nf.panel_width(dtype)
        assert W1p.shape == (-(-45 // nb), 7, nb) and W1p.dtype == dtype
        np.testing.assert_array_equal(nf.unpack_w1(W1p, 45), W1.astype(dtype))
        np.testing.assert_array_equal(W1p[1, :, 3], W1[:, nb + 3])
        assert nf.pad_w2(W1.T, dtype).shape == (7, W1p.shape[0] * nb)  # W2 (H, K) -> (K, Hp)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_microkernel_matches_float64_at_every_tile_height(dtype):
    """kernels.intrinsics.gemm_microkernel against a float64 product, for every tile height,
    odd strides and offsets, reductions of 0, 1 and 37 steps, both store modes."""
    from numba import njit

    from kernels.intrinsics import MAX_TILE_ROWS, PANEL_BYTES

    nb = PANEL_BYTES // np.dtype(dtype).itemsize

    @njit
    def tiles(m, A, a_off, a_sm, a_sr, B, b_off, b_sr, n_r, C, c_off, c_sm, alpha, acc):
        nf._gemm_rows(m, A, a_off, a_sm, a_sr, B, b_off, b_sr, n_r, C, c_off, c_sm, alpha, acc)

    rng = np.random.default_rng(5)
    for m in range(1, MAX_TILE_ROWS + 10):
        for n_r in (0, 1, 37):
            a_sm, a_sr, b_sr, c_sm = 3, 3 * m + 2, nb + 5, nb + 3
            A = rng.standard_normal(7 + m * a_sm + max(n_r, 1) * a_sr).astype(dtype)
            B = rng.standard_normal(4 + max(n_r, 1) * b_sr).astype(dtype)
            C0 = rng.standard_normal(2 + m * c_sm + nb).astype(dtype)
            a = np.array([[A[7 + i * a_sm + r * a_sr] for r in range(n_r)] for i in range(m)],
                         np.float64).reshape(m, n_r)
            b = np.array([B[4 + r * b_sr:4 + r * b_sr + nb] for r in range(n_r)],
                         np.float64).reshape(n_r, nb)
            t = -0.5 * (a @ b)
            for acc in (False, True):
                C = C0.copy()
                tiles(m, A, 7, a_sm, a_sr, B, 4, b_sr, n_r, C, 2, c_sm, dtype(-0.5), acc)
                want = C0.astype(np.float64).copy()
                for i in range(m):
                    row = slice(2 + i * c_sm, 2 + i * c_sm + nb)
                    want[row] = want[row] + t[i] if acc else t[i]
                assert_close(f"tile {m} x {nb}, {n_r} steps, accumulate={acc}", C, want,
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [8, 32])  # the serial and the threaded build
def test_fused_epoch_matches_its_steps_including_partial_batch(batch):
    x, y = random_batch(100, 784, 10, seed=9)  # not a multiple of either: a partial batch
    batches = epoch_batches(100, batch, seed=0, epoch=0)
    by_epoch = build_model("numba-fused", init_params(0))
    by_steps = build_model("numba-fused", init_params(0))
    losses = by_epoch.train_epoch(*by_epoch.prepare(x, y), batches, 0.1)
    step_losses = [by_steps.train_step(x[b], y[b], 0.1) for b in batches]
    assert_close("epoch losses", losses, step_losses)
    for name, w in by_epoch.weights().items():
        assert_close(f"epoch {name}", w, by_steps.weights()[name])


def test_warm_up_restores_weights_and_reports_compile_time():
    m = build_model("numba-fused", init_params(0))
    assert m.compile_seconds > 0
    for name, w in m.weights().items():
        np.testing.assert_array_equal(w, init_params(0)[name])


@pytest.mark.parametrize("build", ["parallel", "serial"])
def test_instrumented_epoch_computes_the_production_epoch(build):
    """kernels.fused_phases: the same function as numba_fused's epoch, plus phase times."""
    from implementations.experiment import init_params
    from implementations.models.numba_fused import NumbaFusedMLP
    from kernels import fused_phases as fp

    x, y = random_batch(77, 784, 10, seed=7)  # 64 + a partial 13 (batch 64), or 5 x 13 + 12
    bs = 64 if build == "parallel" else 13
    order = np.random.default_rng(1).permutation(77)
    prod, inst = NumbaFusedMLP(init_params(0)), NumbaFusedMLP(init_params(0))
    batches = [order[i:i + bs] for i in range(0, 77, bs)]
    want = prod.train_epoch(*prod.prepare(x, y), batches, 0.1)
    entry = fp.train_epoch_phases if build == "parallel" else fp.train_epoch_phases_serial
    got = np.empty(len(batches))
    parts = nf.pick(bs)[3]
    cycles = np.zeros((parts + 1, len(fp.PHASES)), np.int64)
    X, Y = inst.prepare(x, y)
    entry(X, Y, order, bs, inst.W1p, inst.b1, inst.W2p, inst.b2, np.float32(0.1), inst.act,
          got, parts, cycles)
    assert_close("instrumented losses", got, want, rtol=1e-6, atol=1e-7)
    for name, w in inst.weights().items():
        assert_close(f"instrumented {name}", w, prod.weights()[name], rtol=1e-6, atol=1e-7)
    assert (cycles >= 0).all() and cycles.sum() > 0


def test_fused_epoch_over_part_of_the_data():
    """An epoch whose order covers only part of X ran past the order's end (a segfault)."""
    from implementations.experiment import init_params
    from implementations.models.numba_fused import NumbaFusedMLP

    x, y = random_batch(300, 784, 10, seed=3)
    m, ref = NumbaFusedMLP(init_params(0)), NumbaFusedMLP(init_params(0))
    batches = [np.arange(0, 64), np.arange(64, 100)]
    losses = m.train_epoch(*m.prepare(x, y), batches, 0.1)
    steps = [ref.train_step(*ref.prepare(x[b], y[b]), 0.1) for b in batches]
    assert_close("partial-data epoch", losses, steps, rtol=1e-5, atol=1e-6)


def test_one_region_epoch_falls_back_when_its_parts_cannot_all_run(monkeypatch):
    """More parts than Numba threads: the one-region epoch's rendezvous times out (its parts
    would wait on each other at the barriers forever), nothing is changed, the epoch runs
    as two regions per step instead, and the model says so once."""
    import numba

    from implementations.models.numba_fused import NumbaFusedMLP, warn_once

    threads = numba.get_num_threads()
    h = nf.panel_width(np.float32) * (threads + 1)  # a panel for every part
    params = init_params(0, h=h)
    x, y = random_batch(150, 784, 10, seed=4)
    batches = epoch_batches(150, 64, seed=0, epoch=0)
    ref = NumbaFusedMLP(params)
    want = [ref.train_step(*ref.prepare(x[b], y[b]), 0.1) for b in batches]
    m = NumbaFusedMLP(params)
    step, forward, epoch, _ = nf.pick(64)
    monkeypatch.setattr(nf, "pick", lambda n: (step, forward, epoch, threads + 1))
    warn_once.cache_clear()
    with pytest.warns(RuntimeWarning, match="did not all run at once"):
        losses = m.train_epoch(*m.prepare(x, y), batches, 0.1)
    assert_close("fallback losses", losses, want, rtol=1e-5, atol=1e-6)
    for name, w in m.weights().items():
        assert_close(f"fallback {name}", w, ref.weights()[name], rtol=1e-5, atol=1e-6)


def test_microkernel_and_fused_step_without_avx512():
    """On a CPU without AVX-512 the microkernel uses 256-bit registers and 6-row tiles:
    the same tests in a process whose Numba compiles for this CPU's features less
    AVX-512 (NUMBA_CPU_FEATURES), so that path is checked on any x86 machine."""
    import os
    import subprocess
    import sys

    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features().flatten().split(",")
    if "+avx512f" not in features:
        pytest.skip("this CPU has no AVX-512: the default tests already run the 256-bit path")
    without = ",".join("-" + f[1:] if f.startswith("+avx512") else f for f in features)
    # the project's own compile cache: its folder is keyed by NUMBA_CPU_FEATURES too
    # (kernels._jit.CODEGEN_SETTINGS), so this build never mixes with the AVX-512 one, and
    # a second run reuses it instead of compiling for 40 s
    env = {**os.environ, "NUMBA_CPU_FEATURES": without}
    code = ("from kernels import intrinsics as k; assert (k.VECTOR_BYTES, k.MAX_TILE_ROWS) "
            "== (32, 6), (k.VECTOR_BYTES, k.MAX_TILE_ROWS)")
    probe = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
         "microkernel_matches or (matches_unfused and 64-relu-parallel-2)"],
        env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "3 passed" in run.stdout.splitlines()[-1], run.stdout[-1000:]


def test_weights_are_copies_at_one_full_panel():
    """H = NB (one full panel): unpacking W1 once returned a view of the live panels, so
    warm_up's saved weights moved with training and the model started from warmed-up
    weights instead of its seed's."""
    for dtype in ("float32", "float64"):
        h = nf.panel_width(np.dtype(dtype))
        params = init_params(3, h=h)
        m = build_model("numba-fused", params, dtype=dtype)
        assert not np.shares_memory(m.weights()["W1"], m.W1p)
        for name, w in m.weights().items():
            np.testing.assert_array_equal(w, params[name].astype(dtype), err_msg=name)
    W1p = nf.pack_w1(init_params(0, h=32)["W1"], np.float32)  # one full panel
    assert not np.shares_memory(nf.unpack_w1(W1p, 32), W1p)


@pytest.mark.parametrize("case", ["index past X", "label 10", "empty batch", "no batch",
                                  "float64 X", "int32 Y"])
def test_fused_epoch_refuses_what_its_compiled_loop_cannot_check(case):
    """The compiled epoch reads and writes without bounds checks: an index past X
    segfaulted, label 10 wrote past dz2, an empty last batch left its loss unset."""
    from implementations.models.numba_fused import NumbaFusedMLP

    m = NumbaFusedMLP(init_params(0, h=33))
    x, y = random_batch(40, 784, 10, seed=2)
    X, Y = m.prepare(x, y)
    batches = [np.arange(32), np.arange(32, 40)]
    error = ValueError
    if case == "index past X":
        batches, error = [np.arange(32), np.array([10**9])], IndexError
    elif case == "label 10":
        Y = Y.copy()
        Y[5] = 10
    elif case == "empty batch":
        batches = [np.arange(32), np.arange(32, 32)]
    elif case == "no batch":
        batches = []
    elif case == "float64 X":
        X, error = X.astype(np.float64), TypeError
    else:
        Y, error = Y.astype(np.int32), TypeError
    with pytest.raises(error, match="batch|label|prepare"):
        m.train_epoch(X, Y, batches, 0.1)
