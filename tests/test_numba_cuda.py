"""The Numba CUDA tiers without a GPU: every kernel compiles to PTX for sm_90, and the
kernels compute the oracle's function under the CUDA simulator (tests/cuda_checks.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from numba import types

from kernels import numba_cuda as nk
from kernels import numba_cuda_fused as ncf
from kernels._cuda import SIMULATED, cuda

REPO = Path(__file__).resolve().parent.parent
CC = (9, 0)  # Hopper: the H100/H200 the GPU check runs on

f32, i64, b1 = types.float32, types.int64, types.boolean
F1, F2 = types.float32[::1], types.float32[:, ::1]
I1 = types.int64[::1]

# every kernel of kernels/numba_cuda.py with the argument types its wrappers pass
KERNELS = {
    "gemm": (nk._gemm, (F2, F2, F2, F1, b1, b1, b1)),
    "column_sums": (nk._column_sums, (F2, F1)),
    "activation": (nk._activation, (F2, F2, i64)),
    "activation_backward": (nk._activation_backward, (F2, F2, F2, i64)),
    "softmax_ce": (nk._softmax_ce, (F2, I1, F2, F1, i64)),
    "sgd_1d": (nk._sgd_1d, (F1, F1, f32)),
    "sgd_2d": (nk._sgd_2d, (F2, F2, f32)),
    "gather": (nk._gather, (F2, I1, I1, i64, F2, I1)),
}
# the fused epoch's phases, as the device functions the kernel calls
PHASES = {
    "hidden_columns": (F2, I1, i64, i64, F2, F1, i64, F2, F2, F1, F1),
    "output_rows": (I1, I1, i64, i64, F2, F1, i64, F2, F2, F2, F2, F2, F1, F1, F1),
    "update_columns": (F2, I1, i64, i64, f32, F2, F1, F2, F2, F2, F2),
    "loss_and_output_bias": (i64, f32, F1, F2, F1, F1, i64, i64),
    "_group_sum": (F1, i64, i64),
    "_activate": (f32, i64),
}
EPOCH_ARGS = (F2, I1, I1, i64, i64, F2, F1, F2, F1, f32, i64, i64, F2, F2, F2, F2, F2, F1, F1)

pytestmark = pytest.mark.skipif(SIMULATED, reason="PTX is compiled by the real CUDA target, "
                                                  "not the simulator")


class _Hopper:
    """Stands in for the current device: numba-cuda compiles a called device function for
    get_current_device().compute_capability, which needs a driver; PTX for sm_90 needs
    only NVVM (from the numba-cuda[cu13] wheels)."""

    compute_capability = CC


@pytest.fixture(autouse=True)
def sm90_without_a_driver(monkeypatch):
    from numba.cuda import compiler, dispatcher

    from kernels._cuda import unavailable_reason

    if unavailable_reason() is not None:  # no real GPU: compile for the H100/H200
        for module in (compiler, dispatcher):
            monkeypatch.setattr(module, "get_current_device", _Hopper)


@pytest.mark.parametrize("name", KERNELS)
def test_kernel_compiles_to_ptx_for_sm90(name):
    kernel, args = KERNELS[name]
    ptx, _ = cuda.compile_ptx(kernel.py_func, args, cc=CC)
    assert ".target sm_90" in ptx and ".entry" in ptx


@pytest.mark.parametrize("name", PHASES)
def test_fused_phase_compiles_to_ptx_for_sm90(name):
    ptx, _ = cuda.compile_ptx(ncf.PHASE_FUNCTIONS[name], PHASES[name], device=True, cc=CC)
    assert ".target sm_90" in ptx and ".func" in ptx


def test_fused_epoch_kernel_compiles_to_ptx_for_sm90():
    """The whole cooperative kernel, grid syncs included."""
    ptx, _ = cuda.compile_ptx(ncf.epoch_kernel, EPOCH_ARGS, cc=CC)
    assert ".target sm_90" in ptx and ".entry" in ptx and "cudaCGSynchronize" in ptx


# tests/cuda_checks.py in five parts of 10-20 s each under the simulator, so that `make
# test`'s workers share them; together they select every test of the file (checked below)
SIMULATOR_PARTS = {
    "kernels": "not fused and not numba_cuda_epoch",
    "unfused-epoch": "numba_cuda_epoch",
    "fused-relu": "fused_epoch and relu",
    "fused-sigmoid": "(fused_epoch and sigmoid) or fused_refuses",
    "fused-step": "fused_step",
}


@pytest.mark.parametrize("part", SIMULATOR_PARTS)
def test_cuda_kernels_under_the_simulator(part):
    """tests/cuda_checks.py in a fresh process with NUMBA_ENABLE_CUDASIM=1 (the simulator is
    chosen when numba is first imported, so not in this process)."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-o", "addopts=", str(REPO / "tests" / "cuda_checks.py"),
                           "-k", SIMULATOR_PARTS[part]],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1], tail


def test_the_simulator_parts_cover_every_check_once():
    """Each check of cuda_checks.py is selected by exactly one part's -k expression (pytest's
    own expression matcher, applied to the test ids of one collection)."""
    from _pytest.mark.expression import Expression

    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only",
                          "-p", "no:cacheprovider", "-o", "addopts=",
                          str(REPO / "tests" / "cuda_checks.py")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300).stdout
    every = [ln.split("::", 1)[1] for ln in out.splitlines() if "::" in ln]
    assert len(every) >= 14, out[-2000:]
    for test in every:
        chosen = [part for part, expr in SIMULATOR_PARTS.items()
                  if Expression.compile(expr).evaluate(lambda word, t=test: word in t)]
        assert len(chosen) == 1, (test, chosen)
