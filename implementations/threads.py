"""One thread count for every CPU tier: Numba, the BLAS under NumPy, and torch."""

import os

_current: int | None = None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_threads(n: int | None = None) -> int:
    """Set the thread count of Numba, OpenBLAS/MKL (threadpoolctl) and torch; returns it."""
    global _current
    n = n or available_cores()
    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    _current = n
    return n


def current_threads() -> int:
    return _current or available_cores()
