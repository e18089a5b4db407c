"""`make profile` / `mnist-tiers profile`: every profile for the tiers available here.

Writes out/profiles/<machine>/ (ignored by git; `--reference`: the committed
profiles/reports/<machine>/): breakdown.{json,md,png} (our phase timers, every tier),
scalene HTML/JSON (CPU tiers; under scalene/, not committed: 1-10 MB each) plus a text view,
torch.profiler tables and trimmed Chrome traces (torch tiers), and index.html + README.md.
"""

import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

from implementations.fileio import check_writable
from implementations.machine import describe, machine_name
from implementations.noise import NoiseGuard
from implementations.paths import profiles_root
from implementations.provenance import record
from implementations.registry import TIERS, resolve, select
from profiles import report_index, scalene_run, xla_trace
from profiles import torch_trace as tt

LOCK_SECONDS = 600  # a writer holds the lock for the seconds a page takes; this is slack


def say(msg: str) -> None:
    print(msg, flush=True)


def run_breakdown(tier: str, out_dir: Path, steps: int | None) -> dict:
    """One tier in its own process (its own memory peak); returns its breakdown dict."""
    out = out_dir / f".breakdown-{tier}.json"
    cmd = [sys.executable, "-m", "profiles.breakdown", "--tier", tier, "--out", str(out)]
    if steps:
        cmd += ["--steps", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"breakdown of {tier} failed: {proc.stderr[-800:]}")
    result = json.loads(out.read_text())
    out.unlink()
    return result


def profile(tiers: list[str] | None = None, out_dir: Path | None = None,
            steps: int | None = None, scalene: bool = True, torch_trace: bool = True,
            reference: bool = False) -> Path:
    """Profile `tiers` (default: every available tier); returns the index.html path.

    Writes out/profiles/<machine>/ (ignored by git), or with reference=True the committed
    profiles/reports/<machine>/, unless out_dir is given.
    """
    names = [resolve(n).name for n in tiers] if tiers else [t.name for t in
                                                           select(available=True)]
    out_dir = out_dir or profiles_root(reference) / machine_name()
    check_writable(out_dir / "breakdown.json")
    mine = {}  # this run's breakdowns, merged into the folder's under a lock at the end
    total = len(names)
    t_start = time.perf_counter()
    for i, name in enumerate(names, 1):
        t0 = time.perf_counter()
        say(f"[{i}/{total}] {name}: phase breakdown ...")
        with NoiseGuard(f"profile {name}") as guard:
            mine[name] = run_breakdown(name, out_dir, steps)
        mine[name].update(record(guard))  # each tier's own: runs merge into one file
        # a tier in worker processes does its work outside the process these profilers see;
        # its breakdown carries rank 0's phases instead
        in_workers = TIERS[name].processes
        if scalene and TIERS[name].device == "cpu" and not in_workers:
            say(f"[{i}/{total}] {name}: scalene ...")
            scalene_run.profile(name, out_dir)
        if torch_trace and TIERS[name].profiler == "torch.profiler" and not in_workers:
            say(f"[{i}/{total}] {name}: torch.profiler ...")
            tt.profile(name, out_dir)
        if torch_trace and TIERS[name].profiler == "jax.profiler":
            say(f"[{i}/{total}] {name}: jax.profiler ...")
            xla_trace.profile(name, out_dir)
        say(f"[{i}/{total}] {name}: done in {time.perf_counter() - t0:.0f} s")
    info = describe()
    info["date"] = datetime.date.today().isoformat()
    # two `profile` runs into one folder: each merges its tiers into what is there when it
    # writes, one at a time, so neither run's tiers are lost whatever the interleaving
    with FileLock(str(out_dir / ".profiles.lock"), timeout=LOCK_SECONDS):
        results = report_index.load_breakdowns(out_dir)
        results.update(mine)
        index = report_index.write(out_dir, results, info)
    say(f"profiles written in {time.perf_counter() - t_start:.0f} s: {index}")
    return index
