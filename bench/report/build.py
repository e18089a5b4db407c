"""`mnist-tiers report`: tables, plots and claim verdicts from the saved results.

Reads every bench/results/<machine>/latest.json (or the --results given: several machines
side by side, ratios only ever within one run), training summaries (--train, default
bench/results/*/train-*.json) and the profile breakdowns; writes report.md and a
self-contained report.html (plots embedded) plus the PNGs into the output folder.
"""

import base64
import html
import re
from pathlib import Path

from bench.report import alternating, gpu, plots
from bench.report import claims as claims_mod
from bench.report import ddp as ddp_report
from bench.report import precision as precision_report
from bench.report import scaling as scaling_report
from bench.report.inputs import (
    RESULTS,
    breakdown_charts,
    default_result_paths,
    default_training_paths,
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
from implementations.registry import ORACLE, SPEED_BASES, TIERS, device_of

PASSES = ("forward", "backward", "train_step")


def _fmt_ms(s):
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 1000 else f"{ms:,.0f}"


def _ratio(x: float) -> str:
    return f"{x:,.0f}x" if x >= 100 else f"{x:.3g}x"


def pass_table(run, group) -> list[str]:
    rows = run.select(group)
    base = {r["tier"]: r["mean"] for r in rows}
    lines = [f"**{group}** ({run.name})", "",
             "| tier | mean ms | median ms | samples/s | GFLOP/s | % of peak | "
             + " | ".join(f"vs {t}" for t in SPEED_BASES) + " |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(SPEED_BASES)]
    for r in rows:
        vs = [_ratio(base[t] / r["mean"]) if t in base else "-" for t in SPEED_BASES]
        lines.append(
            f"| {r['tier']} | {_fmt_ms(r['mean'])} | {_fmt_ms(r['median'])} | "
            f"{r['samples_per_second'] or 0:,.0f} | {r['gflops'] or 0:.3g} | "
            f"{100 * (r['fraction_of_peak'] or 0):.1f} | {' | '.join(vs)} |")
    return lines + [""]


def epoch_table(run) -> list[str]:
    rows = run.select("epoch batch=64")
    if not rows:
        return []
    floor = step_flops(60000)["train_step"] / (run.peak("cpu") * 1e9)
    numpy = next((r["mean"] for r in rows if r["tier"] == ORACLE
                  and r["loader"] == "resident"), None)
    lines = [f"**epoch batch=64** ({run.name}; FLOP floor {floor:.3f} s = 24.5 GFLOP at the "
             f"measured sgemm {run.peak('cpu'):.0f} GFLOP/s)", "",
             "| tier | loader | epoch s | samples/s | GFLOP/s | % of peak | x FLOP floor | "
             f"vs {ORACLE} |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: r["extrapolated"] or r["mean"]):
        sec = r["extrapolated"] or r["mean"]
        label = (f"{sec:,.0f}" if sec >= 100 else f"{sec:.3g}") + (
            " (extrapolated)" if r["extrapolated"] else "")
        lines.append(
            f"| {r['tier']} | {r['loader']} | {label} | {60000 / sec:,.0f} | "
            f"{r['gflops'] or 0:.3g} | {100 * (r['fraction_of_peak'] or 0):.1f} | "
            f"{_ratio(sec / floor)[:-1]} | {_ratio(numpy / sec) if numpy else '-'} |")
    return lines + [""]


def matmul_table(run) -> list[str]:
    out = []
    for g in run.groups("matmul"):
        rows = run.select(g)
        blas = next((r for r in rows if r["tier"] == "openblas"), None)
        out += [f"**{g}** ({run.name}): our Numba matmuls vs the BLAS under NumPy", "",
                "| implementation | mean GFLOP/s | median GFLOP/s | % of OpenBLAS (median) |",
                "|---|---:|---:|---:|"]
        for r in rows:
            med = r["flops"] / r["median"] / 1e9
            rel = med / (blas["flops"] / blas["median"] / 1e9) if blas else 0
            out.append(f"| {r['tier']} | {r['gflops']:.1f} | {med:.1f} | {100 * rel:.0f}% |")
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


def claims_section(claims) -> list[str]:
    lines = []
    for c in claims:
        lines += [f"- **\"{c['claim']}\"** verdict: **{c['verdict']}**"]
        for label, items in ((c["holds_label"], c["holds"]), (c["fails_label"], c["fails"])):
            if items:
                lines.append(f"  - {label}: " + "; ".join(items))
        lines += [f"  - note: {n}" for n in c["notes"]]
    return lines + [""]


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
    md = ["# mnist-tiers: loops vs NumPy vs Numba vs PyTorch", ""]
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
    md += ["", "Times are pytest-benchmark means unless marked median; every timed result "
           "was checked against the float64 oracle first (correct: true). Ratios compare "
           "tiers within one run only. Claim verdicts and crossovers use medians, which a few "
           "descheduled calls on a shared machine cannot flip.", ""]
    # the accuracy claims compare tiers on one network: the default width, float32
    comparable = [t for t in trainings if t.get("hidden", 128) == 128
                  and t.get("dtype", "float32") == "float32"]
    claims = claims_mod.all_claims(runs, comparable, TIERS.values())
    sweeps = {run.name: load_sweep(study_path(run.name, reference))
              for run in runs}
    for run in runs:
        md += scaling_report.summary(run, sweeps[run.name], claims)
    md += ["## Claims checked", ""]
    md += claims_section(claims)
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
        md += alternating.section(study_path(run.name, reference, "alternating.json"))
        md += gpu.section(study_path(run.name, reference, "gpu-floor.json"))
        md += matmul_table(run)
        md += [f"![roofline](roofline-{slug}.png)", ""]
        md += ddp_report.section(run)
        md += precision_report.section(run, trainings)
        md += scaling_report.scaling_section(sweeps[run.name], out, slug)
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
               f"Per-phase tables and traces: {_shown(png.parent / 'index.html')}", ""]
    report_md = out / "report.md"
    atomic_write(out / "report.html", to_html("\n".join(md), out))
    atomic_write(report_md, "\n".join(md) + "\n")
    return report_md


def _shown(path: Path) -> str:
    """A path as a reader should see it: relative to the checkout where it lies inside."""
    from implementations.paths import REPO

    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def to_html(md: str, folder: Path) -> str:
    """A small Markdown subset to HTML, images inlined as data URIs (opens offline)."""
    body, table = [], []

    def flush():
        if table:
            rows = [r.strip().strip("|").split("|") for r in table if not set(r) <= set("|-: ")]
            cells = lambda r, tag: "".join(f"<{tag}>{_inline(c.strip())}</{tag}>" for c in r)  # noqa: E731
            body.append("<table><tr>" + cells(rows[0], "th") + "</tr>" + "".join(
                "<tr>" + cells(r, "td") + "</tr>" for r in rows[1:]) + "</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("!["):
            src = line[line.index("(") + 1:-1]
            data = base64.b64encode((folder / src).read_bytes()).decode()
            body.append(f'<p><img alt="{html.escape(src)}" src="data:image/png;base64,{data}">'
                        "</p>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(line.lstrip('# '))}</h{level}>")
        elif line.startswith("  - "):
            body.append(f"<ul><li>{_inline(line[4:])}</li></ul>")
        elif line.startswith("- "):
            body.append(f"<p>&bull; {_inline(line[2:])}</p>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    flush()
    check = ("<script>window.addEventListener('load',()=>{const imgs=[...document.images];"
             "const ok=imgs.every(i=>i.complete&&i.naturalWidth>0);document.body.dataset."
             "images=imgs.length;document.body.dataset.imagesOk=ok;});</script>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>mnist-tiers report"
            "</title><style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
            "table{border-collapse:collapse;font-size:12px;margin:1em 0}td,th{border:1px "
            "solid #ccc;padding:2px 6px}img{max-width:100%}</style>" + check +
            "</head><body>" + "\n".join(body) + "</body></html>")


def _inline(text: str) -> str:
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)
