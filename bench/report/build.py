"""`mnist-tiers report`: tables, plots and claim verdicts from the saved results.

Reads every bench/results/<machine>/latest.json (or the --results given: several machines
side by side, ratios only ever within one run), training summaries (--train, default
bench/results/*/train-*.json) and the profile breakdowns; writes report.md and a
self-contained report.html (plots embedded) plus the PNGs into the output folder.
"""

import base64
import html
import os
import re
from pathlib import Path

from bench.report import alternating, glance, gpu, plots, sources
from bench.report import claims as claims_mod
from bench.report import ddp as ddp_report
from bench.report import precision as precision_report
from bench.report import scaling as scaling_report
from bench.report.inputs import (
    RESULTS,
    breakdown_charts,
    default_result_paths,
    default_training_paths,
    load_optional,
    load_run,
    load_sweep,
    load_trainings,
    study_path,
)
from implementations import paths as out_paths
from implementations.experiment import step_flops
from implementations.fileio import atomic_write
from implementations.machine import machine_name
from implementations.noise import busy_note
from implementations.page import page
from implementations.registry import ORACLE, SPEED_BASES, TIERS, device_of

PASSES = ("forward", "backward", "train_step")


def _iqr_ms(r) -> str:
    return f"{1e3 * (r['q3'] - r['q1']):.2g}" if r.get("q1") and r.get("q3") else "-"


def pass_table(run, group) -> list[str]:
    """One group's tiers, fastest first: median, IQR and every rate and ratio from the
    median."""
    rows = run.select(group)
    base = {r["tier"]: r["median"] for r in rows}
    busy = " - busy run" if run.busy else ""
    lines = [f"**{group}** ({run.name}{busy})", "",
             "| tier | median ms | IQR ms | samples/s | GFLOP/s | % of peak | "
             + " | ".join(f"vs {t}" for t in SPEED_BASES) + " |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(SPEED_BASES)]
    for r in rows:
        vs = [glance.times(base[t] / r["median"]) if t in base else "-" for t in SPEED_BASES]
        lines.append(
            f"| {r['tier']} | {glance.fmt_ms(r['median'])} | {_iqr_ms(r)} | "
            f"{r['samples_per_second'] or 0:,.0f} | {r['gflops'] or 0:.3g} | "
            f"{100 * (r['fraction_of_peak'] or 0):.1f} | {' | '.join(vs)} |")
    return lines + [""]


def epoch_table(run) -> list[str]:
    rows = run.select("epoch batch=64")
    if not rows:
        return []
    floor = step_flops(60000)["train_step"] / (run.peak("cpu") * 1e9)
    numpy = next((r["median"] for r in rows if r["tier"] == ORACLE
                  and r["loader"] == "resident"), None)
    lines = [f"**epoch batch=64** ({run.name}; FLOP floor {floor:.3f} s = 24.5 GFLOP at the "
             f"measured sgemm {run.peak('cpu'):.0f} GFLOP/s)", "",
             "| tier | loader | median epoch s | samples/s | GFLOP/s | % of peak | x FLOP floor | "
             f"vs {ORACLE} |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: r["extrapolated"] or r["median"]):
        sec = r["extrapolated"] or r["median"]
        label = (f"{sec:,.0f}" if sec >= 100 else f"{sec:.3g}") + (
            " (extrapolated)" if r["extrapolated"] else "")
        lines.append(
            f"| {r['tier']} | {r['loader']} | {label} | {60000 / sec:,.0f} | "
            f"{r['gflops'] or 0:.3g} | {100 * (r['fraction_of_peak'] or 0):.1f} | "
            f"{glance.times(sec / floor)[:-1]} | {glance.times(numpy / sec) if numpy else '-'} |")
    return lines + [""]


def matmul_table(run) -> list[str]:
    out = []
    for g in run.groups("matmul"):
        rows = run.select(g)
        blas = next((r for r in rows if r["tier"] == "openblas"), None)
        out += [f"**{g}** ({run.name}): our Numba matmuls vs the BLAS under NumPy", "",
                "| implementation | GFLOP/s (median) | % of OpenBLAS |", "|---|---:|---:|"]
        for r in rows:
            rel = r["gflops"] / blas["gflops"] if blas else 0
            out.append(f"| {r['tier']} | {r['gflops']:.1f} | {100 * rel:.0f}% |")
        out.append("")
    return out


def crossovers(run) -> list[tuple[str, tuple[int, float]]]:
    """Batch sizes where one tier's throughput overtakes another's (measured points,
    medians): each tier against its registry baseline on the same device, and each GPU
    tier against the best CPU tier. The device of a tier is the one its rows recorded."""
    sps = plots.samples_per_second(run)
    device = {r["tier"]: r["device"] or device_of(r["tier"]) for r in run.rows}
    pairs = [(t, TIERS[t].baseline) for t in sps
             if t in TIERS and TIERS[t].baseline in sps
             and device[t] == device[TIERS[t].baseline]]
    gpu = [t for t in sps if device[t] == "cuda"]
    cpu = [t for t in sps if device[t] != "cuda"]
    out = []
    for a, b in pairs:
        out += _overtakes(sps, a, b)
    for g in gpu if cpu else []:
        best_cpu = {n: max(sps[t].get(n, 0) for t in cpu) for n in sps[g]}
        for n in sorted(sps[g]):
            if sps[g][n] > best_cpu[n]:
                out.append((f"{g} beats the best CPU tier from batch {n}", (n, sps[g][n])))
                break
    return out


def _overtakes(sps, a, b):
    if a not in sps or b not in sps:
        return []
    common = sorted(set(sps[a]) & set(sps[b]))
    for prev, n in zip(common, common[1:], strict=False):
        if (sps[a][prev] > sps[b][prev]) != (sps[a][n] > sps[b][n]):
            who = a if sps[a][n] > sps[b][n] else b
            return [(f"{who} ahead from batch {n} ({a} vs {b})", (n, sps[who][n]))]
    return []


def training_machine(t: dict) -> str:
    """The machine a training recorded (provenance), marked busy where its guard said so; an
    older file without one is labelled by its folder, saying so."""
    recorded = (t.get("provenance") or {}).get("machine")
    label = recorded or f"{Path(t.get('source', '?')).parent.name}? (not recorded)"
    return label + (" (busy)" if busy_note(t.get("machine_state")) else "")


def training_table(trainings) -> list[str]:
    if not trainings:
        return ["No training results given (`mnist-tiers train ... --json > "
                "out/bench/<machine>/train-<tier>.json`, or `--train FILE`).", ""]
    lines = ["| tier | hidden | format | activation | machine | epochs | final test acc % | "
             "epochs to 97% | time to 97% s | mean epoch s | compile s |",
             "|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for t in trainings:
        acc = t["test_accuracy"]
        e97 = claims_mod.epochs_to(acc)
        t97 = f"{sum(t['epoch_seconds'][:e97]):.1f}" if e97 else "-"
        machine = training_machine(t)
        lines.append(f"| {t['tier']} | {t.get('hidden', 128)} | {t.get('dtype', 'float32')} | "
                     f"{t['activation']} | "
                     f"{machine} | {len(acc)} | {100 * acc[-1]:.2f} | "
                     f"{e97 or '-'} | {t97} | {sum(t['epoch_seconds']) / len(acc):.3g} | "
                     f"{t.get('compile_seconds', 0):.1f} |")
    return lines + [""]


TERMS = [
    "**seed**: the README this study began from, comparing a from-scratch NumPy network "
    "with a PyTorch one; its claims are quoted in its words.",
    "**scratch tier**: our own arithmetic (loops, NumPy, Numba, our CUDA kernels); "
    "**framework tier**: a library's (PyTorch, JAX).",
    "**FLOP floor**: a step's FLOPs at the peak measured in the same run (sgemm on the CPU, "
    "the fp32 matmul on a GPU); \"2x floor\" is twice that time, \"50% of peak\" the same.",
    "**median, IQR**: every time is the median of its rounds, with the interquartile "
    "range; means appear only where labelled.",
    "**busy run**: a run during which other processes used the CPU (see Sources); its "
    "figures are shown, marked, and left out of the verdicts when a quiet run exists.",
]


def claims_section(claims, note: str = "") -> list[str]:
    """The verdicts: one table (claim, verdict, the deciding line), then each claim's whole
    evidence folded, every statement once."""
    lines = ["## Claims checked", "",
             f"Six claims of {claims[0]['source'].split(', list')[0] if claims else 'the seed'}"
             ", each judged from the data below (change the data and the verdict changes)."
             + (f" {note}" if note else ""), "",
             "| the seed's claim | its list | verdict | deciding evidence |",
             "|---|---|---|---|"]
    for c in claims:
        lst = c["source"].rsplit("list ", 1)[-1].strip('"')
        lines.append(f"| \"{c['claim']}\" | {lst} | **{c['verdict']}** | "
                     f"{claims_mod.deciding_line(c)} |")
    lines.append("")
    for c in claims:
        items = [(label, list(dict.fromkeys(xs))) for label, xs in
                 ((c["holds_label"], c["holds"]), (c["fails_label"], c["fails"])) if xs]
        if not items:  # untested: its deciding line already says why
            continue
        lines += [f"<details><summary>All evidence: \"{c['claim']}\" ({c['verdict']})"
                  "</summary>", ""]
        for label, xs in items:
            lines.append(f"- {label} ({len(xs)}):")
            lines += [f"  - {x}" for x in xs]
        lines += [f"- note: {n}" for n in c["notes"] if n not in claims_mod.deciding_line(c)]
        lines += ["", "</details>", ""]
    return lines


def build(result_paths=None, train_paths=None, out_dir=None, reference: bool = False) -> Path:
    """Write report.md, report.html and PNGs; returns the report.md path.

    Defaults: a user's own runs (out/) where there are any, else the committed reference
    set, written to out/report/; reference=True reads this machine's reference set
    (bench/results/<machine>/) and writes beside it (what `make reference` does).
    """
    if reference and not result_paths:
        mine = RESULTS / machine_name()
        result_paths = [mine / "latest.json"] if (mine / "latest.json").exists() else []
        if train_paths is None:
            train_paths = sorted(mine.glob("train-*.json"))
    paths = [Path(p) for p in (result_paths or default_result_paths(reference))]
    if not paths:
        raise FileNotFoundError(f"no benchmark results in {out_paths.bench_root()} or "
                                f"{RESULTS}: run `make bench` first, or pass --results PATH")
    runs = [load_run(p) for p in paths]
    trainings = load_trainings(train_paths if train_paths is not None
                               else default_training_paths(reference,
                                                           [run.name for run in runs]))
    if out_dir:
        out = Path(out_dir)
    elif reference:
        out = paths[0].parent if len(paths) == 1 else RESULTS
    else:
        out = out_paths.report_dir()
    out.mkdir(parents=True, exist_ok=True)
    floor_paths = {run.name: study_path(run.name, reference, "gpu-floor.json") for run in runs}
    floors = {name: gpu.load(p) for name, p in floor_paths.items()}
    sweep_paths = {run.name: study_path(run.name, reference) for run in runs}
    sweeps = {name: load_sweep(p) for name, p in sweep_paths.items()}
    alt_paths = {run.name: study_path(run.name, reference, "alternating.json") for run in runs}
    md = ["# mnist-tiers: how fast is each tier, and how close to the machine's limit?", "",
          "One network (784 -> 128 -> 10, ReLU, softmax cross-entropy, SGD) in tiers: plain "
          "Python loops, NumPy, Numba, a fused Numba epoch, PyTorch and JAX, on the CPU and "
          "the GPU; every timed result was checked against the float64 NumPy oracle first.",
          ""]
    md += glance.section(runs, floors, out)
    # the sources: every file a figure below comes from
    rows = [sources.row("benchmarks", run.path, {"provenance": run.provenance,
                                                 "machine_state": run.machine_state},
                        out, run.name, run.date) for run in runs]
    for label, found in (("sweep", sweep_paths), ("alternating epochs", alt_paths),
                         ("GPU launch floor", floor_paths)):
        for name, path in found.items():
            if path:
                doc = sweeps[name] if label == "sweep" else floors[name] if label.startswith(
                    "GPU") else load_optional(path, ("results",), "`mnist-tiers alternate`")
                if doc is not None:
                    rows.append(sources.row(label, path, doc, out, name, doc.get("date")))
    rows += [sources.row(f"training: {t['tier']}", t["source"], t, out,
                         Path(t["source"]).parent.name) for t in trainings]
    md += sources.table(rows)
    # verdicts from quiet runs where there is one
    quiet = [run for run in runs if not run.busy]
    judged = quiet or runs
    note = ("" if len(judged) == len(runs) else
            "Busy runs left out of the verdicts: "
            + ", ".join(r.name for r in runs if r not in judged) + ".")
    if not quiet and any(run.busy for run in runs):
        note = "Every run was busy: the verdicts use them, and may be wrong."
    # the accuracy claims compare tiers on one network: the default width, float32
    comparable = [t for t in trainings if t.get("hidden", 128) == 128
                  and t.get("dtype", "float32") == "float32"]
    claims = claims_mod.all_claims(judged, comparable, TIERS.values())
    md += claims_section(claims, note)
    md += ["### Terms", ""] + [f"- {t}" for t in TERMS] + [""]
    md += ["## Machines", ""]
    for run in runs:
        m = run.machine
        md.append(f"- **{run.name}** ({run.date}): {m['cpu']}, {m['threads']} threads"
                  f"{', GPU ' + m['gpu'] if m.get('gpu') else ''}; measured peaks: sgemm "
                  f"{m['sgemm_gflops']} GFLOP/s"
                  + (f", GPU fp32 {m['gpu_fp32_tflops']} TFLOP/s" if m.get("gpu_fp32_tflops")
                     else "")
                  + "; copy bandwidths: " + ", ".join(f"{label} {bw:.0f} GB/s" for label, _, bw, _
                                                      in plots.ceilings(m))
                  + "; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
        for f in run.failures:
            md.append(f"  - failed in this run: {f.get('test')}: {f.get('message')}")
    md.append("")
    for run in runs:
        slug = re.sub(r"[^a-z0-9-]", "", run.name)
        md += [f"## Results on {run.name}", ""]
        plots.step_times(run, out / f"step-times-{slug}.png")
        plots.throughput(run, out / f"throughput-{slug}.png", crossovers(run))
        plots.roofline(run, out / f"roofline-{slug}.png")
        md += [f"![step times](step-times-{slug}.png)", "",
               f"![throughput](throughput-{slug}.png)", ""]
        md += [f"Crossovers: {t}." for t, _ in crossovers(run)] or ["No crossovers measured."]
        md += [""]
        for p in PASSES:
            for g in run.groups(f"{p} "):
                md += pass_table(run, g)
        md += epoch_table(run)
        md += alternating.section(alt_paths[run.name])
        md += gpu.section(floor_paths[run.name])
        md += matmul_table(run)
        md += [f"![roofline](roofline-{slug}.png)", ""]
        md += ddp_report.section(run)
        md += precision_report.section(run, trainings)
        md += scaling_report.scaling_section(sweeps[run.name], out, slug, run.name)
    md += ["## Training", ""] + training_table(trainings)
    if trainings:
        plots.accuracy_curves(trainings, out / "accuracy.png")
        md += ["![accuracy](accuracy.png)", ""]
    md += scaling_report.accuracy_vs_width(trainings)
    for machine, png in breakdown_charts(reference).items():
        if machine not in {run.name for run in runs}:
            continue
        target = out / f"breakdown-{machine}.png"
        atomic_write(target, png.read_bytes())
        md += [f"## Where the time goes ({machine}, profiles)", "",
               f"![breakdown](breakdown-{machine}.png)", "",
               f"Per-phase tables and traces: [the profile index of {machine}]"
               f"({os.path.relpath(png.parent / 'index.html', out)})", ""]
    report_md = out / "report.md"
    atomic_write(out / "report.html", to_html("\n".join(md), out))
    atomic_write(report_md, "\n".join(md) + "\n")
    return report_md


VERDICT_CLASS = {"holds": "v-holds", "fails": "v-fails", "holds only in part": "v-part",
                 "untested": "v-untested", "BUSY": "busy"}
RAW_HTML = ("<details", "</details>", "<summary", "<div", "</div>")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def to_html(md: str, folder: Path) -> str:
    """A small Markdown subset to one self-contained HTML page (images inlined as data URIs,
    our own stylesheet, a table of contents of the h2 sections, links kept): it opens
    offline."""
    body, table, items = [], [], []

    def flush():
        if table:
            rows = [r.strip().strip("|").split(" | ") for r in table
                    if not set(r) <= set("|-: ")]
            cells = lambda r, tag: "".join(f"<{tag}>{_inline(c.strip())}</{tag}>" for c in r)  # noqa: E731
            body.append("<table><tr>" + cells(rows[0], "th") + "</tr>" + "".join(
                "<tr>" + cells(r, "td") + "</tr>" for r in rows[1:]) + "</table>")
            table.clear()
        if items:
            html_items, depth = [], 0
            for level, text in items:
                while depth < level:
                    html_items.append("<ul>")
                    depth += 1
                while depth > level:
                    html_items.append("</ul>")
                    depth -= 1
                html_items.append(f"<li>{_inline(text)}</li>")
            html_items += ["</ul>"] * depth
            body.append("".join(html_items))
            items.clear()

    toc = []
    for line in md.splitlines():
        if line.startswith("|"):
            if items:
                flush()
            table.append(line)
            continue
        if line.startswith(("- ", "  - ")):
            if table:
                flush()
            items.append((2 if line.startswith("  ") else 1, line.lstrip(" -")))
            continue
        flush()
        if line.startswith(RAW_HTML):
            body.append(line)
        elif line.startswith("!["):
            alt, src = line[2:line.index("](")], line[line.index("](") + 2:-1]
            data = base64.b64encode((folder / src).read_bytes()).decode()
            body.append(f'<p><img alt="{html.escape(alt)}" '
                        f'src="data:image/png;base64,{data}"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            text = line.lstrip("# ")
            anchor = _slug(text)
            if level == 2:
                toc.append(f'<a href="#{anchor}">{html.escape(text)}</a>')
            body.append(f'<h{level} id="{anchor}">{_inline(text)}</h{level}>')
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    flush()
    nav = f'<nav class="toc">Contents: {" ".join(toc)}</nav>'
    first_h2 = next((i for i, b in enumerate(body) if b.startswith("<h2")), len(body))
    body.insert(first_h2, nav)
    # after loading, the page records whether every image decoded and how far down the
    # first screen's summary and ladder reach (pixels): what a browser test reads back
    check = ("<script>window.addEventListener('load',()=>{const imgs=[...document.images];"
             "const ok=imgs.every(i=>i.complete&&i.naturalWidth>0);document.body.dataset."
             "images=imgs.length;document.body.dataset.imagesOk=ok;"
             "let el=document.getElementById('at-a-glance'),bottom=0;"
             "while(el&&(el=el.nextElementSibling)&&el.tagName!=='H2'){"
             "[el,...el.querySelectorAll('img,table')].forEach(x=>{if(x.matches('img,table'))"
             "bottom=Math.max(bottom,x.getBoundingClientRect().bottom)});}"
             "document.body.dataset.glanceBottom=Math.round(bottom);});</script>")
    return page("mnist-tiers report", check + "\n".join(body))


def _inline(text: str) -> str:
    t = html.escape(text, quote=False)
    for word, cls in VERDICT_CLASS.items():
        t = t.replace(f"**{word}**", f'<b class="{cls}">{word}</b>')
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)
