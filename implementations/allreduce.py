"""The alpha-beta cost model of an all-reduce: what torch-ddp's gradient exchange costs, fitted
from timings and projected to more ranks and wider networks (no torch needed to read it)."""

import numpy as np


def fit_alpha_beta(times: dict[int, float]) -> tuple[float, float]:
    """Fit t = alpha + bytes / bandwidth to {bytes: seconds}, minimizing relative error
    (weights 1/t: a plain fit would let the largest message set alpha as well).

    Returns (alpha seconds, bandwidth bytes/s), both floored at tiny positive values.
    """
    b = np.array(sorted(times), float)
    t = np.array([times[int(k)] for k in b])
    slope, alpha = np.polyfit(b, t, 1, w=1 / t)
    return max(float(alpha), 1e-9), 1.0 / max(float(slope), 1e-15)


def ring_allreduce_seconds(nbytes: int, ranks: int, alpha: float, bandwidth: float) -> float:
    """Projected time of a ring all-reduce of `nbytes` over `ranks` participants:
    2 (p - 1) alpha + 2 (p - 1) / p * nbytes / bandwidth (Thakur, Rabenseifner and Gropp,
    "Optimization of Collective Communication Operations in MPICH", IJHPCA 2005)."""
    if ranks <= 1:
        return 0.0
    return 2 * (ranks - 1) * alpha + 2 * (ranks - 1) / ranks * nbytes / bandwidth


def gradient_bytes(d: int, h: int, k: int) -> int:
    """Bytes all-reduced per step: every float32 gradient, W1 (d, h), b1, W2 (h, k), b2."""
    return 4 * (d * h + h + h * k + k)
