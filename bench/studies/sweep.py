"""`mnist-tiers sweep` / `make sweep`: how each tier's train step grows with batch and width.

Every available CPU tier times its train step over batch {1, 4, 16, 64, 256, 1024, 4096} x
hidden width {32, 128, 512, 2048} (`--quick`: {1, 64, 1024} x {32, 512}). The same rules as
bench/: a cell's result is checked against the float64 oracle before it is timed (a cell
that fails is reported, never timed), compilation and warm-up are outside the timing, every
library runs the same threads, and the measured sgemm peak of the same run gives % of peak.
A slow tier (the registry's fast=False: loops) is timed only where a step takes under
SLOW_CELL_SECONDS (estimated from its registered rate, flops_per_second); the other cells
say why they are empty. Each cell records the median step time with its quartiles,
GFLOP/s, and the memory a step needs: the analytic minimum next to what was measured.

The cost model of each tier, fitted over its cells: t_step = t0 + FLOPs / R (t0: fixed
cost per step, R: sustained rate), by least squares on the relative error; R^2 is that of
log t; the cells it misses by more than 30% are listed; from the fits, the predicted
crossover batch of each pair of tiers at H = 128 next to the measured one.

Writes out/bench/<machine>/sweep.json (quick-sweep.json with --quick; --reference: the
committed bench/results/<machine>/), atomically, with the run's provenance (machine, code
version) and machine state (implementations/noise.py: a busy run is flagged and warned).
An unwritable destination is refused before anything is timed.
"""

import contextlib
import io
import time
import tracemalloc
from pathlib import Path

import numpy as np
from tqdm import tqdm

from implementations import paths
from implementations.checks import assert_close, random_batch
from implementations.experiment import D, K, init_params, step_flops
from implementations.fileio import atomic_json, check_writable
from implementations.formats import tolerance
from implementations.machine import describe, machine_name
from implementations.noise import NoiseGuard
from implementations.oracle import oracle_step
from implementations.provenance import record
from implementations.registry import SLOW_CELL_SECONDS, build_model, resolve, select
from implementations.threads import set_threads

BATCHES = (1, 4, 16, 64, 256, 1024, 4096)
WIDTHS = (32, 128, 512, 2048)
QUICK_BATCHES, QUICK_WIDTHS = (1, 64, 1024), (32, 512)
LR = 0.1
MIN_SECONDS = 0.2  # timed per cell, at least MIN_REPS steps
MIN_REPS, MAX_REPS = 5, 400
MISS = 0.3  # a cell the cost model misses by more than this fraction is listed


def minimum_bytes(batch: int, h: int, d: int = D, k: int = K) -> int:
    """Analytic float32 minimum of a train step: weights and their gradients (2 x (dh + h +
    hk + k)) plus the activations kept for the backward: x (b, d), z1 and a1 (b, h), the
    hidden gradient (b, h), logits and their gradient (b, k)."""
    params = d * h + h + h * k + k
    return 4 * (2 * params + batch * (d + 3 * h + 2 * k))


def _rss_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB (Linux), else (0, 0)."""
    try:
        fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        return 0, 0


def measured_bytes(step) -> dict:
    """What one step allocates: tracemalloc's peak (Python and NumPy allocations; Numba's
    and torch's own allocators are not traced) and the peak RSS growth (pages newly touched
    during the step, after resetting the high-water mark; an allocator that reuses freed
    memory hides repeated temporaries)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    rss0, _ = _rss_kib()
    tracemalloc.start()
    step()
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    _, hwm = _rss_kib()
    return {"traced_bytes": int(traced), "rss_growth_bytes": max(0, hwm - rss0) * 1024}


def _time(step, sync) -> list[float]:
    times = []
    for _ in range(2):  # warm-up outside the timing
        step()
    sync()
    while (sum(times) < MIN_SECONDS or len(times) < MIN_REPS) and len(times) < MAX_REPS:
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def run_cell(model, params, batch: int, h: int, fmt: str = "float32") -> dict:
    """Check, then time, one (tier, batch, width) cell; returns its record."""

    x, y = random_batch(batch, D, K, seed=batch + h)
    ref = oracle_step(params, x, y, "relu", LR)
    model.load_weights(params)
    X, Y = model.prepare(x, y)
    xb, yb = model.take(X, Y, np.arange(batch))
    model.prepare_batches([batch], LR)
    cell = {"batch": batch, "hidden": h, "flops": step_flops(batch, h=h)["train_step"],
            "minimum_bytes": minimum_bytes(batch, h)}
    try:
        model.train_step(xb, yb, LR)
        with contextlib.redirect_stdout(io.StringIO()):  # the checks' lines would drown the bar
            for name, w in model.weights().items():
                assert_close(f"{model.name} {name}", w, ref[name], **tolerance(fmt, ref[name]))
    except AssertionError as exc:
        return {**cell, "error": f"result does not match the oracle, not timed: {exc}"}

    def step():
        model.train_step(xb, yb, LR)

    cell.update(measured_bytes(step))
    times = _time(step, model.sync)
    med = float(np.median(times))
    cell.update(median_s=med, p25_s=float(np.percentile(times, 25)),
                p75_s=float(np.percentile(times, 75)), reps=len(times),
                gflops=cell["flops"] / med / 1e9)
    return cell


def fit_cost_model(cells: list[dict]) -> dict | None:
    """t = t0 + F / R over a tier's timed cells (least squares on t_pred / t - 1)."""
    pts = [(c["flops"], c["median_s"]) for c in cells if "median_s" in c]
    if len(pts) < 3:
        return None
    f, t = np.array(pts, float).T
    (t0, inv_r), *_ = np.linalg.lstsq(np.column_stack([1 / t, f / t]), np.ones_like(t),
                                      rcond=None)
    t0, inv_r = max(float(t0), 0.0), max(float(inv_r), 1e-18)
    pred = t0 + f * inv_r
    lt, lp = np.log(t), np.log(pred)
    r2 = 1 - np.sum((lt - lp) ** 2) / max(np.sum((lt - lt.mean()) ** 2), 1e-30)
    misses = [{"batch": c["batch"], "hidden": c["hidden"],
               "measured_us": 1e6 * c["median_s"], "model_us": 1e6 * (t0 + c["flops"] * inv_r)}
              for c in cells if "median_s" in c
              and abs((t0 + c["flops"] * inv_r) / c["median_s"] - 1) > MISS]
    return {"t0_us": 1e6 * t0, "rate_gflops": 1 / inv_r / 1e9, "r2_log": float(r2),
            "misses": misses}


def crossovers(models: dict, cells: dict, h: int = 128) -> list[dict]:
    """Per pair of tiers: the batch where the cost models predict equal step times at width
    h, next to the first batch of the grid where the measured winner changes."""
    per_sample = step_flops(1, h=h)["train_step"]
    out = []
    names = sorted(m for m in models if models[m])
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ma, mb = models[a], models[b]
            ra, rb = ma["rate_gflops"] * 1e9, mb["rate_gflops"] * 1e9
            denom = 1 / ra - 1 / rb
            pred = None
            if denom:
                f_star = (mb["t0_us"] - ma["t0_us"]) * 1e-6 / denom
                pred = f_star / per_sample if f_star > 0 else None
            ta = {c["batch"]: c["median_s"] for c in cells[a] if c.get("hidden") == h
                  and "median_s" in c}
            tb = {c["batch"]: c["median_s"] for c in cells[b] if c.get("hidden") == h
                  and "median_s" in c}
            common = sorted(set(ta) & set(tb))
            measured = next((n for p, n in zip(common, common[1:])
                             if (ta[p] < tb[p]) != (ta[n] < tb[n])), None)
            out.append({"tiers": [a, b], "hidden": h, "predicted_batch": pred,
                        "measured_batch": measured})
    return out


def sweep(tiers=None, quick=False, out_path: Path | None = None, reference=False,
          batches=None, widths=None, progress=True, dtype: str | None = None) -> Path:
    """Run the sweep (see the module docstring); returns the JSON's path.

    dtype: a number format (default: each tier's own); tiers without it are left out, and
    the JSON is named sweep-<format>.json."""
    set_threads()
    batches = batches or (QUICK_BATCHES if quick else BATCHES)
    widths = widths or (QUICK_WIDTHS if quick else WIDTHS)
    names = tiers or [t.name for t in select(device="cpu", available=True)
                      if dtype is None or dtype in t.formats]
    tiers_ = {n: resolve(n, dtype=dtype) for n in names}
    stem = ("quick-sweep" if quick else "sweep") + (f"-{dtype}" if dtype else "")
    out_path = check_writable(out_path or (paths.bench_root(reference) / machine_name()
                                           / f"{stem}.json"))
    info = describe()
    guard = NoiseGuard("sweep").begin()
    peak = info["sgemm_gflops"]
    cells: dict[str, list] = {n: [] for n in names}
    t_start = time.perf_counter()
    bar = tqdm(total=len(names) * len(widths) * len(batches), desc="sweep", unit="cell",
               disable=not progress)
    for name in names:
        for h in widths:
            params = init_params(0, h=h)
            t0 = time.perf_counter()
            tier = tiers_[name]
            fmt = tier.check_format(dtype)
            model = build_model(name, params, "relu", dtype=fmt)
            compile_s = time.perf_counter() - t0
            for b in batches:
                bar.set_postfix_str(f"{name} H={h} B={b}")
                est = (step_flops(b, h=h)["train_step"] / tier.flops_per_second
                       if tier.flops_per_second else 0.0)
                if not tier.fast and est > SLOW_CELL_SECONDS:
                    cells[name].append({"batch": b, "hidden": h, "skipped":
                                        f"{name}: a step would take ~{est:.0f} s "
                                        f"(> {SLOW_CELL_SECONDS:.0f} s)"})
                else:
                    cell = run_cell(model, params, b, h, fmt)
                    cell["compile_seconds"] = compile_s
                    if "gflops" in cell:
                        cell["fraction_of_peak"] = cell["gflops"] / peak
                    cells[name].append(cell)
                bar.update(1)
            if hasattr(model, "close"):
                model.close()
    bar.close()
    models = {n: fit_cost_model(cs) for n, cs in cells.items()}
    doc = {"machine": info, "date": time.strftime("%Y-%m-%d"), "quick": quick, "dtype": dtype,
           "grid": {"batches": list(batches), "hidden": list(widths)},
           "wall_seconds": time.perf_counter() - t_start, "cells": cells,
           "cost_models": models, "crossovers": crossovers(models, cells), **record(guard)}
    return atomic_json(out_path, doc)
