"""The report's first screen: the ladder figure and the summary table, per machine.

The ladder: every tier's train step at batch 64 and at its own best batch, as microseconds
per sample (median, log scale), slowest rung on top; each bar says its multiple of the FLOP
floor (the step's FLOPs at the peak measured in the same run: sgemm on the CPU, the fp32
matmul on the GPU) and its speed-up over the rung it builds on (its registry baseline:
numpy over loops, numba over numpy, ...). CPU and GPU tiers stand side by side when both
ran; a GPU tier's launch floor (gpu-floor.json, the same machine) is marked on its bar.
The summary: per batch, the fastest tier on each device, its median step, its speed-up over
numpy and its % of the peak. Every figure comes from one run's medians; several machines
are compared side by side, never divided by each other.
"""

from bench.report import plots
from implementations.registry import ORACLE, TIERS, tier_color


def ladder_rows(run, floor_doc: dict | None = None) -> list[dict]:
    """Per tier of `run`, slowest first: {tier, device, at64, best, launch_floor_us}, where
    at64/best are {batch, us (per sample), x_floor, vs (speed-up), base} or None."""
    per_tier: dict[str, dict[int, dict]] = {}
    for g in run.groups("train_step"):
        for r in run.select(g):
            per_tier.setdefault(r["tier"], {})[r["batch"]] = r
    def point(tier, batch):
        r = per_tier.get(tier, {}).get(batch)
        if r is None:
            return None
        frac = r["fraction_of_peak"]
        return {"batch": batch, "us": 1e6 * r["median"] / batch,
                "x_floor": 1 / frac if frac else None}
    out = []
    for tier, rows in per_tier.items():
        best_b = min(rows, key=lambda b: rows[b]["median"] / b)
        at64, best = point(tier, 64), point(tier, best_b)
        base = TIERS[tier].baseline if tier in TIERS else None
        for p, b in ((at64, 64), (best, None)):
            if p is None or base not in per_tier:
                continue
            other = point(base, b) if b else point(base, min(
                per_tier[base], key=lambda n: per_tier[base][n]["median"] / n))
            if other:
                p.update(vs=other["us"] / p["us"], base=base)
        floor = None
        if floor_doc and tier in floor_doc.get("tiers", {}):
            f = floor_doc["tiers"][tier]
            if f.get("floor_s") and f.get("samples", 60000):
                floor = 1e6 * f["floor_s"] / f.get("samples", 60000)
        device = next(iter(rows.values()))["device"] or "cpu"
        out.append({"tier": tier, "device": device, "at64": at64, "best": best,
                    "launch_floor_us": floor})
    key = lambda r: -(r["at64"] or r["best"])["us"]  # noqa: E731
    return sorted(out, key=key)


def times(x: float) -> str:
    """A multiple for a person: 3.78x, 12.2x, 396x, 6,680x (every ratio in the report)."""
    return f"{x:,.0f}x" if x >= 100 else f"{x:.3g}x"


def _bar_label(p: dict, best: bool) -> str:
    parts = [f"batch {p['batch']}"] if best else []
    if p.get("x_floor"):
        parts.append(f"{times(p['x_floor'])} floor")
    if p.get("vs"):
        parts.append(f"{times(p['vs'])} {p['base']}")
    return " · ".join(parts)


def ladder_figure(runs, floors: dict, path):
    """One panel per run (machine), side by side; returns the path."""
    import matplotlib.pyplot as plt

    tables = [ladder_rows(run, floors.get(run.name)) for run in runs]
    n = max((len(t) for t in tables), default=1)
    fig, axes = plt.subplots(1, len(runs), figsize=(8.6 * len(runs), 0.3 * n + 1.0),
                             squeeze=False)
    for ax, run, rows in zip(axes[0], runs, tables, strict=True):
        ys = range(len(rows))
        for y, r in zip(ys, rows, strict=True):
            color = tier_color(r["tier"])
            for p, off, kw in ((r["at64"], -0.19, {}),
                               (r["best"], 0.19, {"alpha": 0.45, "hatch": "//"})):
                if p is None or (off > 0 and r["at64"] and p["batch"] == 64):
                    continue  # its best batch is 64: one bar says it
                ax.barh(y + off, p["us"], height=0.36, color=color, edgecolor=color, **kw)
                ax.text(p["us"] * 1.08, y + off, _bar_label(p, off > 0), va="center",
                        fontsize=6.5)
            if r["launch_floor_us"]:
                ax.plot([r["launch_floor_us"]] * 2, [y - 0.4, y + 0.4], color="k", lw=1.5)
                ax.text(r["launch_floor_us"], y - 0.42, "launch floor", fontsize=5.5,
                        ha="center", va="bottom")
        ax.set_yticks(list(ys), [f"{r['tier']}" + (" [GPU]" if r["device"] == "cuda" else "")
                                 for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        lo = min(p["us"] for r in rows for p in (r["at64"], r["best"]) if p)
        hi = max(p["us"] for r in rows for p in (r["at64"], r["best"]) if p)
        ax.set_xlim(lo / 2, hi * 60)  # room for the labels right of the slowest bars
        ax.set_xlabel("us per sample, train step (median; solid: batch 64, hatched: the "
                      "tier's best batch)", fontsize=8.5)
        busy = " - BUSY RUN" if run.busy else ""
        ax.set_title(f"{run.name} ({run.date}){busy}", fontsize=10,
                     color="#b00020" if run.busy else "black")
        ax.grid(axis="x", which="major", color="#dddddd", lw=0.6)
        ax.set_axisbelow(True)
    return plots._save(fig, path)


def fmt_ms(s: float) -> str:
    """Seconds as milliseconds for a table: 0.134, 2.16, 664, 1,234."""
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 1000 else f"{ms:,.0f}"


def fastest(run) -> list[dict]:
    """Per train_step batch and device: the fastest tier's row, with vs (numpy's median over
    its median) and iqr_ms."""
    out = []
    for g in run.groups("train_step"):
        rows = run.select(g)
        numpy = next((r for r in rows if r["tier"] == ORACLE), None)
        for device in sorted({r["device"] or "cpu" for r in rows}):
            best = min((r for r in rows if (r["device"] or "cpu") == device),
                       key=lambda r: r["median"])
            out.append({**best, "device": device,
                        "vs": numpy["median"] / best["median"] if numpy else None})
    return out


def _cell(r: dict) -> str:
    vs = f"{times(r['vs'])} {ORACLE}" if r["vs"] else "-"
    frac = r["fraction_of_peak"]
    peak = (f"{100 * frac:.0f}% of peak" if frac and frac >= 0.1 else
            f"{100 * frac:.2g}% of peak" if frac else "")
    return f"**{r['tier']}** {fmt_ms(r['median'])} ms ({vs}{', ' + peak if peak else ''})"


def summary_table(runs) -> list[str]:
    """One table: rows (batch, device), one column per machine."""
    cells = {run.name: {(r["batch"], r["device"]): r for r in fastest(run)} for run in runs}
    keys = sorted({k for c in cells.values() for k in c}, key=lambda k: (k[0], k[1]))
    head = " | ".join(f"{run.name}{' (busy run)' if run.busy else ''}" for run in runs)
    lines = [f"| batch | device | {head} |", "|---:|---|" + "---|" * len(runs)]
    for b, device in keys:
        row = [(_cell(cells[run.name][(b, device)]) if (b, device) in cells[run.name] else "-")
               for run in runs]
        lines.append(f"| {b} | {device} | " + " | ".join(row) + " |")
    return lines + [""]


def section(runs, floors: dict, out, slug: str = "all") -> list[str]:
    """The first screen's Markdown: heading, the ladder and the summary side by side. Runs
    without train-step benchmarks (a selection such as `-k test_matmul`) are named and left
    out of both."""
    without = [run for run in runs if not run.groups("train_step")]
    runs = [run for run in runs if run not in without]
    missing = [f"No train-step benchmarks in the run of {run.name} ({run.path.name}), so "
               "it has no summary or ladder: run `pytest --benchmark-only` (or `--quick`) "
               "with the train-step benchmarks." for run in without]
    if not runs:
        return ["## At a glance", "", *missing, ""]
    name = f"ladder-{slug}.png"
    ladder_figure(runs, floors, out / name)
    intro = ("Fastest tier per batch and device (train step, median; the speed-up over "
             f"{ORACLE} and the % of the peak measured in the same run); right or below, the "
             "ladder: every tier at batch 64 and at its best batch.")
    image = f"![ladder: every tier at batch 64 and at its best batch]({name})"
    if any(floors.get(run.name) for run in runs):
        intro += (" A GPU tier's launch floor (the black mark) comes from gpu-floor.json, a "
                  "run of its own on the same machine (see Sources).")
    lines = ["## At a glance", "", intro, "", *[f"{m}\n" for m in missing]]
    if len(runs) == 1:  # the table and the ladder side by side on the first screen
        lines += ['<div class="glance"><div>', "", *summary_table(runs), "</div><div>", "",
                  image, "", "</div></div>", ""]
    else:
        lines += [*summary_table(runs), image, ""]
    for run in runs:
        if run.busy:
            reasons = "; ".join(run.machine_state.get("reasons") or ["flagged busy"])
            lines += [f"**Busy run on {run.name}**: {reasons}. Its figures are shown but may "
                      f"be inflated; rerun `make bench` on a quiet machine.", ""]
    return lines
