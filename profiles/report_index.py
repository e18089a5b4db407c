"""The breakdown table/chart and the index page tying every profile report together."""

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window (before pyplot is imported)
import matplotlib.pyplot as plt  # noqa: E402

from implementations.fileio import (  # noqa: E402
    ResultFileError,
    atomic_json,
    atomic_target,
    atomic_write,
    read_json,
)
from implementations.noise import busy_note
from implementations.page import page
from implementations.paths import profiles_root
from implementations.registry import TIERS, Profile  # noqa: E402
from profiles.scalene_run import ATTRIBUTION_NOTE  # noqa: E402

CATEGORY = {"forward": "forward", "loss": "forward", "backward": "backward",
            "update": "update", "optimizer": "update", "fused_step": "fused step",
            "graph_replay": "graph replay", "allreduce": "all-reduce", "other": "other",
            "gather": "batch gather",
            # numba-fused's instrumented phases
            "layer-1 forward + activation": "forward", "partial logits": "forward",
            "softmax-CE + b2 update": "forward", "hidden backward": "backward",
            "layer-2 update": "update", "layer-1 weight gradient + update": "update",
            "hand-offs + waiting": "hand-offs",
            # numba-cuda-fused's phase-masked phases
            "grid syncs + launch": "hand-offs",
            "output layer + softmax-CE + hidden backward": "forward",
            "weight updates + loss": "update"}


def category(phase: str) -> str:
    return CATEGORY.get(phase.split("/")[0], phase)


def load_breakdowns(out_dir: Path) -> dict:
    """The tiers of out_dir/breakdown.json ({} when there is none); ResultFileError naming
    the file when it is damaged."""
    path = out_dir / "breakdown.json"
    if not path.exists():
        return {}
    doc = read_json(path, "delete it and rerun `mnist-tiers profile`")
    if not isinstance(doc, dict) or not isinstance(doc.get("tiers"), dict):
        raise ResultFileError(f"{path}: no tiers in it; delete it and rerun "
                              f"`mnist-tiers profile`")
    return doc["tiers"]


CATEGORY_ORDER = ("batch gather", "forward", "backward", "update", "fused step",
                  "graph replay", "all-reduce", "hand-offs")


def by_category(r: dict) -> dict[str, float]:
    """A tier's phases summed per category (CATEGORY), ms per step, plus "other"."""
    out: dict[str, float] = {}
    for name, ms in r["phases_ms"].items():
        out[category(name)] = out.get(category(name), 0.0) + ms
    out["other"] = max(r.get("other_ms", 0.0), 0.0)
    return out


def markdown_table(results: dict) -> str:
    """One row per tier, fastest first: the step, then ms per step in each phase category
    (share of the step in brackets), then memory. Peak RSS is the whole process's
    (interpreter and libraries included, ~1 GB with torch loaded), not the tier's own:
    the traced peak is what the tier's step allocated."""
    present = {c for r in results.values() for c in by_category(r)} - {"other"}
    cats = [c for c in CATEGORY_ORDER if c in present] + sorted(present - set(CATEGORY_ORDER))
    cats.append("other")
    lines = ["| tier | step ms | " + " | ".join(f"{c} ms" for c in cats)
             + " | traced peak MB | process peak RSS MB | GPU MB |",
             "|---|---:|" + "---:|" * len(cats) + "---:|---:|---:|"]
    for tier, r in sorted(results.items(), key=lambda kv: kv[1]["step_ms"]):
        step = r["step_ms"]
        cells = by_category(r)
        shown = [f"{cells[c]:.3g} ({100 * cells[c] / step:.0f}%)" if cells.get(c) else "-"
                 for c in cats]
        gpu = (f"{r['gpu_peak_mb']:.1f} (peak)" if "gpu_peak_mb" in r else
               f"{r['gpu_used_mb']:.0f} (device in use)" if "gpu_used_mb" in r else "-")
        lines.append(f"| {tier} | {step:.3g} | " + " | ".join(shown)
                     + f" | {r['traced_peak_mb']:.2f} | {r['peak_rss_mb']:.0f} | {gpu} |")
    return "\n".join(lines)


def phase_detail(results: dict) -> str:
    """Each tier's own phases (the finer names behind the categories), one line per tier."""
    lines = []
    for tier, r in sorted(results.items(), key=lambda kv: kv[1]["step_ms"]):
        step = r["step_ms"]
        lines.append(f"- {tier}: " + ", ".join(
            f"{name} {ms:.3g} ms ({100 * ms / step:.0f}%)"
            for name, ms in sorted(r["phases_ms"].items(), key=lambda kv: -kv[1])))
    return "\n".join(lines)


def instrumented_notes(results: dict) -> str:
    """A line per tier measured by an instrumented build: how its phases were timed, whether
    they add up to the production step, and the hand-off inside its parallel phases."""
    lines = []
    for tier, r in sorted(results.items()):
        total = sum(r["phases_ms"].values()) if "phases_ms" in r else 0.0
        agree = "within" if r.get("phases_agree") else "NOT within"
        if r.get("method") == "phase-masked runs":
            lines.append(
                f"\n\n{tier}: phases from phase-masked runs of its one-kernel epoch (every grid "
                f"sync kept; each phase is the difference between consecutive masks): they add "
                f"up to {total:.3g} ms against the production step's {r['step_ms']:.3g} ms "
                f"({agree} 10%); {r['parallel_regions_per_step']} grid syncs per step, about "
                f"{r['handoff_us']:.2g} us each with the launch spread over the epoch.")
            continue
        if r.get("method") != "instrumented build":
            continue
        lines.append(
            f"\n\n{tier}: phases from its instrumented build (cycle-counter stamps between "
            f"phases, kernels/fused_phases.py): they add up to {total:.3g} ms against the "
            f"production step's {r['step_ms']:.3g} ms "
            f"({agree} 10%). {_structure(r)}; a part phase is the mean thread's time, and "
            f"'hand-offs + waiting' is the rest of the parallel wall time (an empty parallel "
            f"region alone measured {r['handoff_us']:.2g} us).")
    return "".join(lines)


def _structure(r: dict) -> str:
    """How a fused CPU tier's parallel work was organized, from its breakdown row."""
    parts, threads = r.get("parts", "?"), r.get("fused_threads", r.get("threads", "?"))
    if r.get("regions_per_epoch"):
        return (f"The epoch runs as one parallel region whose {parts} hidden-unit parts, on "
                f"{threads} threads, meet at {r.get('barriers_per_step', '?')} spin barriers "
                "per step")
    return (f"A step runs {r['parallel_regions_per_step']} parallel regions over {parts} "
            f"hidden-unit parts on {threads} threads")


def chart(results: dict, path: Path) -> Path:
    """Stacked horizontal bars: ms per step per phase (log-free: one chart per scale)."""
    tiers = sorted(results, key=lambda t: results[t]["step_ms"])
    fast = [t for t in tiers if results[t]["step_ms"] < 50]
    slow = [t for t in tiers if t not in fast]
    groups = [g for g in (fast, slow) if g]
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 1.2 + 0.55 * len(tiers)),
                             squeeze=False)
    colors = {"forward": "#4C72B0", "backward": "#DD8452", "update": "#55A868",
              "fused step": "#8172B3", "graph replay": "#937860", "all-reduce": "#DA8BC3",
              "hand-offs": "#8C8C8C",
              "other": "#BBBBBB"}
    seen = set()
    for ax, group in zip(axes[:, 0], groups, strict=True):
        for row, tier in enumerate(group):
            r = results[tier]
            left = 0.0
            items = list(r["phases_ms"].items()) + [("other", max(r["other_ms"], 0.0))]
            for name, ms in items:
                cat = category(name)
                label = cat if cat not in seen else None
                seen.add(cat)
                ax.barh(row, ms, left=left, color=colors.get(cat, "#C44E52"),
                        edgecolor="white", linewidth=0.5, label=label)
                left += ms
        ax.set_yticks(range(len(group)), group)
        ax.set_xlabel("ms per train step (batch 64)")
        ax.invert_yaxis()
    axes[0, 0].set_title("Where a train step's time goes, per tier")
    fig.tight_layout()
    fig.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)  # covers nothing
    with atomic_target(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def write(out_dir: Path, results: dict, info: dict) -> Path:
    """breakdown.{json,md,png}, README.md and a self-contained index.html in out_dir."""
    # each tier carries the provenance and machine state of the run that measured it
    atomic_json(out_dir / "breakdown.json", {"machine": info, "tiers": results})
    table = markdown_table(results)
    notes = instrumented_notes(results)
    atomic_write(out_dir / "breakdown.md", table + notes + "\n")
    png = chart(results, out_dir / "breakdown.png")
    links = _links(out_dir)
    head = (f"Machine: {info['machine']} ({info['cpu']}, {info['threads']} threads"
            f"{', GPU ' + info['gpu'] if info.get('gpu') else ''}); date {info['date']}; "
            f"versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    slow = "; ".join(f"{t}: {TIERS[t].profile.steps} after {TIERS[t].profile.warmup}"
                     for t in results if t in TIERS and TIERS[t].profile != Profile())
    how = (f"Phase times come from timers around each op (synchronized on a GPU); "
           f"{Profile().steps} train steps at batch 64 after {Profile().warmup} warm-up steps"
           + (f" ({slow})" if slow else "") + ". Regenerate with `make profile` or "
           "`mnist-tiers profile --tier T`.")
    busy = [f"{t} ({note})" for t, r in sorted(results.items())
            if (note := busy_note(r.get("machine_state")))]
    busy_line = ("Profiled on a busy machine: " + "; ".join(busy) + ".") if busy else ""
    memory = ("Memory: the traced peak is what one step allocated (tracemalloc: Python and "
              "NumPy); the process peak RSS is the whole process, interpreter and every "
              "library loaded included (torch alone holds several hundred MB), so it is no "
              "tier's own footprint.")
    detail = phase_detail(results)
    md = [f"# Profiles: {info['machine']}", "", head, "", how, "",
          *([busy_line, ""] if busy_line else []), "![breakdown](breakdown.png)",
          "", table, "", memory, "", "Each tier's phases:", "", detail, notes, "",
          "## Reports", ""]
    md += [f"- [{label}]({href})" for label, href in links]
    md += ["", f"Reading the scalene reports: {ATTRIBUTION_NOTE}"]
    atomic_write(out_dir / "README.md", "\n".join(md) + "\n")
    img = base64.b64encode(png.read_bytes()).decode()
    rows = "".join(f'<li><a href="{html.escape(h)}">{html.escape(lab)}</a></li>'
                   for lab, h in links)
    details = "".join(f"<li>{html.escape(line[2:])}</li>" for line in detail.splitlines())
    body = f"""<h1>Where the time goes: {html.escape(info['machine'])}</h1>
<p>{html.escape(head)}</p><p>{html.escape(how)}</p>
{f'<p><b class="busy">{html.escape(busy_line)}</b></p>' if busy_line else ""}
<img alt="stacked phase breakdown" src="data:image/png;base64,{img}">
{_md_table_to_html(table)}
<p>{html.escape(memory)}</p>
<details><summary>Each tier's phases</summary><ul>{details}</ul></details>
{"".join(f"<p>{html.escape(n)}</p>" for n in notes.split(chr(10) * 2) if n.strip())}
<h2>Reports</h2><ul>{rows}</ul>
<p><b>Reading the scalene reports:</b> {html.escape(ATTRIBUTION_NOTE)}</p>"""
    index = out_dir / "index.html"
    atomic_write(index, page(f"mnist-tiers profiles: {info['machine']}", body))
    return index


def _links(out_dir: Path) -> list[tuple[str, str]]:
    out = [("breakdown (JSON)", "breakdown.json"), ("breakdown (Markdown)", "breakdown.md")]
    # the interactive scalene pages (1-10 MB each) are not committed: linked only where
    # they are (a user's own out/profiles), never from the committed reference set
    if out_dir.resolve().parent != profiles_root(True).resolve():
        for p in sorted(out_dir.glob("scalene/scalene-*.html")):
            out.append((f"scalene HTML (interactive): {p.stem[8:]}", f"scalene/{p.name}"))
    for p in sorted(out_dir.glob("scalene-*.txt")):
        out.append((f"scalene text view: {p.stem[8:]}", p.name))
    for p in sorted(out_dir.glob("torch-*-table.txt")):
        out.append((f"torch.profiler table: {p.name[6:-10]}", p.name))
    for p in sorted(out_dir.glob("torch-*-trace.json.gz")):
        out.append((f"torch.profiler trace (open in ui.perfetto.dev): {p.name[6:-14]}", p.name))
    for p in sorted(out_dir.glob("xla-*-trace.json.gz")):
        out.append((f"XLA profiler trace (jax.profiler; open in ui.perfetto.dev): "
                    f"{p.name[4:-14]}", p.name))
    return out


def _md_table_to_html(table: str) -> str:
    rows = [r.strip("|").split("|") for r in table.splitlines()]
    head, body = rows[0], rows[2:]
    th = "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>"
                  for r in body)
    return f"<table><tr>{th}</tr>{trs}</table>"
