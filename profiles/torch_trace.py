"""torch.profiler on a torch tier: an operator table and a Chrome/Perfetto trace.

The model's phase spans become record_function labels (forward, loss, backward, optimizer),
so the trace shows the four phases with the operators (and, on CUDA, kernels) inside them.
    python -m profiles.torch_trace --tier torch-cpu --out-dir profiles/reports/<machine>
"""

import gzip
import os
import sys
from pathlib import Path

from implementations.experiment import init_params
from implementations.fileio import atomic_write
from implementations.registry import TIERS, build_model
from implementations.threads import set_threads
from profiles.workload import mnist_batches, run_steps, trace_main

TRACE_STEPS = 5  # a short window keeps the committed trace small
# Kineto's own start/stop chatter (and a GPU-count "error" on CPU-only machines) is noise
os.environ.setdefault("KINETO_LOG_LEVEL", "5")


class RecordFunctionClock:
    """A model clock whose spans are torch.profiler.record_function labels."""

    def __call__(self, name):
        import torch

        return torch.profiler.record_function(name)


def profile(tier: str, out_dir: Path, steps: int = 50) -> dict[str, Path]:
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    set_threads()
    model = build_model(tier, init_params(0))
    batches = mnist_batches(model, steps)
    run_steps(model, batches[:10])
    model.clock = RecordFunctionClock()
    activities = [ProfilerActivity.CPU]
    if TIERS[tier].device == "cuda":
        activities.append(ProfilerActivity.CUDA)
    sort = "self_cuda_time_total" if TIERS[tier].device == "cuda" else "self_cpu_time_total"
    out_dir.mkdir(parents=True, exist_ok=True)
    table_path = out_dir / f"torch-{tier}-table.txt"
    trace_path = out_dir / f"torch-{tier}-trace.json.gz"
    # wait/warmup, then record TRACE_STEPS steps: the table and the trace cover that window
    sched = schedule(wait=2, warmup=3, active=TRACE_STEPS, repeat=1)
    with profile(activities=activities, schedule=sched, record_shapes=True) as prof:
        for xb, yb in batches[: 2 + 3 + TRACE_STEPS]:
            model.train_step(xb, yb, 0.1)
            model.sync()
            prof.step()
    table = prof.key_averages().table(sort_by=sort, row_limit=30)
    header = (f"torch.profiler, tier {tier}, {TRACE_STEPS} train steps at batch 64 "
              f"(after 15 untimed), sorted by {sort}; torch {torch.__version__}\n\n")
    atomic_write(table_path, header + table)
    raw = out_dir / f".torch-{tier}-trace.json"
    prof.export_chrome_trace(str(raw))
    repo = f"{Path(__file__).resolve().parent.parent}/"
    with gzip.open(trace_path, "wt") as dst:  # paths relative to the repository
        dst.write(raw.read_text().replace(repo, ""))
    raw.unlink()
    return {"table": table_path, "trace": trace_path}


def main(argv=None) -> int:
    return trace_main(profile, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
