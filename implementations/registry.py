"""The one registry of tiers: every fact about a tier that other code needs lives here.

The CLI, the tests, the benchmark suite, the studies, the profiles and the report ask a
tier's entry (device, family, baseline, formats, loaders, processes, too-slow sizes, profile
settings, GPU launch-floor model) instead of testing its name; `select` picks tiers by those
facts, and `resolve` is the one way from a name (and the options asked for) to a usable tier,
raising TierError with one message form.

Adding a tier = one `Tier(...)` entry in _ENTRIES plus its code (a kernels module for a
from-scratch tier, or a Model subclass under implementations/models/).
"""

import dataclasses
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from implementations import probes
from implementations.formats import get_format, numpy_dtype


class TierError(ValueError):
    """A tier that is unknown, unavailable here, or asked for something it does not
    support. The message names the tier, the problem, and what to use instead."""


@dataclass(frozen=True)
class Profile:
    """How `mnist-tiers profile` runs a tier (profiles/): train steps at batch 64 for the
    phase breakdown after `warmup` untimed ones, steps under tracemalloc for the memory
    figures, and steps under scalene's 10 ms sampling (~2-4 s of work)."""

    steps: int = 200
    warmup: int = 10
    memory_steps: int = 5
    scalene_steps: int = 3000


# loops takes ~1.5 s a step at batch 64 and has nothing to warm up; tracemalloc slows
# Python-heavy code severalfold
SLOW_PROFILE = Profile(steps=5, warmup=1, memory_steps=1, scalene_steps=3)

# GPU launch-floor models (bench/studies/gpu_floor.py): the least time an epoch's launches
# take, from costs measured in the same run
LAUNCH_FLOORS = {
    "persistent-kernel": "one launch per epoch and 2 grid syncs per step",
    "kernel-per-op": "LAUNCHES_PER_STEP Numba launches and ALLOCATIONS_PER_STEP "
                     "allocations per step",
    "eager": "the CUDA kernels torch.profiler sees in one step, each at an eager launch's cost",
    "graph": "the CUDA kernels torch.profiler sees in one step, each at a graph node's cost",
}


@dataclass(frozen=True)
class Tier:
    """One way of executing the network.

    name: the CLI's --tier value; description: one line, what changed from the tier before;
    device: "cpu" or "cuda"; build(params, activation, **options) -> Model (compiled and
    warmed where the tier needs it); kernels: dotted path of its kernel-contract module (None
    for tiers without one); check() -> None when usable here, else the reason (cached);
    note() -> an extra word for `mnist-tiers tiers` (or None).
    """

    name: str
    description: str
    device: str
    build: Callable
    kernels: str | None = None
    check: Callable[[], str | None] = lambda: None
    note: Callable[[], str | None] = lambda: None
    # "scratch": our own arithmetic (kernels/); "framework": a library's (PyTorch, JAX)
    family: str = "scratch"
    framework: str | None = None  # the library under a framework tier: "torch" or "jax"
    # the tier this one is compared with in the report's crossovers: the one it improves on
    baseline: str | None = None
    processes: bool = False  # runs in several worker processes (procs option, --procs)
    loaders: tuple[str, ...] = ("resident",)  # how batches reach it (loader option)
    formats: tuple[str, ...] = ("float32",)  # number formats (dtype option), see formats.py
    formats_note: str = ""  # how it computes in them, when that needs saying
    # whose allocator holds its step's arrays: "traced" (NumPy's: tracemalloc sees them),
    # "torch" (a caching allocator neither tracemalloc nor the RSS high-water mark sees once
    # warm), "xla" (XLA's buffers, outside tracemalloc) or "numba-device" (Numba CUDA device
    # arrays; no peak counter, see profiles.breakdown.memory)
    allocator: str = "traced"
    # False: too slow for full epochs; the suite times it on EPOCH_SAMPLES samples, at most
    # max_batch per call, and the sweep skips cells estimated above SLOW_CELL_SECONDS at
    # `flops_per_second` (its measured rate here)
    fast: bool = True
    max_batch: int | None = None
    epoch_samples: int | None = None
    flops_per_second: float | None = None
    profile: Profile = field(default_factory=Profile)
    profiler: str | None = None  # its framework's own profiler: "torch.profiler", "jax.profiler"
    thread_pool: str | None = None  # the one pool it runs on, as threads.thread_counts names it
    # its compilation takes about a minute (torch.compile's Inductor): bench/gpu_check.sh
    # gives its training a longer limit and leaves it out of the profiles
    slow_compile: bool = False
    launch_floor: str | None = None  # a key of LAUNCH_FLOORS (GPU tiers that have one)
    color: str | None = None  # its colour in every plot (tier_color; None: from PALETTE)

    @property
    def unavailable_reason(self) -> str | None:
        return _reason(self)

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None

    @property
    def default_format(self) -> str:
        """float32 where the tier has it, else its only format (loops: float64)."""
        return "float32" if "float32" in self.formats else self.formats[0]

    def check_format(self, name: str | None) -> str:
        """The format to compute in: `name` (None: the default) if this tier computes in it;
        TierError naming what it supports otherwise (ValueError for an unknown format)."""
        if name is None:
            return self.default_format
        get_format(name)
        if name not in self.formats:
            how = f" ({self.formats_note})" if self.formats_note else ""
            raise TierError(f"tier {self.name!r} does not compute in {name}; it supports "
                            f"{', '.join(self.formats)}{how}")
        return name

    def too_slow_for(self, batch: int) -> str | None:
        """Why a call at `batch` samples is not timed for this tier, else None."""
        if self.max_batch is not None and batch > self.max_batch:
            return (f"{self.name} at batch {batch} takes too long per call; its per-sample "
                    f"rate is measured at batch {self.max_batch}")
        return None


SLOW_CELL_SECONDS = 2.0


# environment variables a probe's failure may come from, named in its reason when set
PROBE_ENV = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "XLA_FLAGS", "NUMBA_CACHE_DIR",
             "CXX", "CUDA_VISIBLE_DEVICES")


@cache
def _reason(tier: Tier) -> str | None:
    """tier.check(), where a probe that raises makes this one tier unavailable (with what
    it raised and the environment it may come from), never the listing or the run."""
    try:
        return tier.check()
    except Exception as exc:  # noqa: BLE001  (any failure of a probe means: cannot run)
        env = [f"{k}={os.environ[k]}" for k in PROBE_ENV if os.environ.get(k)]
        hint = (f"; check the environment ({', '.join(env)}) or unset it" if env else "")
        return f"its availability check failed: {type(exc).__name__}: {exc}{hint}"


def warmed(build):
    """Wrap a builder so the model is compiled/warmed (timed apart) before it is returned."""

    def warmed_build(params, activation="relu", **options):
        from implementations.models.base import warm_up

        model = build(params, activation, **options)
        # worker start-up (DDP) counts as set-up, like compilation
        model.compile_seconds = getattr(model, "startup_seconds", 0.0) + warm_up(model)
        return model

    return warmed_build


def scratch_model(kernels_module: str, name: str):
    """A ScratchMLP over `kernels_module`, driven op by op from Python."""

    def build(params, activation="relu", dtype="float32", **options):
        from implementations.models.scratch import ScratchMLP

        if options:
            raise TierError(f"tier {name!r} takes no options, got {sorted(options)}")
        return ScratchMLP(importlib.import_module(kernels_module), params, activation,
                          numpy_dtype(dtype), name)

    return build


def model_class(module: str, cls: str, name: str, **kw):
    """The Model class `cls` of implementations.models.`module`, imported when built (the
    torch and CUDA models import their libraries, seconds that `mnist-tiers tiers` and a
    NumPy-only run should not pay)."""

    def build(params, activation="relu", **options):
        model_class = getattr(importlib.import_module(f"implementations.models.{module}"), cls)
        return model_class(params, activation, name=name, **kw, **options)

    return build


TORCH_LOADERS = ("resident", "dataloader")  # batches from resident tensors, or a DataLoader
CPU_TORCH_FORMATS = ("float32", "float64", "bfloat16")
GPU_FORMATS = ("float32", "tf32", "bfloat16", "float16")
AUTOCAST_NOTE = "bfloat16/float16 by autocast with float32 master weights"
TORCH = {"family": "framework", "framework": "torch", "allocator": "torch",
         "profiler": "torch.profiler", "thread_pool": "torch"}

_ENTRIES = [
    Tier("loops", "pure Python: lists and for-loops, no NumPy in the math. The baseline.",
         "cpu", scratch_model("kernels.loops", "loops"), "kernels.loops", fast=False,
         max_batch=64, epoch_samples=256, flops_per_second=5e7, profile=SLOW_PROFILE,
         formats=("float64",), formats_note="it computes with Python floats, which are "
         "float64"),
    Tier("numpy", "vectorized over the batch with NumPy (BLAS matmuls, array expressions).",
         "cpu", scratch_model("kernels.vectorized", "numpy"), "kernels.vectorized",
         baseline="loops", formats=("float32", "float64")),
    Tier("numba", "the loop algorithms compiled with @njit; parallel prange and cache-blocked "
         "kernels of our own (no BLAS).", "cpu",
         warmed(scratch_model("kernels.numba_cpu", "numba")), "kernels.numba_cpu",
         note=probes.numba_cache_note, baseline="numpy", thread_pool="numba",
         formats=("float32", "float64"), formats_note="the same kernels, specialized per dtype"),
    Tier("numba-fused", "the whole train step (and epoch) in one compiled function: fused "
         "kernels, no Python per op.", "cpu",
         warmed(model_class("numba_fused", "NumbaFusedMLP", "numba-fused")),
         note=probes.numba_cache_note, baseline="numpy", formats=("float32", "float64"),
         formats_note="the same kernels, specialized per dtype", thread_pool="numba"),
    Tier("torch-cpu", "PyTorch nn.Module + autograd + torch.optim.SGD, eager, CPU.", "cpu",
         warmed(model_class("torch_nn", "TorchModel", "torch-cpu", device="cpu")),
         baseline="numpy", loaders=TORCH_LOADERS, formats=CPU_TORCH_FORMATS,
         formats_note=AUTOCAST_NOTE, **TORCH),
    Tier("torch-cpu-compile", "the same under torch.compile.", "cpu",
         warmed(model_class("torch_nn", "TorchModel", "torch-cpu-compile", device="cpu",
                        compile=True)), check=probes.cpp_compiler, baseline="torch-cpu",
         slow_compile=True,
         loaders=TORCH_LOADERS, formats=CPU_TORCH_FORMATS, formats_note=AUTOCAST_NOTE, **TORCH),
    Tier("torch-ddp", "the same split across processes with DistributedDataParallel (gloo).",
         "cpu", warmed(model_class("torch_ddp", "DDPModel", "torch-ddp")), baseline="torch-cpu",
         processes=True, formats=CPU_TORCH_FORMATS, formats_note=AUTOCAST_NOTE, **TORCH),
    Tier("torch-cuda", "eager PyTorch on the GPU, data resident on the device.", "cuda",
         warmed(model_class("torch_nn", "TorchModel", "torch-cuda", device="cuda")),
         check=probes.cuda_gpu, baseline="torch-cpu", loaders=TORCH_LOADERS,
         formats=GPU_FORMATS, formats_note=AUTOCAST_NOTE + "; float16 with a gradient scaler",
         launch_floor="eager", **TORCH),
    Tier("torch-cuda-graph", "the whole epoch captured once as one CUDA graph (gather, step "
         "and loss of every batch) and replayed; per-step graphs for the per-pass benchmarks.",
         "cuda", warmed(model_class("torch_nn", "TorchModel", "torch-cuda-graph",
                                    device="cuda", graph=True)),
         check=probes.cuda_gpu, baseline="torch-cuda",
         loaders=TORCH_LOADERS, formats=("float32", "tf32", "bfloat16"),
         formats_note=AUTOCAST_NOTE + "; no float16: its gradient scaler syncs with the host, "
         "which a captured graph cannot", launch_floor="graph", **TORCH),
    Tier("torch-cuda-compile", "the same under torch.compile on the GPU (mode "
         "reduce-overhead: Inductor's kernels replayed as CUDA graphs).", "cuda",
         warmed(model_class("torch_nn", "TorchModel", "torch-cuda-compile", device="cuda",
                        compile="reduce-overhead")), check=probes.torch_compile_cuda,
         slow_compile=True,
         baseline="torch-cuda", formats=("float32", "tf32", "bfloat16"),
         formats_note=AUTOCAST_NOTE, launch_floor="graph", **TORCH),
    Tier("numba-cuda", "our own Numba CUDA kernels (shared-memory tiled GEMM, fused "
         "softmax-CE), driven op by op from Python: one launch per op.", "cuda",
         warmed(model_class("numba_cuda", "CudaScratchMLP", "numba-cuda")),
         "kernels.numba_cuda", check=probes.numba_cuda, baseline="numpy",
         formats_note="float32 only",
         allocator="numba-device", launch_floor="kernel-per-op"),
    Tier("numba-cuda-fused", "the whole epoch in one persistent cooperative Numba CUDA "
         "kernel (2 grid syncs per step).", "cuda",
         warmed(model_class("numba_cuda", "NumbaCudaFusedMLP", "numba-cuda-fused")),
         check=probes.numba_cuda_grid_sync, baseline="numba-cuda",
         formats_note="float32 only", allocator="numba-device",
         launch_floor="persistent-kernel"),
    Tier("torch-ddp-cuda", "torch-ddp on GPUs: NCCL, one GPU per rank.", "cuda",
         warmed(model_class("torch_ddp", "DDPModel", "torch-ddp-cuda", device="cuda")),
         check=probes.multi_gpu, baseline="torch-cuda", processes=True,
         formats=("float32", "bfloat16"), formats_note=AUTOCAST_NOTE, **TORCH),
]

JAX = {"family": "framework", "framework": "jax", "allocator": "xla",
       "profiler": "jax.profiler", "formats": ("float32", "float64", "bfloat16"),
       "formats_note": "float64 with jax_enable_x64; bfloat16 matmuls and activations from "
                       "float32 master weights, the loss in float32"}
JAX_CPU = {**JAX, "check": probes.jax_cpu, "thread_pool": "xla"}
JAX_GPU = {**JAX, "check": probes.jax_gpu}
_ENTRIES += [
    Tier("jax", "a jax.jit train step (value_and_grad + SGD, donated buffers) called per "
         "batch from Python: the framework's per-step dispatch, the twin of torch-cpu.",
         "cpu", warmed(model_class("jax_xla", "JaxMLP", "jax")), baseline="numpy", **JAX_CPU),
    Tier("jax-scan", "the whole epoch as one XLA program (lax.scan over the batches, then "
         "the partial one): a compiler's answer to numba-fused.", "cpu",
         warmed(model_class("jax_xla", "JaxMLP", "jax-scan", scan=True)), baseline="jax",
         **JAX_CPU),
    Tier("jax-cuda", "the jax tier on the GPU (XLA's CUDA backend).", "cuda",
         warmed(model_class("jax_xla", "JaxMLP", "jax-cuda", device="cuda")),
         baseline="jax", **JAX_GPU),
    Tier("jax-scan-cuda", "the jax-scan tier on the GPU: the epoch as one XLA program.",
         "cuda", warmed(model_class("jax_xla", "JaxMLP", "jax-scan-cuda", scan=True,
                                    device="cuda")), baseline="jax-cuda", **JAX_GPU),
]

# one colour per tier in every plot: scratch CPU tiers warm (loops brown, numpy red, Numba
# orange/gold), PyTorch blue/purple, JAX green, the GPU tiers darker or lighter shades
TIER_COLORS = {'loops': '#8c564b',
                'numpy': '#d62728',
                'numba': '#ff7f0e',
                'numba-fused': '#c9a100',
                'torch-cpu': '#1f77b4',
                'torch-cpu-compile': '#17becf',
                'torch-ddp': '#9467bd',
                'torch-cuda': '#08306b',
                'torch-cuda-graph': '#6baed6',
                'torch-cuda-compile': '#3182bd',
                'numba-cuda': '#a63603',
                'numba-cuda-fused': '#fd8d3c',
                'torch-ddp-cuda': '#54278f',
                'jax': '#2ca02c',
                'jax-scan': '#66a61e',
                'jax-cuda': '#00441b',
                'jax-scan-cuda': '#41ab5d'}
_ENTRIES = [dataclasses.replace(t, color=t.color or TIER_COLORS.get(t.name)) for t in _ENTRIES]

TIERS: dict[str, Tier] = {t.name: t for t in _ENTRIES}

# for tiers registered without a colour (tab10's, then darker ones), in registration order
PALETTE = ("#e377c2", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39",
           "#7b4173", "#5254a3", "#9c9ede")
NOT_A_TIER_COLOR = "#555555"  # a row that is no tier (the BLAS in the matmul benchmarks)


def tier_color(name: str) -> str:
    """The colour of tier `name` in every plot: its registered one, else a PALETTE entry
    by its place among the tiers registered without one; NOT_A_TIER_COLOR for other rows."""
    tier = TIERS.get(name)
    if tier is None:
        return NOT_A_TIER_COLOR
    if tier.color:
        return tier.color
    plain = [n for n, t in TIERS.items() if not t.color]
    return PALETTE[plain.index(name) % len(PALETTE)]

# Roles in the studies: documented defaults a user can override (the flag in brackets)
ORACLE = "numpy"  # every "vs numpy" ratio; the base of alternate and gpu_floor
SPEED_BASES = ("loops", "numpy")  # the report's "vs" columns
# the CPU tier whose epoch splits the hidden units' panels between its threads (the report
# explains the sweep cells it loses by it: a width of one panel runs on one thread)
CPU_FUSED = "numba-fused"
# the seed's PyTorch network as it wrote it (eager, CPU): the peer of its scratch claims
FRAMEWORK_PEER = "torch-cpu"
# the GPU targets (bench/studies/gpu_floor.py): our fused GPU epoch, and the CUDA-graph
# epoch against its eager baseline
GPU_FUSED, GPU_GRAPH = "numba-cuda-fused", "torch-cuda-graph"
WIDTH_STUDY = "numba-fused"  # trained at other widths (make train-reference WIDTH_TIER=)
ALTERNATE = ("numba-fused",)  # mnist-tiers alternate's tiers (--tier)
REFERENCE_FORMATS = (("numpy", "float64"), ("torch-cpu", "bfloat16"))  # (REF_FORMATS=)


def register(tier: Tier) -> Tier:
    """Add `tier` to the registry (a test's throwaway tier, or a plug-in); TierError if
    its name is taken."""
    if tier.name in TIERS:
        raise TierError(f"tier {tier.name!r} is already registered")
    TIERS[tier.name] = tier
    return tier


def unregister(name: str) -> None:
    """Remove a tier added with `register`."""
    TIERS.pop(name, None)


def select(*, device: str | None = None, family: str | None = None,
           framework: str | None = None, available: bool | None = None,
           fast: bool | None = None, processes: bool | None = None,
           launch_floor: bool | None = None) -> list[Tier]:
    """The tiers whose facts match every argument given (None: any), in registry order.
    launch_floor=True: the tiers with a GPU launch-floor model."""
    out = []
    for t in TIERS.values():
        if ((device is None or t.device == device)
                and (family is None or t.family == family)
                and (framework is None or t.framework == framework)
                and (fast is None or t.fast == fast)
                and (processes is None or t.processes == processes)
                and (launch_floor is None or (t.launch_floor is not None) == launch_floor)
                and (available is None or t.available == available)):
            out.append(t)
    return out


def names(tiers) -> list[str]:
    return [t.name for t in tiers]


def device_of(name: str, default: str = "cpu") -> str:
    """The device of tier `name`; `default` for a name the registry does not know (a row of
    a result file from another version, or a non-tier row such as openblas)."""
    return TIERS[name].device if name in TIERS else default


def get_tier(name: str) -> Tier:
    """The tier called `name`; TierError listing the known names otherwise."""
    if isinstance(name, Tier):
        return name
    try:
        return TIERS[name]
    except (KeyError, TypeError):
        raise TierError(f"unknown tier {name!r}; known tiers: {', '.join(TIERS)}") from None


def resolve(name: "str | Tier", *, dtype: str | None = None, loader: str | None = None,
            procs: int | None = None) -> Tier:
    """The one way from a tier name (and the options asked for) to a usable tier.

    Raises TierError when the tier is unknown, unavailable here (with the reason), or does
    not support the number format `dtype`, the `loader` or several processes (`procs`),
    naming the tiers that do.
    """
    tier = get_tier(name)
    if tier.unavailable_reason:
        raise TierError(f"tier {tier.name!r} is unavailable here: {tier.unavailable_reason}")
    tier.check_format(dtype)
    if loader is not None and loader not in tier.loaders:
        others = ", ".join(t.name for t in TIERS.values() if loader in t.loaders)
        raise TierError(f"tier {tier.name!r} takes batches only {' or '.join(tier.loaders)}"
                        f"; the {loader} loader applies to {others}")
    if procs is not None and not tier.processes:
        multi = ", ".join(t.name for t in TIERS.values() if t.processes)
        raise TierError(f"tier {tier.name!r} runs in one process; worker processes apply "
                        f"to {multi}")
    return tier


def build_model(name: "str | Tier", params, activation="relu", **options):
    """A ready model of tier `name` (compiled/warmed if the tier needs it).

    options: the tier's own (procs, loader, tf32) and dtype, a number format the tier
    supports (default: its default_format). Raises TierError (a ValueError) for an unknown
    or unavailable tier or an option it does not support.
    """
    tier = resolve(name, dtype=options.get("dtype"), loader=options.get("loader"),
                   procs=options.get("procs"))
    options["dtype"] = tier.check_format(options.get("dtype"))
    return tier.build(params, activation, **options)
