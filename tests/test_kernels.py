"""Every kernel of every kernel tier against the float64 NumPy oracle on irregular shapes."""

import importlib

import numpy as np
import pytest

from implementations.checks import assert_close
from implementations.registry import TIERS
from kernels import vectorized as oracle

KERNEL_TIERS = [t.name for t in TIERS.values() if t.kernels]
# N, D, H, K: the hidden widths 1, 5, 17, 33 and 300 are no multiple of any tile
SHAPES = [(7, 13, 5, 3), (1, 13, 5, 3), (33, 29, 17, 10), (9, 31, 1, 10), (6, 40, 33, 10),
          (5, 50, 300, 10)]


def kernels_of(tier_name):
    tier = TIERS[tier_name]
    if not tier.available:
        pytest.skip(tier.unavailable_reason)
    return importlib.import_module(tier.kernels)


def f32(k, a):
    return k.from_numpy(np.asarray(a, dtype=np.float32))


@pytest.fixture(params=SHAPES, ids=lambda s: "x".join(map(str, s)))
def arrays(request):
    n, d, h, k = request.param
    rng = np.random.default_rng(sum(request.param))
    return {
        "x": rng.random((n, d)), "W": rng.standard_normal((d, h)) / np.sqrt(d),
        "b": rng.standard_normal(h), "dz": rng.standard_normal((n, h)),
        "z": 3 * rng.standard_normal((n, h)), "logits": 3 * rng.standard_normal((n, k)),
    }


@pytest.mark.parametrize("tier", KERNEL_TIERS)
def test_linear_forward(tier, arrays):
    k = kernels_of(tier)
    got = k.to_numpy(k.linear_forward(f32(k, arrays["x"]), f32(k, arrays["W"]),
                                      f32(k, arrays["b"])))
    assert_close(f"{tier} linear_forward", got,
                 oracle.linear_forward(arrays["x"], arrays["W"], arrays["b"]))


@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("tier", KERNEL_TIERS)
def test_linear_backward(tier, arrays, need_dx):
    k = kernels_of(tier)
    a = arrays
    dx, dW, db = k.linear_backward(f32(k, a["dz"]), f32(k, a["x"]), f32(k, a["W"]), need_dx)
    rdx, rdW, rdb = oracle.linear_backward(a["dz"], a["x"], a["W"])
    assert_close(f"{tier} dW", k.to_numpy(dW), rdW)
    assert_close(f"{tier} db", k.to_numpy(db), rdb)
    if need_dx:
        assert_close(f"{tier} dx", k.to_numpy(dx), rdx)
    else:
        assert dx is None


@pytest.mark.parametrize("act", ["relu", "sigmoid"])
@pytest.mark.parametrize("tier", KERNEL_TIERS)
def test_activations(tier, act, arrays):
    k = kernels_of(tier)
    z, da = arrays["z"], arrays["dz"]
    ref_a = getattr(oracle, f"{act}_forward")(z)
    got_a = k.to_numpy(getattr(k, f"{act}_forward")(f32(k, z)))
    assert_close(f"{tier} {act}_forward", got_a, ref_a)
    saved = ref_a if act == "sigmoid" else z  # sigmoid's backward takes a, relu's takes z
    ref_dz = getattr(oracle, f"{act}_backward")(da, saved)
    got_dz = k.to_numpy(getattr(k, f"{act}_backward")(f32(k, da), f32(k, saved)))
    assert_close(f"{tier} {act}_backward", got_dz, ref_dz)


@pytest.mark.parametrize("tier", KERNEL_TIERS)
def test_softmax_cross_entropy(tier, arrays):
    k = kernels_of(tier)
    logits = arrays["logits"]
    y = np.arange(logits.shape[0]) % logits.shape[1]
    loss, dl = k.softmax_cross_entropy(f32(k, logits), y)
    rloss, rdl = oracle.softmax_cross_entropy(logits, y)
    assert_close(f"{tier} loss", loss, rloss)
    assert_close(f"{tier} dlogits", k.to_numpy(dl), rdl)


@pytest.mark.parametrize("tier", KERNEL_TIERS)
def test_sgd_update_in_place(tier, arrays):
    k = kernels_of(tier)
    W, dW = arrays["W"], np.ones_like(arrays["W"]) * 0.5
    p = f32(k, W)
    k.sgd_update(p, f32(k, dW), 0.1)
    assert_close(f"{tier} sgd_update", k.to_numpy(p), W - 0.05)


@pytest.mark.parametrize("tier", KERNEL_TIERS)
def test_extreme_values_are_stable(tier, recwarn):
    """Logits of +-1e4 give a finite loss and gradient; sigmoid at +-100 does not overflow."""
    k = kernels_of(tier)
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]])
    y = np.array([1, 0])
    loss, dl = k.softmax_cross_entropy(f32(k, logits), y)
    rloss, rdl = oracle.softmax_cross_entropy(logits, y)
    assert np.isfinite(loss) and np.isfinite(k.to_numpy(dl)).all()
    assert_close(f"{tier} extreme loss", loss, rloss)
    z = np.array([[-100.0, 100.0, -1000.0, 1000.0, 0.0]])
    with np.errstate(over="raise", invalid="raise"):
        a = k.to_numpy(k.sigmoid_forward(f32(k, z)))
    np.testing.assert_allclose(a, [[0.0, 1.0, 0.0, 1.0, 0.5]], atol=1e-30)
    assert not [w for w in recwarn if "overflow" in str(w.message)]


def test_product_tolerance_follows_the_length_and_size_of_the_sum():
    """The batch-1024 weight gradient of unscaled test data (x.T @ dz over 1024 samples)
    rounded beyond the fixed F32 atol on one machine's OpenBLAS; its error bound grows with
    the sum, and still catches a real error."""
    from implementations.checks import product_atol

    rng = np.random.default_rng(1024)
    x = rng.random((1024, 784), dtype=np.float32)
    dz = rng.standard_normal((1024, 128)).astype(np.float32)
    want = x.T.astype(np.float64) @ dz.astype(np.float64)
    atol = product_atol(x.T, dz)
    assert_close("dW 784x1024x128", x.T @ dz, want, atol=atol)
    with pytest.raises(AssertionError, match="exceeds"):
        assert_close("dW off by 1e-2", x.T @ dz + np.float32(1e-2), want, atol=atol)
