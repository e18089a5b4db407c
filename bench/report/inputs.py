"""Reading saved results: pytest-benchmark JSONs, training JSONs, profile breakdowns."""

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from implementations import paths
from implementations.fileio import ResultFileError, read_json

RESULTS = paths.REFERENCE_BENCH  # the committed reference set


@dataclass
class Run:
    """One pytest-benchmark run (one machine): rows keyed by (group, tier, loader)."""

    path: Path
    machine: dict
    date: str
    rows: list[dict] = field(default_factory=list)
    provenance: dict | None = None  # machine, code version (None: a run older than them)
    machine_state: dict | None = None  # the noise guard's verdict (None: not recorded)
    failures: list = field(default_factory=list)  # benchmarks that failed in this run

    @property
    def name(self) -> str:
        return self.machine.get("machine", self.path.parent.name)

    @property
    def busy(self) -> bool:
        """Whether the run was flagged busy (implementations/noise.py)."""
        return bool(self.machine_state) and not self.machine_state.get("quiet", True)

    def select(self, group: str) -> list[dict]:
        """The rows of `group`, fastest first (by median)."""
        return sorted((r for r in self.rows if r["group"] == group), key=lambda r: r["median"])

    def groups(self, prefix: str) -> list[str]:
        gs = {r["group"] for r in self.rows if r["group"].startswith(prefix)}
        return sorted(gs, key=lambda g: (g.split("=")[0], int(g.split("=")[-1])
                                         if g.split("=")[-1].isdigit() else 0))

    def peak(self, device: str) -> float:
        if device == "cuda":
            return self.machine.get("gpu_fp32_tflops", 0) * 1e3
        return self.machine["sgemm_gflops"]


BENCH_FIX = "produce one with `make bench` (or `pytest --benchmark-only`), or pass another " \
            "file with --results"
MACHINE_KEYS = ("cpu", "threads", "sgemm_gflops", "versions")  # what the report reads


def _positive(value) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def _check_run(path: Path, doc) -> None:
    """ResultFileError unless `doc` has the shape of a mnist-tiers benchmark JSON: a
    machine_info.mnist_tiers with MACHINE_KEYS, and benchmarks whose group is a string,
    whose extra_info is a dict and whose mean and median are finite and > 0."""
    def bad(what: str):
        return ResultFileError(f"{path}: {what}; {BENCH_FIX}")

    if not isinstance(doc, dict):
        raise bad(f"a pytest-benchmark JSON is an object, this holds a {type(doc).__name__}")
    info = (doc.get("machine_info") or {}).get("mnist_tiers") if isinstance(
        doc.get("machine_info"), dict) else None
    if not isinstance(info, dict):
        raise bad("not a mnist-tiers benchmark JSON (no machine_info.mnist_tiers)")
    missing = [k for k in MACHINE_KEYS if k not in info]
    if missing:
        raise bad(f"machine_info.mnist_tiers lacks {', '.join(missing)}")
    if not _positive(info["sgemm_gflops"]):
        raise bad(f"machine_info.mnist_tiers.sgemm_gflops is {info['sgemm_gflops']!r}, not a "
                  f"measured peak > 0")
    benches = doc.get("benchmarks")
    if not isinstance(benches, list) or not benches:
        raise bad("no benchmarks in it")
    for i, b in enumerate(benches):
        where = f"benchmarks[{i}] ({b.get('name', '?') if isinstance(b, dict) else '?'})"
        if not isinstance(b, dict) or not isinstance(b.get("group"), str):
            raise bad(f"{where} has no group")
        if not isinstance(b.get("extra_info"), dict) or not isinstance(b.get("stats"), dict):
            raise bad(f"{where} lacks extra_info or stats")
        for stat in ("mean", "median"):
            if not _positive(b["stats"].get(stat)):
                raise bad(f"{where} has {stat} {b['stats'].get(stat)!r}: a time must be a "
                          f"finite number of seconds > 0")


def load_run(path: Path) -> Run:
    """A checked benchmark run (ResultFileError naming the file and what is wrong)."""
    doc = read_json(path, BENCH_FIX)
    _check_run(Path(path), doc)
    info = doc["machine_info"]["mnist_tiers"]
    failures = doc.get("failures") if isinstance(doc.get("failures"), list) else []
    run = Run(Path(path), info, str(doc.get("datetime", ""))[:10],
              provenance=doc.get("provenance") if isinstance(doc.get("provenance"), dict)
              else None,
              machine_state=doc.get("machine_state") if isinstance(doc.get("machine_state"),
                                                                   dict) else None,
              failures=failures)
    for b in doc["benchmarks"]:
        run.rows.append(_row(run, b))
    return run


def _row(run: Run, b: dict) -> dict:
    """One benchmark as the report reads it. Every rate is recomputed from the median
    (GFLOP/s, % of peak, samples/s), whatever statistic the file's extra_info used, so that
    tables, ratios, plots and claims all compare the same numbers; q1/q3 are the quartiles."""
    e, st = b["extra_info"], b["stats"]
    median = st["median"]
    flops = e.get("flops")
    device = e.get("device") or "cpu"
    gflops = flops / median / 1e9 if flops else None
    peak = run.peak(device)
    samples = e.get("samples")
    if samples is None and e.get("samples_per_second"):  # files from before "samples"
        samples = (e.get("epoch_samples") if b["group"].startswith("epoch")
                   else e.get("batch") if b["group"].startswith(("train_step", "forward",
                                                                 "backward"))
                   else e["samples_per_second"] * st["mean"])  # it was samples / mean
    extrapolated = e.get("extrapolated_epoch_seconds")
    if extrapolated and e.get("epoch_samples"):  # older files extrapolated the mean
        extrapolated = median * 60000 / e["epoch_samples"]
    q1, q3 = st.get("q1"), st.get("q3")
    return {"group": b["group"], "name": b["name"], "tier": e.get("tier"),
            "loader": e.get("loader", "resident"), "device": e.get("device"),
            "batch": e.get("batch"), "mean": st["mean"], "median": median,
            "q1": q1 if _positive(q1) else None, "q3": q3 if _positive(q3) else None,
            "gflops": gflops, "fraction_of_peak": gflops / peak if gflops and peak else None,
            "samples_per_second": samples / median if samples else None,
            "flops": flops, "correct": e.get("correct"), "extrapolated": extrapolated,
            "epoch_samples": e.get("epoch_samples"), "note": e.get("note"), "extra": e}


def _roots(reference: bool, kind) -> list[Path]:
    """A user's own runs first (unless reference), then the committed reference set."""
    return [kind(True)] if reference else [kind(False), kind(True)]


USER_RUNS = ("latest.json", "quick.json", "partial.json")  # what the suite saves (run.py)


def default_result_paths(reference: bool = False) -> list[Path]:
    """One benchmark run per machine: a user's own (out/bench/<machine>/: the newest of
    latest.json, quick.json and partial.json, so `pytest --benchmark-only --quick` then
    `mnist-tiers report` shows that run) where there are any, else the committed
    reference set's latest.json files."""
    if not reference:
        mine = []
        for folder in sorted(p for p in paths.bench_root(False).glob("*") if p.is_dir()):
            runs = [folder / n for n in USER_RUNS if (folder / n).is_file()]
            if runs:
                mine.append(max(runs, key=lambda p: p.stat().st_mtime))
        if mine:
            return mine
    return paths.first_existing("*/latest.json", [paths.bench_root(True)])


def load_trainings(paths) -> list[dict]:
    """Training summaries: files whose last non-empty line is `mnist-tiers train --json`."""
    out = []
    fix = ("make one with `mnist-tiers train --tier T --json > FILE`, or leave the file "
           "out (--train)")
    for p in paths:
        try:
            lines = [ln for ln in Path(p).read_text().splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ResultFileError(f"{p}: cannot be read ({exc}); {fix}") from None
        try:
            doc = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise ResultFileError(f"{p}: its last line is not the JSON of `mnist-tiers "
                                  f"train --json`; {fix}") from None
        need = ("tier", "test_accuracy", "epoch_seconds", "activation", "batch_size", "lr")
        if not isinstance(doc, dict) or any(k not in doc for k in need):
            raise ResultFileError(f"{p}: a training summary needs {', '.join(need)}; {fix}")
        doc["source"] = str(p)
        out.append(doc)
    return out


def default_training_paths(reference: bool = False, machines=None) -> list[Path]:
    """Saved `train --json` runs of `machines` (default: every machine), each machine's
    from a user's out/bench/<machine>/train-*.json if there are any, else its reference
    trainings: a report never mixes another machine's trainings in unasked."""
    roots = _roots(reference, paths.bench_root)
    names = machines or sorted({p.parent.name for r in roots for p in r.glob("*/train-*.json")})
    found = []
    for m in names:
        found += paths.first_existing(f"{m}/train-*.json", roots)
    return found


def breakdown_charts(reference: bool = False) -> dict[str, Path]:
    """machine -> its profiles' stacked phase chart: a user's profiles if any, else the
    reference profiles."""
    found = paths.first_existing("*/breakdown.png", _roots(reference, paths.profiles_root))
    return {p.parent.name: p for p in found}


def study_path(machine: str, reference: bool = False, name: str = "sweep.json") -> Path | None:
    """The sweep of `machine` (or its other result file `name`): a user's
    out/bench/<machine>/<name> if present, else the committed one (reference: only the
    committed one)."""
    roots = [paths.bench_root(True)] if reference else [paths.bench_root(False),
                                                         paths.bench_root(True)]
    for root in roots:
        p = root / machine / name
        if p.exists():
            return p
    return None


def load_optional(path, needs: tuple[str, ...], what: str) -> dict | None:
    """An optional study file (a sweep, alternating or gpu-floor JSON) for the report: None
    when there is none, and None with a warning naming it when it is damaged (torn,
    empty, or without `needs`): the rest of the report is still built."""
    if not path or not Path(path).exists():
        return None
    fix = f"rerun {what} to rewrite it, or delete it"
    try:
        doc = read_json(path, fix)
        if not isinstance(doc, dict) or any(k not in doc for k in needs):
            raise ResultFileError(f"{path}: it lacks {', '.join(needs)}; {fix}")
    except ResultFileError as exc:
        warnings.warn(f"{exc}; the report is built without it", ReportInputWarning,
                      stacklevel=2)
        return None
    return doc


class ReportInputWarning(UserWarning):
    """An optional input of the report was damaged and left out."""


def load_sweep(path) -> dict | None:
    return load_optional(path, ("cost_models", "cells", "grid"), "`mnist-tiers sweep`")
