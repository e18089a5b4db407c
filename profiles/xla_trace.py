"""XLA's own profiler on a JAX tier: a Perfetto trace of a few train steps (jax.profiler).

The trace shows each step's compiled XLA program and the ops inside it (fusions, dots),
with the Python dispatch between steps: where the time goes inside the one program that our
phase timers can only see whole ("fused_step").
    python -m profiles.xla_trace --tier jax --out-dir out/profiles/<machine>
"""

import shutil
import sys
import tempfile
from pathlib import Path

from implementations.experiment import init_params
from implementations.fileio import atomic_target
from implementations.registry import build_model
from implementations.threads import set_threads
from profiles.workload import mnist_batches, run_steps, trace_main

TRACE_STEPS = 5  # a short window keeps the committed trace small


def profile(tier: str, out_dir: Path, steps: int = TRACE_STEPS) -> dict[str, Path]:
    """Trace `steps` train steps at batch 64 (after 10 untimed ones) of JAX tier `tier`;
    writes out_dir/xla-<tier>-trace.json.gz and returns {"trace": path}. RuntimeError when
    jax.profiler wrote no Perfetto trace."""
    import jax  # here, not at the top: profiling the other tiers does not load JAX

    set_threads()
    model = build_model(tier, init_params(0))
    batches = mnist_batches(model, 10 + steps)
    run_steps(model, batches[:10])
    out_dir.mkdir(parents=True, exist_ok=True)
    trace_path = out_dir / f"xla-{tier}-trace.json.gz"
    with tempfile.TemporaryDirectory() as work:
        with jax.profiler.trace(work, create_perfetto_trace=True):
            run_steps(model, batches[10:])
            model.sync()
        found = sorted(Path(work).rglob("perfetto_trace.json.gz"))
        if not found:
            raise RuntimeError(f"jax.profiler wrote no perfetto_trace.json.gz under {work}")
        with atomic_target(trace_path) as tmp:
            shutil.copyfile(found[-1], tmp)
    return {"trace": trace_path}


def main(argv=None) -> int:
    return trace_main(profile, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
