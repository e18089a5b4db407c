"""The JAX/XLA tiers: the same function as the oracle, the epoch compiled before timing,
the shared order and partial batch, and the thread count XLA really runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from implementations.checks import assert_close
from implementations.experiment import epoch_batches, init_params
from implementations.registry import TIERS, build_model
from implementations.training import train

REPO = Path(__file__).resolve().parent.parent
JAX_TIERS = [t.name for t in TIERS.values() if t.framework == "jax" and t.device == "cpu"]
pytestmark = pytest.mark.skipif(not all(TIERS[t].available for t in JAX_TIERS),
                                reason=f"JAX cannot run here: {TIERS['jax'].unavailable_reason}")


@pytest.fixture(scope="module")
def small(mnist):
    x, y = mnist[0][:2000], mnist[1][:2000]
    return x, y


@pytest.mark.parametrize("tier", JAX_TIERS)
@pytest.mark.parametrize("fmt", ["float32", "float64"])
def test_one_epoch_matches_numpy(tier, fmt, small):
    """One epoch at batch 64 on 2000 samples (31 full batches and one of 16): every step's
    loss against numpy's in the same format."""
    x, y = small
    batches = epoch_batches(len(x), 64, seed=0, epoch=0)
    assert len(batches[-1]) == 16
    ref = build_model("numpy", init_params(0), dtype=fmt)
    want = ref.train_epoch(*ref.prepare(x, y), batches, 0.1)
    m = build_model(tier, init_params(0), dtype=fmt)
    X, Y = m.prepare(x, y)
    m.prepare_epoch(X, Y, batches, 0.1)
    got = m.train_epoch(X, Y, batches, 0.1)
    rtol = 1e-10 if fmt == "float64" else 2e-4
    assert_close(f"{tier} {fmt} step losses", got, want, rtol=rtol, atol=0)
    for name, w in m.weights().items():
        assert w.dtype == np.dtype(fmt)
        assert_close(f"{tier} {fmt} {name}", w, ref.weights()[name], rtol=rtol * 10,
                     atol=1e-12 if fmt == "float64" else 2e-5)


def test_the_scanned_epoch_compiles_before_timing(small):
    """prepare_epoch compiles the epoch program (the partial batch included); the timed
    train_epoch then runs it without compiling again, epoch after epoch."""
    x, y = small
    m = build_model("jax-scan", init_params(0))
    X, Y = m.prepare(x, y)
    batches = epoch_batches(len(x), 64, seed=0, epoch=0)
    m.prepare_epoch(X, Y, batches, 0.1)
    compiled = dict(m._epochs)
    assert ((2000, 784), (31, 64), (16,)) in compiled  # the epoch's shapes
    for epoch in range(2):
        m.train_epoch(X, Y, epoch_batches(len(x), 64, seed=0, epoch=epoch), 0.1)
    assert m._epochs == compiled


def test_an_irregular_order_falls_back_to_steps(small):
    """Batches of several sizes cannot be one scan: the epoch loops over compiled steps,
    with the same result."""
    x, y = small
    batches = [np.arange(0, 10), np.arange(10, 50), np.arange(50, 60)]
    a, b = build_model("jax-scan", init_params(0)), build_model("jax", init_params(0))
    la = a.train_epoch(*a.prepare(x, y), batches, 0.1)
    lb = b.train_epoch(*b.prepare(x, y), batches, 0.1)
    np.testing.assert_allclose(la, lb, rtol=1e-6)


def test_training_records_compile_time_and_xla(small):
    r = train("jax-scan", epochs=1, limit=1000)
    assert r.compile_seconds > 0 and r.extra["xla_platform"] == "cpu"
    assert r.threads_by_library["xla"] >= 1


@pytest.mark.parametrize("threads", [1, None])
def test_xla_runs_the_threads_recorded(threads):
    """--threads 1 holds XLA to one thread (XLA_FLAGS, set before its client starts); without
    it XLA runs on every core. The JSON says which."""
    from implementations.threads import available_cores

    args = [sys.executable, "-m", "mnist_tiers.cli", "train", "--tier", "jax", "--epochs", "1",
            "--limit", "256", "--json", "--no-progress"]
    if threads:
        args += ["--threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["threads_by_library"]["xla"] == (threads or available_cores())


@pytest.mark.parametrize("tier", JAX_TIERS)
def test_bfloat16_computes_in_bfloat16_from_float32_weights(tier, small):
    """bfloat16: the logits come out in bfloat16, the weights stay float32 (master
    weights), and an epoch's losses stay within bfloat16's reach of numpy's float32 ones."""
    x, y = small
    batches = epoch_batches(len(x), 64, seed=0, epoch=0)
    m = build_model(tier, init_params(0), dtype="bfloat16")
    X, Y = m.prepare(x, y)
    m.forward(*m.take(X, Y, batches[0]))
    assert m.compute_dtype() == "bfloat16"
    got = m.train_epoch(X, Y, batches, 0.1)
    assert all(w.dtype == np.float32 for w in m.weights().values())
    ref = build_model("numpy", init_params(0))
    want = ref.train_epoch(*ref.prepare(x, y), batches, 0.1)
    assert abs(np.mean(got) - np.mean(want)) / np.mean(want) < 2e-2


def test_the_gpu_twins_say_why_they_cannot_run():
    """jax-cuda and jax-scan-cuda are the same tiers pinned to a GPU: without a jaxlib that
    has CUDA they are listed, unavailable, with the reason and the fix."""
    import jax

    gpu_tiers = [t for t in TIERS.values() if t.framework == "jax" and t.device == "cuda"]
    assert {t.name for t in gpu_tiers} == {"jax-cuda", "jax-scan-cuda"}
    try:
        jax.devices("gpu")
        pytest.skip("this jaxlib has a GPU backend: the refusal cannot be exercised here")
    except RuntimeError:
        pass
    for t in gpu_tiers:
        assert "no CUDA backend" in t.unavailable_reason and "jax[cuda13]" in \
            t.unavailable_reason
