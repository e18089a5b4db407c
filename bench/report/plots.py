"""The report's plots (matplotlib, PNG): step times, throughput vs batch, roofline, accuracy.

Every plot draws a tier in its one colour (registry.tier_color), from medians, with the
legend outside the axes so that it covers no data or label.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from implementations.experiment import D, H, K  # noqa: E402
from implementations.fileio import atomic_target  # noqa: E402
from implementations.registry import tier_color  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    with atomic_target(path) as tmp:  # "tight": the outside legends are kept whole
        fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def _legend(ax, **kw):
    """A legend where something is labelled; a note on the axes where nothing is (a run
    without these benchmarks)."""
    if ax.get_legend_handles_labels()[0]:
        kw.setdefault("loc", "upper left")
        kw.setdefault("bbox_to_anchor", (1.01, 1.0))
        kw.setdefault("borderaxespad", 0.0)
        ax.legend(**kw)
    else:
        ax.text(0.5, 0.5, "no such benchmarks in this run", transform=ax.transAxes,
                ha="center", va="center", color="gray")


def _loglog(ax, xlabel, ylabel, title, legend_size=8):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend(ax, fontsize=legend_size)


def step_times(run, path):
    """Train-step time per tier, one bar group per batch size, log scale."""
    groups = run.groups("train_step")
    tiers = sorted({r["tier"] for g in groups for r in run.select(g)})
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(1, len(tiers))
    for i, tier in enumerate(tiers):
        xs, ys = [], []
        for j, g in enumerate(groups):
            row = [r for r in run.select(g) if r["tier"] == tier]
            if row:
                xs.append(j + i * width)
                ys.append(row[0]["median"] * 1e3)
        ax.bar(xs, ys, width, label=tier, color=tier_color(tier))
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))],
                  [g.replace("train_step ", "") for g in groups])
    ax.set_yscale("log")
    ax.set_ylabel("ms per train step (median)")
    ax.set_title(f"Train step time per tier ({run.name}, {run.date})")
    _legend(ax, fontsize=8)
    return _save(fig, path)


def throughput(run, path, crossovers):
    """Samples/s vs batch size per tier (log-log), crossovers annotated."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for tier, pts in sorted(samples_per_second(run).items()):
        b, s = zip(*sorted(pts.items()), strict=True)
        ax.plot(b, s, marker="o", label=tier, color=tier_color(tier))
    for text, (b, s) in crossovers:
        ax.annotate(text, (b, s), textcoords="offset points", xytext=(5, -15), fontsize=8,
                    arrowprops={"arrowstyle": "->"})
    _loglog(ax, "batch size", "samples/s (train step, from the median)",
            f"Throughput vs batch size ({run.name})")
    return _save(fig, path)


def samples_per_second(run) -> dict[str, dict[int, float]]:
    out: dict = {}
    for g in run.groups("train_step"):
        for r in run.select(g):
            out.setdefault(r["tier"], {})[r["batch"]] = r["batch"] / r["median"]
    return out


def step_bytes(n: int) -> int:
    """Minimal float32 traffic of a train step: read x, read W1/W2 and write them back."""
    return 4 * (n * D + 2 * (D * H + H * K) + n * K)


# (machine key of a bandwidth ceiling, its label, line style), slowest memory level first.
CPU_BANDWIDTHS = (("copy_gbs", "DRAM", "-"), ("l3_copy_gbs", "L3", "--"),
                  ("l2_copy_gbs", "L2", ":"))
GPU_BANDWIDTHS = (("gpu_copy_gbs", "HBM", "-"), ("gpu_l2_copy_gbs", "L2", ":"))


def ceilings(machine: dict) -> list[tuple[str, float, float, str]]:
    """(label, peak GFLOP/s, bandwidth GB/s, line style) of every roof the machine dict has.

    The CPU's compute peak is sgemm_gflops; the GPU's is gpu_fp32_tflops (x 1e3). A
    bandwidth key that is absent (a run measured before the cache-level copies existed, or
    a level sysfs did not report) or zero is not drawn.
    """
    out = []
    for device, peak, keys in (("CPU", machine.get("sgemm_gflops"), CPU_BANDWIDTHS),
                               ("GPU", (machine.get("gpu_fp32_tflops") or 0) * 1e3,
                                GPU_BANDWIDTHS)):
        if not peak:
            continue
        for key, level, style in keys:
            if machine.get(key):
                out.append((f"{device} {level}", peak, machine[key], style))
    return out


def roofline(run, path):
    """Achieved GFLOP/s vs arithmetic intensity, under every measured ceiling: the CPU's
    sgemm peak with its DRAM, L3 and L2 copy bandwidths, and the GPU's fp32 peak with its
    HBM and L2 copy bandwidths, as many of them as run.machine holds."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 5))
    ai = np.logspace(-1, 3, 100)
    for label, peak, bw, style in ceilings(run.machine):
        color = "k" if label.startswith("CPU") else "tab:gray"
        ax.plot(ai, np.minimum(peak, bw * ai), color=color, ls=style, lw=1,
                label=f"{label}: {bw:.0f} GB/s, peak {peak:.0f} GFLOP/s")
    for tier in sorted({r["tier"] for r in run.rows if r["group"].startswith("train_step")}):
        rows = [r for r in run.rows if r["group"].startswith("train_step") and r["tier"] == tier]
        xs = [r["flops"] / step_bytes(r["batch"]) for r in rows]
        ax.scatter(xs, [r["gflops"] for r in rows], label=tier, s=25, color=tier_color(tier))
    _loglog(ax, "arithmetic intensity (FLOP per byte of minimal traffic)",
            "achieved GFLOP/s (train step)",
            f"Roofline, train step at each batch size ({run.name})", legend_size=7)
    return _save(fig, path)


def accuracy_curves(trainings, path):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    styles = ("-", "--", ":", "-.")  # a tier's variants (activation, format, width)
    variants: dict[str, list] = {}
    for t in trainings:
        acc = [100 * a for a in t["test_accuracy"]]
        fmt = t.get("dtype", "float32")
        h = t.get("hidden", 128)
        label = (f"{t['tier']} ({t['activation']}{'' if fmt == 'float32' else ', ' + fmt}"
                 f"{'' if h == 128 else f', H={h}'})")
        seen = variants.setdefault(t["tier"], [])
        seen.append(label)
        ax.plot(range(1, len(acc) + 1), acc, marker=".", label=label,
                color=tier_color(t["tier"]), ls=styles[(len(seen) - 1) % len(styles)])
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy %")
    ax.set_title("Test accuracy per epoch: same init and data order in every tier")
    _legend(ax, fontsize=8)
    return _save(fig, path)
