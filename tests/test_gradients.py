"""Centered finite differences of the whole network in float64 vs the analytic backward."""

import numpy as np
import pytest

from implementations.checks import random_batch, random_params
from implementations.models.scratch import ScratchMLP
from kernels import vectorized


def numerical_gradient(f, p, h=1e-5):
    """Centered differences of scalar f() wrt every entry of array p (perturbed in place)."""
    grad = np.zeros_like(p)
    it = np.nditer(p, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = p[i]
        p[i] = old + h
        fp = f()
        p[i] = old - h
        fm = f()
        p[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_network_gradients_match_finite_differences(activation):
    x, y = random_batch(7, 13, 3, seed=3, dtype=np.float64)
    params = random_params(13, 5, 3, seed=3, dtype=np.float64)
    m = ScratchMLP(vectorized, params, activation, dtype=np.float64)
    m.forward(x, y)
    m.backward()
    analytic = m.gradients()
    for name in ("W1", "b1", "W2", "b2"):
        num = numerical_gradient(lambda: m.forward(x, y), m.p[name])
        ana = analytic[f"d{name}"]
        rel = np.max(np.abs(num - ana) / np.maximum(1e-8, np.abs(num) + np.abs(ana)))
        print(f"{activation} d{name}: max relative error {rel:.2e}")
        assert rel < 1e-6, f"{activation} d{name}: relative error {rel:.2e}"
