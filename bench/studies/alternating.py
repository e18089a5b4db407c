"""`mnist-tiers alternate` / `make alternate`: whole epochs of two or more tiers, alternating.

pytest-benchmark times one benchmark's rounds back to back, so two tiers timed minutes apart
on a shared VM can see different machines. Here every round runs one epoch of each tier in
turn, in one process, on the same shuffled order and the same initial weights, and each
tier's median over the rounds is compared with the others' from the same rounds. The FLOP
floor (counted FLOPs of the epoch / the sgemm peak measured in the same run) and the ratio
to numpy are computed per batch size.

Each tier compiles for the epoch's shapes (prepare_batches, prepare_epoch) and runs one
untimed warm-up epoch before the rounds: an XLA epoch program ran its first epochs up to 3x
slower than its later ones (jax-scan at batch 64: 0.75, 0.37, 0.51 then 0.22 s, 2-core AMD
EPYC VM, 2026-12-07).

A pause separates consecutive epochs (GAP_SECONDS): an epoch started right after another
library's was up to 110 ms slower here (numba-fused at batch 64: 332-337 ms right after a
NumPy epoch, 227-239 ms after a 1 s pause, 2-core VM, 2026-12-01), because the previous
library's idle worker threads were still spinning on the cores.

Each epoch's result is checked before anything is timed: one step of each tier against
the float64 oracle (implementations.checks.oracle_step), and every timed epoch's losses
against numpy's on the same batches (the mean of the first CHECKED_STEPS steps, relative
LOSS_RTOL), so a fast wrong epoch is reported as an error, never as a time.

Writes out/bench/<machine>/alternating.json (--reference: the committed
bench/results/<machine>/), atomically.
"""

import contextlib
import io
import statistics
import time
from pathlib import Path

import numpy as np

from implementations import data, paths, settings
from implementations.checks import assert_close
from implementations.experiment import epoch_batches, init_params, step_flops
from implementations.fileio import atomic_json, check_writable
from implementations.formats import tolerance
from implementations.machine import describe, machine_name
from implementations.noise import NoiseGuard
from implementations.oracle import oracle_step
from implementations.provenance import record
from implementations.registry import (
    ALTERNATE,
    ORACLE,
    TierError,
    build_model,
    names,
    resolve,
    select,
)
from implementations.threads import set_threads

BATCH_SIZES = (1, 64, 1024)
RUNS = 3
GAP_SECONDS = 1.0
LR = 0.1
# the epochs' check: the mean loss of their first CHECKED_STEPS steps against numpy's. Two
# correct float32 tiers agree there to ~3e-7 even at batch 1, whose SGD at this rate is
# chaotic: there the trajectories part after ~1000 steps (2% apart by step 2000)
CHECKED_STEPS, LOSS_RTOL = 500, 1e-4
# batch 1 runs a step per sample: a NumPy epoch would take ~2 minutes, so it runs on the
# first SMALL_BATCH_LIMIT samples unless a limit is given
SMALL_BATCH, SMALL_BATCH_LIMIT = 16, 6000


def _check_step(name: str, model, x, y, dtype: str) -> None:
    """One train step of `model` against the float64 oracle: its loss and updated weights
    (AssertionError naming the tier and the array that differs)."""
    params = model.weights()
    want = oracle_step(params, x, y, "relu", LR)
    loss = model.checked_train_step(x, y, LR)
    with contextlib.redirect_stdout(io.StringIO()):  # assert_close logs each comparison
        assert_close(f"{name} step loss", loss, want["loss"], **tolerance(dtype, want["loss"]))
        for key, got in model.weights().items():
            assert_close(f"{name} step {key}", got, want[key], **tolerance(dtype, want[key]))
    model.load_weights(params)


def alternate(tiers=ALTERNATE, batch_sizes=BATCH_SIZES, runs: int = RUNS, limit: int | None = None,
              reference: bool = False, out_path: Path | None = None,
              gap: float = GAP_SECONDS) -> Path:
    """Time `runs` rounds of one epoch per tier, alternating, at each batch size; returns
    the JSON's path. tiers: registry names (CPU tiers; the ORACLE tier, numpy, is added as
    the baseline); limit: train on the first `limit` samples (default all, but
    SMALL_BATCH_LIMIT below batch SMALL_BATCH). Raises TierError naming the tier for one
    that cannot run here, SettingError for runs < 3 (a median of alternating runs).
    """
    runs = settings.check("runs", runs)
    tiers = {n: resolve(n) for n in dict.fromkeys([ORACLE, *tiers])}
    for tier in tiers.values():
        if tier.device != "cpu":
            raise TierError(f"tier {tier.name!r} is a {tier.device} tier; alternate compares "
                            f"CPU tiers: {', '.join(names(select(device='cpu')))}")
    names_ = list(tiers)
    set_threads()
    out_path = check_writable(out_path or paths.bench_root(reference) / machine_name()
                              / "alternating.json")
    info = describe()
    guard = NoiseGuard("alternate").begin()
    arrays = data.training_arrays()
    images, labels = arrays.x_train, arrays.y_train
    params = init_params(0)
    results = []
    t_start = time.perf_counter()
    for b in batch_sizes:
        n = limit or (SMALL_BATCH_LIMIT if b < SMALL_BATCH else len(images))
        X, Y = images[:n], labels[:n]
        batches = epoch_batches(n, b, seed=0, epoch=0)
        models = {}
        for name in names_:
            model = build_model(name, params, "relu")
            _check_step(name, model, X[:b], Y[:b], tiers[name].default_format)
            Xp, Yp = model.prepare(X, Y)
            # untimed: the epoch's own compilation (an XLA program per shape, a CUDA graph)
            # and one whole warm-up epoch (XLA's first epochs ran up to 3x slower here)
            model.prepare_batches({len(bt) for bt in batches}, LR)
            model.prepare_epoch(Xp, Yp, batches, LR)
            model.train_epoch(Xp, Yp, batches, LR)
            model.sync()
            model.load_weights(params)
            models[name] = (model, Xp, Yp)
        times = {name: [] for name in names_}
        losses = {}
        for _ in range(runs):
            for name in names_:
                model, Xp, Yp = models[name]
                model.load_weights(params)
                time.sleep(gap)
                t0 = time.perf_counter()
                ls = model.train_epoch(Xp, Yp, batches, LR)
                model.sync()
                times[name].append(time.perf_counter() - t0)
                losses[name] = float(np.mean(ls[:CHECKED_STEPS]))
        for name in names_:
            rel = abs(losses[name] - losses[ORACLE]) / abs(losses[ORACLE])
            if rel > LOSS_RTOL:
                raise AssertionError(f"{name} epoch at batch {b}: mean loss of the first "
                                     f"{CHECKED_STEPS} steps {losses[name]:.6g} vs {ORACLE}'s "
                                     f"{losses[ORACLE]:.6g} (relative {rel:.2g} > "
                                     f"{LOSS_RTOL:g})")
        flops = sum(step_flops(len(bt))["train_step"] for bt in batches)
        floor = flops / (info["sgemm_gflops"] * 1e9)
        base = statistics.median(times[ORACLE])
        for name in names_:
            med = statistics.median(times[name])
            results.append({"tier": name, "batch": b, "samples": n, "runs_s": times[name],
                            "median_s": med, "floor_s": floor, "x_floor": med / floor,
                            "numpy_over_this": base / med,
                            "mean_loss_first_steps": losses[name]})
        for model, *_ in models.values():
            if hasattr(model, "close"):
                model.close()
    doc = {"machine": info, "date": time.strftime("%Y-%m-%d %H:%M"), "runs": runs,
           "gap_seconds": gap, "wall_seconds": time.perf_counter() - t_start,
           "results": results, **record(guard)}
    return atomic_json(out_path, doc)


