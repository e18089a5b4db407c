"""The report's section on epochs alternating in one process (bench/studies/alternating.py's
alternating.json)."""

from pathlib import Path

from bench.report.inputs import load_optional
from implementations.noise import busy_note


def section(path: Path | None) -> list[str]:
    """The report's lines for an alternating.json (none if there is no such file, or a
    warning if it is damaged)."""
    doc = load_optional(path, ("machine", "date", "runs", "gap_seconds", "results"),
                        "`mnist-tiers alternate`")
    if doc is None:
        return []
    m = doc["machine"]
    busy = busy_note(doc.get("machine_state"))
    lines = [f"### Epochs alternating in one process (alternating.json, {doc['date']}: a run "
             "of its own, floors from its own sgemm)", "",
             *([f"**BUSY**: {busy}", ""] if busy else []),
             f"{doc['runs']} rounds, one epoch of each tier per round, {doc['gap_seconds']:g} s "
             f"apart (bench/studies/alternating.py); medians; FLOP floor at the sgemm peak "
             f"measured in the same run ({m['sgemm_gflops']} GFLOP/s), {m['threads']} threads.", "",
             "| batch | samples | tier | median s | runs s | x FLOP floor | numpy / tier |",
             "|---|---|---|---|---|---|---|"]
    for r in doc["results"]:
        lines.append(f"| {r['batch']} | {r['samples']} | {r['tier']} | {r['median_s']:.3f} | "
                     + ", ".join(f"{t:.3f}" for t in r["runs_s"])
                     + f" | {r['x_floor']:.2f} | {r['numpy_over_this']:.2f}x |")
    return lines + [""]
