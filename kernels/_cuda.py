"""Numba CUDA, imported once with its compatibility shims, and the test for a usable GPU.

Every CUDA kernel module imports `cuda` from here, never `numba.cuda` directly, so the shims
below apply before numba-cuda is first imported:

- NumPy 2.5 removed `np.row_stack`, which numba-cuda 0.30 still names at import time
  (seen on the GPU machine: Python 3.12, NumPy 2.5.2, numba-cuda 0.30.4); the alias is the
  function NumPy documented as its replacement, `np.vstack`.

`SIMULATED` is True under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, read when numba
is first imported): kernels then run in Python threads on the CPU, one block at a time, and
a grid sync is a block sync, so cooperative kernels must be launched with one block there.
"""

import numpy as np

if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack

from numba import config as _config  # noqa: E402
from numba import cuda  # noqa: E402

SIMULATED = bool(_config.ENABLE_CUDASIM)
# numba-cuda warns on every launch of a grid under 128 blocks; the small ops of this network
# launch such grids on purpose, and the warning's Python cost would be timed with them
_config.CUDA_LOW_OCCUPANCY_WARNINGS = 0

__all__ = ["cuda", "SIMULATED", "unavailable_reason"]


@cuda.jit
def _probe(out):
    out[0] = 1.0


@cuda.jit
def _grid_sync_probe(out):
    g = cuda.cg.this_grid()
    g.sync()
    out[0] = 2.0


def grid_sync_reason() -> str | None:
    """None when a cooperative kernel with a grid sync links (against the device runtime,
    libcudadevrt) and runs here; else why not."""
    reason = unavailable_reason()
    if reason:
        return reason
    try:
        out = cuda.device_array(1, np.float32)
        _grid_sync_probe[1, 1](out)
        if out.copy_to_host()[0] != 2.0:
            return "a cooperative probe kernel ran but returned a wrong value"
    except Exception as exc:  # linking cudadevrt or the cooperative launch can fail
        return (f"a cooperative kernel with a grid sync cannot run: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0]}")
    return None


def unavailable_reason() -> str | None:
    """None when Numba CUDA can run a kernel on a real GPU here, else why not (the
    simulator does not count: it runs on the CPU)."""
    if SIMULATED:
        return "Numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): no real GPU"
    try:
        if not cuda.is_available():
            return "no CUDA GPU here (numba.cuda.is_available() is False)"
        out = cuda.device_array(1, np.float32)
        _probe[1, 1](out)
        if out.copy_to_host()[0] != 1.0:
            return "a Numba CUDA probe kernel ran but returned a wrong value"
    except Exception as exc:  # the driver, NVVM or the device can each fail here
        return f"Numba CUDA cannot run a kernel: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None
