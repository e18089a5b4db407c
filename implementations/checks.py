"""Shared helpers for checking one tier against another: seeded inputs and tolerances.

Used by the tests and by the benchmarks (which verify every timed result first); the
float64 reference step they are checked against is implementations.oracle.
"""

import numpy as np

# float32 math against the float64 oracle; sums of up to ~800 products of small terms
# (longer sums of larger terms: product_atol)
F32 = {"rtol": 2e-4, "atol": 2e-5}
U32 = 2.0**-24  # unit roundoff of float32


def product_atol(a, b, floor: float = F32["atol"]) -> np.ndarray:
    """Per-element absolute tolerance of a float32 product a @ b against float64.

    a (M, n), b (n, N) -> (M, N): max(floor, 8 sqrt(n) u (|a| @ |b|)), u = 2^-24. The
    rounding error of an n-term sum grows like sqrt(n) u times the sum of the absolute
    terms (the probabilistic bound of Higham and Mary, SIAM J. Sci. Comput. 41(5), 2019;
    8 covers its constant): a fixed atol is too tight for long sums of O(1) terms, such as
    a weight gradient over 1024 samples of unscaled test data.
    """
    a64, b64 = np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(b, np.float64))
    return np.maximum(floor, 8 * np.sqrt(a64.shape[-1]) * U32 * (a64 @ b64))


def max_difference(got, want) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(got - want))) if got.size else 0.0


def assert_close(name: str, got, want, rtol=F32["rtol"], atol=F32["atol"]) -> float:
    """Raise AssertionError naming `name` unless |got - want| <= atol + rtol |want|.

    Prints and returns the max absolute difference (the validate_result of llm.c). atol
    may be an array of per-element tolerances (see product_atol).
    """
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {got.shape} != expected {want.shape}")
    diff = max_difference(got, want)
    ok = np.all(np.abs(got - want) <= atol + rtol * np.abs(want))
    shown = f"{np.max(atol):g}" if np.ndim(atol) == 0 else f"per element, up to {np.max(atol):.3g}"
    print(f"{name}: max |diff| {diff:.3e} (rtol {rtol:g}, atol {shown})")
    if not ok:
        raise AssertionError(f"{name}: max |diff| {diff:.3e} exceeds rtol {rtol:g} atol {shown}")
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
