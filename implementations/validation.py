"""Checks of user input at the public entry points; kernels themselves stay unchecked."""

import numpy as np

from implementations.experiment import ACTIVATIONS, D, K


def check_batch(x, y=None, d: int = D, k: int = K) -> None:
    """Raise a clear TypeError/ValueError unless x is float (N, d) and y holds N labels 0..k-1."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"images must be a NumPy array, got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"images have dtype {x.dtype}; the network takes floats in [0, 1]: "
            f"pass implementations.data.normalize(images)"
        )
    if x.ndim != 2:
        raise ValueError(
            f"images must be 2-D (N, {d}), got shape {x.shape}; reshape one sample "
            f"with x.reshape(1, {d})"
        )
    if x.shape[1] != d:
        raise ValueError(f"images must have {d} features per sample, got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("empty batch: at least one sample is needed")
    if not np.isfinite(x).all():
        raise ValueError("images contain NaN or inf values")
    if y is None:
        return
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels must be an integer NumPy array, got {getattr(y, 'dtype', y)}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"got {y.shape} labels for a batch of {x.shape[0]} images")
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels must lie in 0..{k - 1}, got min {y.min()} max {y.max()}")


def check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return name
