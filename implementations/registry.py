"""The one registry of tiers. CLI, tests, benchmarks, profiles and the report all read it.

Adding a tier = one `Tier(...)` entry below plus its code.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Tier:
    """name: the CLI's --tier value; device: "cpu" or "cuda"; kernels: dotted module path
    of its kernel-contract module (None for tiers without one); build(params, activation)
    -> Model; check() -> None when usable here, else the reason why not."""

    name: str
    description: str
    device: str
    build: Callable
    kernels: str | None = None
    check: Callable[[], str | None] = lambda: None
    fast: bool = True  # False: too slow for full epochs (loops)
    processes: bool = False  # True: runs in several worker processes (--procs)
    loaders: tuple[str, ...] = ("resident",)  # how batches reach it (--loader)
    formats: tuple[str, ...] = ("float32",)  # number formats (--dtype), see formats.py
    formats_note: str = ""  # how it computes in them, when that needs saying
    # whose allocator holds its step's arrays: "numpy" (tracemalloc sees them), "torch"
    # (a caching allocator neither tracemalloc nor the RSS high-water mark sees once warm)
    # or "numba-cuda" (device arrays; no peak counter, see profiles.breakdown.memory)
    allocator: str = "numpy"
    note: Callable[[], str | None] = lambda: None

    @property
    def unavailable_reason(self) -> str | None:
        return _reason(self.name)

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None

    @property
    def default_format(self) -> str:
        """float32 where the tier has it, else its only format (loops: float64)."""
        return "float32" if "float32" in self.formats else self.formats[0]

    def check_format(self, name: str) -> str:
        """`name` if this tier computes in it; a ValueError naming what it supports."""
        from implementations.formats import get_format

        get_format(name)
        if name not in self.formats:
            how = f" ({self.formats_note})" if self.formats_note else ""
            raise ValueError(f"tier {self.name!r} does not compute in {name}; it supports "
                             f"{', '.join(self.formats)}{how}")
        return name


@cache
def _reason(name: str) -> str | None:
    return TIERS[name].check()


def _warmed(build):
    """Wrap a builder so the model is compiled/warmed (timed apart) before it is returned."""

    def warmed_build(params, activation="relu", **options):
        from implementations.models.base import warm_up

        model = build(params, activation, **options)
        # worker start-up (DDP) counts as set-up, like compilation
        model.compile_seconds = getattr(model, "startup_seconds", 0.0) + warm_up(model)
        return model

    return warmed_build


def _scratch(kernels_module: str, name: str):
    def build(params, activation="relu", dtype="float32", **options):
        import importlib

        from implementations.formats import numpy_dtype
        from implementations.models.scratch import ScratchMLP

        if options:
            raise ValueError(f"tier {name!r} takes no options, got {sorted(options)}")

        return ScratchMLP(importlib.import_module(kernels_module), params, activation,
                          numpy_dtype(dtype), name)

    return build


def _lazy(module: str, cls: str, **kw):
    def build(params, activation="relu", **options):
        import importlib

        return getattr(importlib.import_module(module), cls)(params, activation, **kw, **options)

    return build


def _cuda_reason() -> str | None:
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


def _cpp_compiler_reason() -> str | None:
    """torch.compile on the CPU (Inductor) builds C++: find the compiler torch would use and
    compile a tiny program with it."""
    import subprocess
    import tempfile
    from pathlib import Path

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


def _numba_cuda_reason() -> str | None:
    """None when Numba CUDA runs a kernel on a real GPU here (the simulator does not
    count), else why not."""
    try:
        from kernels import _cuda
    except ImportError as exc:
        return (f"numba-cuda is not importable ({exc}); install it with "
                f"pip install 'numba-cuda[cu13]'")
    return _cuda.unavailable_reason()


def _numba_cuda_grid_sync_reason() -> str | None:
    """_numba_cuda_reason, and a cooperative kernel with a grid sync links and runs."""
    reason = _numba_cuda_reason()
    if reason:
        return reason
    from kernels import _cuda

    return _cuda.grid_sync_reason()


def _torch_compile_cuda_reason() -> str | None:
    """torch.compile on CUDA (Inductor) generates Triton kernels: a GPU and Triton."""
    reason = _cuda_reason()
    if reason:
        return reason
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        return f"torch.compile on CUDA needs Triton, which is not importable: {exc}"
    return None


def _multi_gpu_reason() -> str | None:
    reason = _cuda_reason()
    if reason:
        return reason
    import torch

    n = torch.cuda.device_count()
    return None if n >= 2 else f"needs at least 2 CUDA GPUs (one per rank), found {n}"


def _numba_cache_note() -> str | None:
    from kernels import _jit

    return None if _jit.CACHE else _jit.CACHE_STATUS


TORCH_LOADERS = ("resident", "dataloader")  # batches from resident tensors, or a DataLoader
CPU_TORCH_FORMATS = ("float32", "float64", "bfloat16")
GPU_FORMATS = ("float32", "tf32", "bfloat16", "float16")
AUTOCAST_NOTE = "bfloat16/float16 by autocast with float32 master weights"

_ENTRIES = [
    Tier("loops", "pure Python: lists and for-loops, no NumPy in the math. The baseline.",
         "cpu", _scratch("kernels.loops", "loops"), "kernels.loops", fast=False,
         formats=("float64",), formats_note="it computes with Python floats, which are "
         "float64"),
    Tier("numpy", "vectorized over the batch with NumPy (BLAS matmuls, array expressions).",
         "cpu", _scratch("kernels.vectorized", "numpy"), "kernels.vectorized",
         formats=("float32", "float64")),
    Tier("numba", "the loop algorithms compiled with @njit; parallel prange and cache-blocked "
         "kernels of our own (no BLAS).", "cpu", _warmed(_scratch("kernels.numba_cpu", "numba")),
         "kernels.numba_cpu", note=_numba_cache_note, formats=("float32", "float64"),
         formats_note="the same kernels, specialized per dtype"),
    Tier("numba-fused", "the whole train step (and epoch) in one compiled function: fused "
         "kernels, no Python per op.", "cpu",
         _warmed(_lazy("implementations.models.numba_fused", "NumbaFusedMLP")), note=_numba_cache_note,
         formats=("float32", "float64"), formats_note="the same kernels, specialized per dtype"),
    Tier("torch-cpu", "PyTorch nn.Module + autograd + torch.optim.SGD, eager, CPU.", "cpu",
         _warmed(_lazy("implementations.models.torch_nn", "TorchModel", device="cpu",
                       name="torch-cpu")), loaders=TORCH_LOADERS, formats=CPU_TORCH_FORMATS,
         formats_note=AUTOCAST_NOTE, allocator="torch"),
    Tier("torch-cpu-compile", "the same under torch.compile.", "cpu",
         _warmed(_lazy("implementations.models.torch_nn", "TorchModel", device="cpu",
                       compile=True, name="torch-cpu-compile")), check=_cpp_compiler_reason,
         loaders=TORCH_LOADERS, formats=CPU_TORCH_FORMATS, formats_note=AUTOCAST_NOTE,
         allocator="torch"),
    Tier("torch-ddp", "the same split across processes with DistributedDataParallel (gloo).",
         "cpu", _warmed(_lazy("implementations.models.torch_ddp", "DDPModel", name="torch-ddp")),
         processes=True, formats=CPU_TORCH_FORMATS, formats_note=AUTOCAST_NOTE,
         allocator="torch"),
    Tier("torch-cuda", "eager PyTorch on the GPU, data resident on the device.", "cuda",
         _warmed(_lazy("implementations.models.torch_nn", "TorchModel", device="cuda",
                       name="torch-cuda")), check=_cuda_reason, loaders=TORCH_LOADERS,
         formats=GPU_FORMATS, formats_note=AUTOCAST_NOTE + "; float16 with a gradient scaler"),
    Tier("torch-cuda-graph", "the whole epoch captured once as one CUDA graph (gather, step "
         "and loss of every batch) and replayed; per-step graphs for the per-pass benchmarks.",
         "cuda", _warmed(_lazy("implementations.models.torch_nn", "TorchModel", device="cuda",
                               graph=True, name="torch-cuda-graph")), check=_cuda_reason,
         loaders=TORCH_LOADERS, formats=("float32", "tf32", "bfloat16"),
         formats_note=AUTOCAST_NOTE + "; no float16: its gradient scaler syncs with the host, "
         "which a captured graph cannot"),
    Tier("torch-cuda-compile", "the same under torch.compile on the GPU (mode "
         "reduce-overhead: Inductor's kernels replayed as CUDA graphs).", "cuda",
         _warmed(_lazy("implementations.models.torch_nn", "TorchModel", device="cuda",
                       compile="reduce-overhead", name="torch-cuda-compile")),
         check=_torch_compile_cuda_reason, formats=("float32", "tf32", "bfloat16"),
         formats_note=AUTOCAST_NOTE, allocator="torch"),
    Tier("numba-cuda", "our own Numba CUDA kernels (shared-memory tiled GEMM, fused "
         "softmax-CE), driven op by op from Python: one launch per op.", "cuda",
         _warmed(_lazy("implementations.models.numba_cuda", "CudaScratchMLP")), "kernels.numba_cuda",
         check=_numba_cuda_reason, formats_note="float32 only", allocator="numba-cuda"),
    Tier("numba-cuda-fused", "the whole epoch in one persistent cooperative Numba CUDA "
         "kernel (2 grid syncs per step).", "cuda",
         _warmed(_lazy("implementations.models.numba_cuda", "NumbaCudaFusedMLP")),
         check=_numba_cuda_grid_sync_reason, formats_note="float32 only", allocator="numba-cuda"),
    Tier("torch-ddp-cuda", "torch-ddp on GPUs: NCCL, one GPU per rank.", "cuda",
         _warmed(_lazy("implementations.models.torch_ddp", "DDPModel", device="cuda",
                       name="torch-ddp-cuda")), check=_multi_gpu_reason, processes=True,
         formats=("float32", "bfloat16"), formats_note=AUTOCAST_NOTE),
]

TIERS: dict[str, Tier] = {t.name: t for t in _ENTRIES}


def get_tier(name: str) -> Tier:
    """The tier called `name`; a clear ValueError listing the known names otherwise."""
    try:
        return TIERS[name]
    except KeyError:
        raise ValueError(f"unknown tier {name!r}; known tiers: {', '.join(TIERS)}") from None


def build_model(name: str, params, activation="relu", **options):
    """A ready model of tier `name` (compiled/warmed if the tier needs it).

    options: the tier's own (procs, loader, tf32) and dtype, a number format the tier
    supports (default: its default_format). Raises ValueError for a format the tier lacks,
    RuntimeError naming the reason when the tier cannot run here.
    """
    tier = get_tier(name)
    options["dtype"] = tier.check_format(options.get("dtype") or tier.default_format)
    reason = tier.unavailable_reason
    if reason:
        raise RuntimeError(f"tier {name!r} is unavailable here: {reason}")
    return tier.build(params, activation, **options)
