"""Availability probes: each returns None when a tier's needs are met here, else the reason.

"Available" means it runs: each probe runs a tiny piece of real work (a CUDA kernel, a C++
build) rather than trusting an import. The registry (implementations.registry) names the
probe each tier needs and caches its answer.
"""

import subprocess
import tempfile
from pathlib import Path


def cuda_gpu() -> str | None:
    try:
        import torch
    except ImportError as exc:
        return f"torch is not importable: {exc}"
    if not torch.cuda.is_available():
        return "no CUDA GPU here (torch.cuda.is_available() is False)"
    try:  # a GPU that is listed but cannot run this build's kernels is no GPU for us
        torch.ones(8, device="cuda").sum().item()
    except RuntimeError as exc:
        return f"the CUDA GPU cannot run a PyTorch kernel: {str(exc).splitlines()[0]}"
    return None


def cpp_compiler() -> str | None:
    """torch.compile on the CPU (Inductor) builds C++: find the compiler torch would use and
    compile a tiny program with it."""
    try:
        from torch._inductor import exc
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError as err:
        return f"torch.compile (Inductor) is not importable: {err}"
    try:
        cxx = get_cpp_compiler()
    except exc.InvalidCxxCompiler as err:
        return (f"torch.compile needs a working C++ compiler and found none ({err}); "
                f"install g++ or point the CXX environment variable at one")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.cpp"
        src.write_text("#include <cmath>\nint main() { return int(std::sqrt(0.0)); }\n")
        try:
            proc = subprocess.run([cxx, str(src), "-o", str(Path(tmp) / "probe")],
                                  capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as err:
            return f"the C++ compiler {cxx} that torch.compile would use does not run: {err}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return (f"the C++ compiler {cxx} that torch.compile would use cannot build a test "
                f"program: {last}")
    return None


def numba_cuda() -> str | None:
    """None when Numba CUDA runs a kernel on a real GPU here (the simulator does not
    count), else why not."""
    try:
        from kernels import _cuda
    except ImportError as exc:
        return (f"numba-cuda is not importable ({exc}); install it with "
                f"pip install 'numba-cuda[cu13]'")
    return _cuda.unavailable_reason()


def numba_cuda_grid_sync() -> str | None:
    """numba_cuda(), and a cooperative kernel with a grid sync links and runs."""
    reason = numba_cuda()
    if reason:
        return reason
    from kernels import _cuda

    return _cuda.grid_sync_reason()


def torch_compile_cuda() -> str | None:
    """torch.compile on CUDA (Inductor) generates Triton kernels: a GPU and Triton."""
    reason = cuda_gpu()
    if reason:
        return reason
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        return f"torch.compile on CUDA needs Triton, which is not importable: {exc}"
    return None


def multi_gpu() -> str | None:
    reason = cuda_gpu()
    if reason:
        return reason
    import torch

    n = torch.cuda.device_count()
    return None if n >= 2 else f"needs at least 2 CUDA GPUs (one per rank), found {n}"


def numba_cache_note() -> str | None:
    from kernels import _jit

    return None if _jit.CACHE else _jit.CACHE_STATUS


def _xla_runs(platform: str) -> str | None:
    """None when JAX imports and XLA runs a jitted program on the first device of
    `platform` ("cpu" or "gpu"), else why not."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as exc:
        return (f"jax is not importable ({exc}); install it with pip install "
                f"'jax==0.10.2' (the README's set-up does)")
    try:
        device = jax.devices(platform)[0]
    except RuntimeError:
        return ("this machine's jaxlib has no CUDA backend (the CPU wheel); JAX on a GPU "
                "needs its CUDA build, pip install 'jax[cuda13]'")
    try:
        if float(jax.jit(lambda a: a.sum())(jax.device_put(jnp.ones(4), device))) != 4.0:
            return f"XLA computed a wrong sum of ones on {device}"
    except Exception as exc:  # noqa: BLE001  (any failure to compile or run means no tier)
        return f"XLA cannot run a jitted program on {device}: {type(exc).__name__}: {exc}"
    return None


def jax_cpu() -> str | None:
    """JAX importable and XLA able to run a jitted program on the CPU."""
    return _xla_runs("cpu")


def jax_gpu() -> str | None:
    """A GPU that JAX's XLA can run a jitted program on (a jaxlib with CUDA)."""
    return _xla_runs("gpu")
