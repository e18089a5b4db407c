"""What machine this is and what it can do: names, versions, and measured peaks.

The peaks are measured, not looked up: a large float32 matmul (the compute ceiling) and
copies (the bandwidth ceilings: one from DRAM/HBM, and cache-sized ones for L2 and L3), on
the CPU and, where present, on the GPU.
"""

import platform
import re
import time
from functools import cache
from pathlib import Path

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


SYSFS_CACHE = "/sys/devices/system/cpu/cpu0/cache"


def _parse_size(text: str) -> int:
    """sysfs cache size ("48K", "2048K", "32M", "1G" or plain bytes) in bytes."""
    text = text.strip().upper().removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def cache_sizes(root: str | Path = SYSFS_CACHE) -> dict[int, int]:
    """Data/unified cache size per level, in bytes, of cpu0: {1: ..., 2: ..., 3: ...}.

    Read from Linux sysfs (`root`/index*/level, type, size); instruction caches are skipped.
    Fallback: a level whose files are absent or unreadable is left out, and with no sysfs
    at all (not Linux, or a container hiding it) the answer is {}, so callers skip those
    levels rather than guess a size.
    """
    out: dict[int, int] = {}
    for index in sorted(Path(root).glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = _parse_size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        if kind != "Instruction" and size > 0:
            out[level] = max(out.get(level, 0), size)
    return out


DRAM_COPY_BYTES = 2 * 64 * 2**20  # src + dst of the DRAM copy: 64 MiB each


def _copy_gbs(total_bytes: int, samples: int, min_sample_s: float = 1e-3) -> float:
    """Best read+write GB/s (1e9 B/s) of np.copyto between two float32 arrays whose sizes
    add up to `total_bytes`.

    A small copy takes about as long as NumPy's per-call overhead (~1 us), so each timed
    sample is a loop of repeats, as many as make one sample last >= `min_sample_s`
    (calibrated on one copy after a warm-up); best of `samples` samples. Bandwidth counts
    bytes read plus bytes written (2 x one array), as the DRAM copy always has.
    """
    src = np.ones(max(1, total_bytes // 8), np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    t0 = time.perf_counter()
    np.copyto(dst, src)
    reps = max(1, int(np.ceil(min_sample_s / max(time.perf_counter() - t0, 1e-9))))
    best = float("inf")
    for _ in range(samples):
        t0 = time.perf_counter()
        for _ in range(reps):
            np.copyto(dst, src)
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * src.nbytes / best / 1e9


@cache
def cpu_peaks() -> dict[str, float]:
    """The CPU's measured ceilings: compute, and copy bandwidth at each memory level.

    sgemm_gflops: GFLOP/s of a 2048^3 float32 BLAS matmul (best of 15: on a shared VM a
    few calls lose a core).
    copy_gbs: DRAM copy GB/s (1e9 B/s, read + write) of a 64 MiB array, best of 5.
    l2_copy_gbs, l3_copy_gbs: the same copy with src + dst together half of that cache
    level (so both stay resident), many copies per timed sample, best of 7 (see _copy_gbs).
    The working set is also capped at a quarter of the DRAM copy's (32 MiB of its 128), so
    it stays clear of the DRAM copy even where sysfs reports a huge L3 shared with the rest
    of a host (a 2-core VM here sees 480 MiB, mostly held by other tenants: a 240 MiB copy
    measures DRAM, and 64 MiB ones swing between DRAM and L3 speed from run to run).
    l2_bytes, l3_bytes: the cache sizes read from sysfs, in bytes (see cache_sizes); a
    level sysfs does not report is skipped, and its keys are absent.
    Adds well under 1 s to the measurement (~0.05 s here).
    """
    n = 2048
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.copy()
    sgemm = 2 * n**3 / _best_seconds(lambda: a @ b, 15) / 1e9
    src = np.ones(DRAM_COPY_BYTES // 8, np.float32)
    dst = np.empty_like(src)
    copy = 2 * src.nbytes / _best_seconds(lambda: np.copyto(dst, src), 5) / 1e9
    out: dict[str, float] = {"sgemm_gflops": round(sgemm, 1), "copy_gbs": round(copy, 1)}
    sizes = cache_sizes()
    for level in (2, 3):
        if level in sizes:
            working_set = min(sizes[level] // 2, DRAM_COPY_BYTES // 4)
            out[f"l{level}_copy_gbs"] = round(_copy_gbs(working_set, samples=7), 1)
            out[f"l{level}_bytes"] = sizes[level]
    return out


@cache
def gpu_peaks() -> dict[str, float] | None:
    """The GPU's measured ceilings, or None without a CUDA GPU.

    gpu_fp32_tflops: fp32 matmul TFLOP/s (8192^3, TF32 off), best of 5.
    gpu_copy_gbs: HBM device copy GB/s (1e9 B/s, read + write) of 1 GiB, best of 5.
    gpu_l2_copy_gbs: the same with src + dst together half the L2 (from
    get_device_properties(0).L2_cache_size; skipped, with gpu_l2_bytes, where torch does not
    report it). One copy is a few microseconds, near a kernel launch's CPU cost, so each
    CUDA-event sample times 200 copies captured in one CUDA graph (falling back to 200
    queued launches where capture fails); best of 5.
    """
    if gpu_name() is None:
        return None
    import torch

    def timed(fn, repeats=5, inner=1):
        fn()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3 / inner)
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
    out = {"gpu_fp32_tflops": round(mm, 2), "gpu_copy_gbs": round(copy, 1)}
    l2 = int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or 0)
    if l2 > 0:
        src = torch.ones(max(1, l2 // 2 // 8), device="cuda")
        dst = torch.empty_like(src)
        copies = 200
        try:  # one graph launch for all the copies: no per-copy Python launch cost
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(copies):
                    dst.copy_(src)
            secs = timed(graph.replay) / copies
        except RuntimeError:  # no graph capture: back-to-back launches, queued ahead
            secs = timed(lambda: dst.copy_(src), inner=copies)
        out["gpu_l2_copy_gbs"] = round(2 * src.numel() * 4 / secs / 1e9, 1)
        out["gpu_l2_bytes"] = l2
    return out


NUMBER_FORMAT_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16",
                       "amx_fp16")


def cpu_flags(path: str = "/proc/cpuinfo") -> list[str]:
    """The CPU's instruction-set flags that matter for the number formats (Linux)."""
    try:
        for line in open(path):
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in NUMBER_FORMAT_FLAGS if f in have]
    except OSError:
        pass
    return []


@cache
def torch_matmul_gflops(n: int = 1024) -> dict[str, float]:
    """GFLOP/s of an n^3 torch matmul on the CPU per format (float32, bfloat16), best of 10:
    what the hardware does with bfloat16, measured next to float32 in the same run."""
    try:
        import torch
    except ImportError:
        return {}
    out = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a = torch.randn(n, n).to(dtype)
        out[name] = round(2 * n**3 / _best_seconds(lambda a=a: a @ a, 10) / 1e9, 1)
    return out


def describe() -> dict:
    """Everything a result file should carry about the machine (peaks measured now)."""
    from implementations.threads import current_threads, thread_counts

    info = {"machine": machine_name(), "cpu": cpu_model(), "threads": current_threads(),
            "threads_by_library": thread_counts(), "cpu_flags": cpu_flags(),
            "torch_matmul_gflops": torch_matmul_gflops(),
            "gpu": gpu_name(), "versions": versions(), **cpu_peaks()}
    gpu = gpu_peaks()
    if gpu:
        info.update(gpu)
    return info
