"""Per-phase time of every tier (our own timers): where a train step's time goes.

For one tier, in its own process (so its memory peak is its own):
    python -m profiles.breakdown --tier numpy --steps 200 --out breakdown-numpy.json
Phases are the spans each model opens around its ops (forward/linear1, backward/linear1,
update, ...; fused tiers have fewer). Every span synchronizes the device before reading the
clock, so GPU phases are charged where they were launched. "other" is the step time not
inside any span (Python glue, batch handling), so phases + other = step by construction.
"""

import argparse
import resource
import sys
import time
import tracemalloc

from implementations import data
from implementations.experiment import H, epoch_batches, init_params
from implementations.fileio import atomic_json
from implementations.phases import NULL_CLOCK, PhaseClock
from implementations.registry import TIERS, build_model
from implementations.threads import current_threads, set_threads
from profiles.workload import mnist_batches, run_steps


def measure(tier: str, steps: int | None = None, warmup: int | None = None,
            clock=None) -> dict:
    """Run `steps` train steps at batch 64 after `warmup` (defaults: the tier's registered
    profile settings); return ms per step per phase."""
    settings = TIERS[tier].profile
    steps = steps or settings.steps
    warmup = settings.warmup if warmup is None else warmup
    set_threads()
    model = build_model(tier, init_params(0))
    batches = mnist_batches(model, min(steps, 938))
    run_steps(model, batches, steps=warmup)
    if clock is None and hasattr(model, "phase_breakdown"):
        return _instrumented(tier, model, steps)
    phases = clock or PhaseClock(sync=model.sync)
    model.clock = phases
    t0 = phases.now()
    run_steps(model, batches, steps=steps)
    total = phases.now() - t0
    model.clock = NULL_CLOCK
    per_step = {name: 1e3 * phases.seconds[name] / steps for name in phases.order}
    step_ms = 1e3 * total / steps
    result = {
        "tier": tier, "device": TIERS[tier].device, "batch": 64, "hidden": H, "steps": steps,
        "threads": current_threads(TIERS[tier].thread_pool), "step_ms": step_ms,
        "phases_ms": per_step,
        "other_ms": step_ms - sum(per_step.values()),
        "compile_seconds": model.compile_seconds,
    }
    result.update(memory(model, batches[:settings.memory_steps]))
    return result


def _instrumented(tier: str, model, steps: int) -> dict:
    """A fused tier's phases from its instrumented build (Model.phase_breakdown), over the
    first `steps` batches of the shared order; "other" is the production step's time
    minus the phases, and phases_agree says whether they add up to it within 10%."""
    arrays = data.training_arrays()
    X, Y = model.prepare(arrays.x_train, arrays.y_train)
    batches = epoch_batches(len(X), 64, seed=0, epoch=0)[:max(steps, 2)]
    r = model.phase_breakdown(X, Y, batches, 0.1)
    total = sum(r["phases_ms"].values())
    result = {"tier": tier, "device": TIERS[tier].device, "batch": 64, "hidden": H,
              "steps": len(batches), "threads": current_threads(TIERS[tier].thread_pool),
              "step_ms": r["step_ms"],
              "phases_ms": r["phases_ms"], "other_ms": r["step_ms"] - total,
              "instrumented_step_ms": r["instrumented_step_ms"], "handoff_us": r["handoff_us"],
              "parallel_regions_per_step": r["parallel_regions_per_step"],
              "regions_per_epoch": r.get("regions_per_epoch"),
              "barriers_per_step": r.get("barriers_per_step"),
              "parts": r["parts"], "fused_threads": r["threads"],
              "phases_agree": bool(abs(total - r["step_ms"]) <= 0.1 * r["step_ms"]),
              "compile_seconds": model.compile_seconds,
              "method": r.get("method", "instrumented build")}
    result.update(memory(model, [model.take(X, Y, b) for b in batches[:5]]))
    return result


def memory(model, batches) -> dict:
    """Peak memory: process RSS (whole process, data included), the peak of Python/NumPy
    allocations during a few steps (tracemalloc; Numba's and torch's own allocators are not
    traced), and on CUDA the device memory in use: torch's max_memory_allocated for the
    torch tiers; for the Numba CUDA tiers (whose allocator keeps no peak) the device's used
    memory after the steps, from the driver (cuMemGetInfo: every context on the GPU)."""
    tracemalloc.start()
    run_steps(model, batches)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "traced_peak_mb": traced_peak / 2**20}
    if TIERS[model.name].device == "cuda" and TIERS[model.name].allocator == "numba-device":
        from kernels._cuda import cuda

        free, total = cuda.current_context().get_memory_info()
        out["gpu_used_mb"] = (total - free) / 2**20
    elif TIERS[model.name].device == "cuda":
        import torch

        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tier", required=True)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    result = measure(args.tier, args.steps)
    result["wall_seconds"] = time.perf_counter() - t0
    atomic_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
