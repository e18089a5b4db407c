"""The report's Scaling section (from the sweep), and accuracy vs width.

Scaling (bench/studies/sweep.py's JSON): (a) time per sample vs batch, log-log, at H = 128 and 2048;
(b) the winner of each (batch, H) cell with its speed-up over the runner-up; (c) achieved
GFLOP/s vs FLOPs per step with the fitted cost models; (d) memory per step vs batch against
the analytic minimum; (e) the cost-model table with the cells it misses and the crossovers.
Accuracy vs width: 10-epoch test accuracy of trainings at several widths next to the
published test errors of two-layer networks on MNIST.
"""

from pathlib import Path

import numpy as np

from bench.report import plots
from implementations import noise
from implementations.registry import CPU_FUSED, TIERS, WIDTH_STUDY, tier_color

# Published test errors of 784-H-10 networks on MNIST (H: error %, source)
PUBLISHED = [
    (300, 4.7, "LeCun, Bottou, Bengio and Haffner 1998 (Proc. IEEE), 300 hidden units"),
    (1000, 4.5, "LeCun, Bottou, Bengio and Haffner 1998 (Proc. IEEE), 1000 hidden units"),
    (800, 1.6, "Simard, Steinkraus and Platt 2003 (ICDAR), 800 hidden units, cross-entropy"),
]
WHY_DIFFERENT = (
    "Ours differ from the published figures because the recipes differ: 10 epochs of plain "
    "SGD (lr 0.1, batch 64, ReLU, softmax cross-entropy, Glorot init, no schedule, no "
    "regularization), where LeCun et al. trained with mean-squared error on sigmoid-type "
    "units and Simard et al. trained far longer on elastically distorted digits.")


# --- the Scaling section ----------------------------------------------------------------

def _timed(sweep, tier):
    return [c for c in sweep["cells"][tier] if "median_s" in c]


def time_per_sample(sweep, path):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, h in zip(axes, (128, 2048)):
        for tier in sweep["cells"]:
            pts = sorted((c["batch"], c["median_s"] / c["batch"]) for c in _timed(sweep, tier)
                         if c["hidden"] == h)
            if pts:
                b, t = zip(*pts)
                ax.plot(b, np.array(t) * 1e6, marker="o", label=tier, color=tier_color(tier))
        plots._loglog(ax, "batch size", "us per sample (train step, median)",
                      f"Time per sample, H = {h}")
    return plots._save(fig, path)


def winners(sweep) -> dict[tuple[int, int], tuple[str, float]]:
    """(batch, H) -> (fastest tier, its speed-up over the runner-up)."""
    out = {}
    for b in sweep["grid"]["batches"]:
        for h in sweep["grid"]["hidden"]:
            times = sorted((c["median_s"], tier) for tier in sweep["cells"]
                           for c in _timed(sweep, tier) if c["batch"] == b and c["hidden"] == h)
            if len(times) >= 2:
                out[b, h] = (times[0][1], times[1][0] / times[0][0])
            elif times:
                out[b, h] = (times[0][1], float("nan"))
    return out


def cells_lost(sweep) -> list[str]:
    """The cells the tier that wins most of the sweep does not win, each with the winner,
    its margin and, where the measurements show it, why: a fused tier splits the hidden
    units between its threads in panels (kernels.numba_fused.panel_width), so a width of
    one panel runs on one thread while the BLAS tiers use every core."""
    from kernels.numba_fused import panel_width

    win = winners(sweep)
    if not win:
        return []
    counts: dict[str, int] = {}
    for t, _ in win.values():
        counts[t] = counts.get(t, 0) + 1
    top = max(counts, key=counts.get)
    threads = (sweep.get("machine") or {}).get("threads") or 1
    panel = panel_width(np.float64 if sweep.get("dtype") == "float64" else np.float32)
    lines = [f"{top} is the fastest in {counts[top]} of {len(win)} cells."]
    for (b, h), (t, margin) in sorted(win.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if t == top:
            continue
        why = ""
        if top == CPU_FUSED and h <= panel and threads > 1:
            why = (f": H = {h} is one panel of {panel} units, so {top} runs on 1 thread of "
                   f"{threads} there")
        lines.append(f"batch {b}, H = {h}: {t} by {margin:.2f}x{why}")
    return lines


def winner_map(sweep, path):
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    win = winners(sweep)
    batches, widths = sweep["grid"]["batches"], sweep["grid"]["hidden"]
    fig, ax = plt.subplots(figsize=(1.3 * len(batches) + 2, 0.9 * len(widths) + 1.5))
    for (b, h), (t, s) in win.items():  # each cell in its winner's colour, lightened
        i, j = widths.index(h), batches.index(b)
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, color=tier_color(t), alpha=0.3))
        ax.text(j, i, f"{t}\n{s:.2f}x", ha="center", va="center", fontsize=7)
    ax.set_xlim(-0.5, len(batches) - 0.5)
    ax.set_ylim(len(widths) - 0.5, -0.5)
    ax.set_xticks(range(len(batches)), batches)
    ax.set_yticks(range(len(widths)), widths)
    ax.set_xlabel("batch size")
    ax.set_ylabel("hidden width H")
    ax.set_title("Fastest tier per cell, with its speed-up over the runner-up")
    return plots._save(fig, path)


def rates(sweep, path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    fl = np.logspace(4, 11, 100)
    for tier in sweep["cells"]:
        cells = _timed(sweep, tier)
        if not cells:
            continue
        color = tier_color(tier)
        ax.scatter([c["flops"] for c in cells], [c["gflops"] for c in cells], s=14,
                   color=color, label=tier)
        m = sweep["cost_models"].get(tier)
        if m:
            t = m["t0_us"] * 1e-6 + fl / (m["rate_gflops"] * 1e9)
            ax.plot(fl, fl / t / 1e9, color=color, lw=1)
    plots._loglog(ax, "FLOPs per train step", "achieved GFLOP/s (median)",
                  "Achieved rate vs work per step; lines: t0 + FLOPs / R fits", legend_size=7)
    return plots._save(fig, path)


def weights_bytes(h: int) -> int:
    from implementations.experiment import D, K

    return 4 * (D * h + h + h * K + K)


def unobserved(sweep) -> list[str]:
    """Tiers whose step allocations neither tracemalloc nor the RSS high-water mark can see:
    those whose arrays live in torch's caching allocator (the registry's `allocator`)."""
    return [t for t in sweep["cells"] if t in TIERS and TIERS[t].allocator != "traced"]


def memory(sweep, path, h=512):
    """Weights (resident before the step) plus what the step allocates, per tier, against
    the analytic minimum; tiers whose allocations cannot be observed are left out."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    hidden = set(unobserved(sweep))
    shown = False
    for tier in sweep["cells"]:
        if tier in hidden:
            continue
        pts = sorted((c["batch"], weights_bytes(h) + max(c["traced_bytes"],
                                                         c["rss_growth_bytes"]))
                     for c in _timed(sweep, tier) if c["hidden"] == h)
        if pts:
            b, m = zip(*pts)
            ax.plot(b, np.array(m) / 2**20, marker="o", label=tier, color=tier_color(tier))
            shown = True
    mins = sorted({(c["batch"], c["minimum_bytes"]) for tier in sweep["cells"]
                   for c in sweep["cells"][tier] if c.get("hidden") == h and "minimum_bytes" in c})
    if mins and shown:
        b, m = zip(*mins)
        ax.plot(b, np.array(m) / 2**20, "k--", lw=1.5,
                label="analytic minimum (weights + gradients + activations)")
    plots._loglog(ax, "batch size", "MiB: weights + what one step allocates",
                  f"Memory a step needs, H = {h}", legend_size=7)
    return plots._save(fig, path)


def scaling_section(sweep, out: Path, slug: str, machine: str = "") -> list[str]:
    where = f" ({machine})" if machine else ""
    if not sweep:
        return [f"## Scaling{where}", "", "No sweep for this machine: run `make sweep`.", ""]
    g = sweep["grid"]
    busy = noise.busy_note(sweep.get("machine_state"))
    md = [f"## Scaling{where}: the sweep", "",
          f"Train step of every CPU tier over batch {g['batches']} x hidden {g['hidden']}, "
          f"a run of its own (sweep.json, {sweep['date']}, {sweep['wall_seconds']:.0f} s; "
          "its figures are compared within it only)"
          + (f". **BUSY**: {busy}" if busy else "") + ". Every cell was checked against "
          "the float64 oracle before it was timed; medians of at least 5 steps.", ""]
    empty = [f"{c['skipped']} (batch {c['batch']}, H {c['hidden']})"
             for cells in sweep["cells"].values() for c in cells if "skipped" in c]
    failed = [f"{t} batch {c['batch']} H {c['hidden']}: {c['error']}"
              for t, cells in sweep["cells"].items() for c in cells if "error" in c]
    for name, fig in (("time-per-sample", time_per_sample), ("winner-map", winner_map),
                      ("rates", rates), ("memory", memory)):
        fig(sweep, out / f"{name}-{slug}.png")
    lost = cells_lost(sweep)
    md += [f"![time per sample](time-per-sample-{slug}.png)", "",
           f"![winner map](winner-map-{slug}.png)", "",
           *([lost[0], ""] + [f"- {x}" for x in lost[1:]] + [""] if lost else []),
           f"![achieved rate](rates-{slug}.png)", "",
           "Memory: each tier's weights plus the larger of tracemalloc's peak during one "
           "step (Python and NumPy allocations, Numba's arrays too) and the growth of the "
           "peak RSS during it (pages newly touched), against the analytic minimum, which "
           "stores the gradients. numba-fused lands below that minimum because it never "
           "stores a weight gradient (the update is fused into its computation); loops "
           "above it, by Python's boxed floats. Not shown, because their allocations are "
           "invisible to both measures (a caching allocator reuses its blocks; DDP works in "
           "other processes): "
           + (", ".join(unobserved(sweep)) or "none") + ".", "",
           f"![memory](memory-{slug}.png)", ""]
    md += ["| tier | t0 us | R GFLOP/s | R^2 (log t) | cells missed by > 30% |",
           "|---|---:|---:|---:|---|"]
    for tier, m in sweep["cost_models"].items():
        if not m:
            continue
        miss = "; ".join(f"B={x['batch']} H={x['hidden']}: {x['measured_us']:.3g} us vs "
                         f"{x['model_us']:.3g}" for x in m["misses"][:6]) or "-"
        more = f" (+{len(m['misses']) - 6} more)" if len(m["misses"]) > 6 else ""
        md.append(f"| {tier} | {m['t0_us']:.3g} | {m['rate_gflops']:.3g} | "
                  f"{m['r2_log']:.3f} | {miss}{more} |")
    md += ["", "What the model misses: t0 + FLOPs / R has no term for memory traffic, yet a "
           "train step reads and rewrites all the weights once whatever the batch (6.4 MB "
           "of W1 at H = 2048), so at small batches and large widths the step is bound by "
           "bandwidth, not FLOPs, and runs slower than the model says; a single rate also "
           "cannot follow cache cliffs, threads that only start above a size, or BLAS kernels "
           "picked per shape (NumPy at batch 1 takes a matrix-vector path slower than batch "
           "4). The misses above are those cells.", "",
           "| tiers | predicted crossover batch (H = 128) | measured |", "|---|---:|---:|"]
    for c in sweep["crossovers"]:
        p = c["predicted_batch"]
        pred = "none" if not p else "< 1 (one is faster at every batch)" if p < 1 else f"{p:,.0f}"
        md.append(f"| {c['tiers'][0]} vs {c['tiers'][1]} | {pred} | "
                  f"{c['measured_batch'] or 'none in the grid'} |")
    md.append("")
    if empty:
        md += ["Empty cells: " + "; ".join(empty[:8]) + (" ..." if len(empty) > 8 else ""), ""]
    if failed:
        md += ["Cells that failed their check (not timed): " + "; ".join(failed), ""]
    return md


def accuracy_vs_width(trainings) -> list[str]:
    by_h = {}
    for t in trainings:
        if t.get("epochs") == 10 and t.get("dtype", "float32") == "float32" and \
                t.get("activation") == "relu" and t.get("batch_size") == 64:
            by_h.setdefault(t.get("hidden", 128), []).append(t)
    widths = sorted(h for h, ts in by_h.items() if any(x["tier"] == WIDTH_STUDY for x in ts))
    if len(widths) < 2:
        return []
    md = ["## Accuracy vs width", "",
          f"10-epoch test accuracy of {WIDTH_STUDY} (ReLU, batch 64, lr 0.1), against the "
          "published test errors of two-layer networks on MNIST.", "",
          "| hidden units | ours: test error % (accuracy %) | published test error % | source |",
          "|---:|---:|---:|---|"]
    for h in widths:
        acc = next(x for x in by_h[h] if x["tier"] == WIDTH_STUDY)["test_accuracy"][-1]
        pub = [p for p in PUBLISHED if p[0] == h]
        md.append(f"| {h} | {100 * (1 - acc):.2f} ({100 * acc:.2f}) | "
                  f"{pub[0][1] if pub else '-'} | {pub[0][2] if pub else '-'} |")
    for h, err, src in PUBLISHED:
        if h not in widths:
            md.append(f"| {h} | - | {err} | {src} |")
    return md + ["", WHY_DIFFERENT, ""]
