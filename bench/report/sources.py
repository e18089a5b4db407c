"""The report's Sources table: every input file with its machine, date, code version and
whether the machine was quiet, so a reader sees what was combined and nothing mixes
silently. A file written before the project recorded these says "not recorded"."""

import os
from pathlib import Path

from implementations.provenance import describe_code


def _state(state: dict | None) -> str:
    if not state:
        return "not recorded"
    if state.get("quiet", True):
        others = state.get("others_cores")
        return "quiet" + (f" (others {others:.2f} cores)" if others is not None else "")
    return "**BUSY**: " + "; ".join(state.get("reasons") or [])


def _link(path: Path, out: Path) -> str:
    rel = os.path.relpath(Path(path).resolve(), Path(out).resolve())
    return f"[{Path(path).name}]({rel})"


def row(what: str, path, doc: dict | None, out: Path, machine: str | None = None,
        date: str | None = None) -> dict:
    """One input: what it is, its file (linked relative to the report's folder), and what
    it recorded (provenance, machine_state)."""
    doc = doc or {}
    prov = doc.get("provenance") if isinstance(doc.get("provenance"), dict) else {}
    recorded = prov.get("machine")
    return {"what": what, "file": _link(path, out),
            "machine": recorded or (f"{machine} (folder; not recorded)" if machine else "?"),
            "date": (prov.get("recorded") or date or "?")[:16].replace("T", " "),
            "code": describe_code(prov.get("code")) if prov else "not recorded",
            "state": _state(doc.get("machine_state"))}


def table(rows: list[dict]) -> list[str]:
    lines = ["## Sources", "",
             "Every figure below comes from one of these files; ratios are taken within one "
             "file, and a figure taken from another file says so where it appears.", "",
             "| input | file | machine | date (UTC) | code | machine state |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['what']} | {r['file']} | {r['machine']} | {r['date']} | {r['code']} | "
              f"{r['state']} |" for r in rows]
    return lines + [""]
