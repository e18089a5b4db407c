"""Shared helpers for checking one tier against another: seeded inputs and tolerances.

Used by the tests and by the benchmarks (which verify every timed result first).
"""

import numpy as np

# float32 math against the float64 oracle; sums of up to ~800 products
F32 = {"rtol": 2e-4, "atol": 2e-5}


def max_difference(got, want) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(got - want))) if got.size else 0.0


def assert_close(name: str, got, want, rtol=F32["rtol"], atol=F32["atol"]) -> float:
    """Raise AssertionError naming `name` unless |got - want| <= atol + rtol |want|.

    Prints and returns the max absolute difference (the validate_result of llm.c).
    """
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {got.shape} != expected {want.shape}")
    diff = max_difference(got, want)
    ok = np.all(np.abs(got - want) <= atol + rtol * np.abs(want))
    print(f"{name}: max |diff| {diff:.3e} (rtol {rtol:g}, atol {atol:g})")
    if not ok:
        raise AssertionError(f"{name}: max |diff| {diff:.3e} exceeds rtol {rtol:g} atol {atol:g}")
    return diff


def random_batch(n: int, d: int, k: int, seed: int = 0, dtype=np.float32):
    """Seeded x (n, d) in [0, 1) and labels y (n,) in 0..k-1."""
    rng = np.random.default_rng(seed)
    return rng.random((n, d)).astype(dtype), rng.integers(0, k, n).astype(np.int64)


def random_params(d: int, h: int, k: int, seed: int = 0, dtype=np.float32):
    """Seeded small-shape parameters W1 (d, h), b1 (h,), W2 (h, k), b2 (k,)."""
    rng = np.random.default_rng(seed + 1)
    return {
        "W1": (rng.standard_normal((d, h)) / np.sqrt(d)).astype(dtype),
        "b1": (0.1 * rng.standard_normal(h)).astype(dtype),
        "W2": (rng.standard_normal((h, k)) / np.sqrt(h)).astype(dtype),
        "b2": (0.1 * rng.standard_normal(k)).astype(dtype),
    }


def oracle_step(params, x, y, activation, lr):
    """The float64 NumPy train step: logits, loss, gradients and updated weights."""
    from implementations.scratch import ScratchMLP
    from kernels import vectorized

    m = ScratchMLP(vectorized, params, activation, dtype=np.float64, name="oracle")
    x64 = np.asarray(x, dtype=np.float64)
    loss = m.forward(x64, y)
    logits = m.logits()
    m.backward()
    grads = m.gradients()
    m.update(lr)
    return {"loss": loss, "logits": logits, **grads, **m.weights()}
