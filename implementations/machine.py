"""What machine this is and what it can do: names, versions, and measured peaks.

The peaks are measured, not looked up: a large float32 matmul (the compute ceiling) and a
large copy (the bandwidth ceiling), on the CPU and, where present, on the GPU.
"""

import platform
import re
import time
from functools import cache

import numpy as np


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return None


def machine_name() -> str:
    """A short folder name: the GPU's if there is one, else the CPU's and its core count."""
    from implementations.threads import available_cores

    gpu = gpu_name()
    base = gpu if gpu else f"{cpu_model()} {available_cores()}c"
    base = re.sub(r"\((r|tm)\)|cpu|processor|\d+-core", "", base, flags=re.I)
    slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
    return slug or "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("numba", "torch", "scipy"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = "absent"
    return out


def _best_seconds(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@cache
def cpu_peaks() -> dict[str, float]:
    """sgemm GFLOP/s (2048^3 float32, BLAS; best of 15: on a shared VM a few calls lose a
    core) and copy GB/s (64 MiB, read + write, best of 5)."""
    n = 2048
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.copy()
    sgemm = 2 * n**3 / _best_seconds(lambda: a @ b, 15) / 1e9
    src = np.ones(16 * 2**20, np.float32)
    dst = np.empty_like(src)
    copy = 2 * src.nbytes / _best_seconds(lambda: np.copyto(dst, src), 5) / 1e9
    return {"sgemm_gflops": round(sgemm, 1), "copy_gbs": round(copy, 1)}


@cache
def gpu_peaks() -> dict[str, float] | None:
    """fp32 matmul TFLOP/s (8192^3, TF32 off) and device copy GB/s (1 GiB), or None."""
    if gpu_name() is None:
        return None
    import torch

    def timed(fn, repeats=5):
        fn()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3)
        return best

    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 8192
    a = torch.randn(n, n, device="cuda")
    mm = 2 * n**3 / timed(lambda: a @ a) / 1e12
    torch.backends.cuda.matmul.allow_tf32 = old
    src = torch.empty(2**28, device="cuda")
    dst = torch.empty_like(src)
    copy = 2 * src.numel() * 4 / timed(lambda: dst.copy_(src)) / 1e9
    return {"gpu_fp32_tflops": round(mm, 2), "gpu_copy_gbs": round(copy, 1)}


def describe() -> dict:
    """Everything a result file should carry about the machine (peaks measured now)."""
    from implementations.threads import current_threads

    info = {"machine": machine_name(), "cpu": cpu_model(), "threads": current_threads(),
            "gpu": gpu_name(), "versions": versions(), **cpu_peaks()}
    gpu = gpu_peaks()
    if gpu:
        info.update(gpu)
    return info
