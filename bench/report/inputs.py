"""Reading saved results: pytest-benchmark JSONs, training JSONs, profile breakdowns."""

import json
from dataclasses import dataclass, field
from pathlib import Path

from implementations import paths

RESULTS = paths.REFERENCE_BENCH  # the committed reference set


@dataclass
class Run:
    """One pytest-benchmark run (one machine): rows keyed by (group, tier, loader)."""

    path: Path
    machine: dict
    date: str
    rows: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.machine.get("machine", self.path.parent.name)

    def select(self, group: str) -> list[dict]:
        return sorted((r for r in self.rows if r["group"] == group), key=lambda r: r["mean"])

    def groups(self, prefix: str) -> list[str]:
        gs = {r["group"] for r in self.rows if r["group"].startswith(prefix)}
        return sorted(gs, key=lambda g: (g.split("=")[0], int(g.split("=")[-1])
                                         if g.split("=")[-1].isdigit() else 0))

    def peak(self, device: str) -> float:
        if device == "cuda":
            return self.machine.get("gpu_fp32_tflops", 0) * 1e3
        return self.machine["sgemm_gflops"]


def load_run(path: Path) -> Run:
    doc = json.loads(Path(path).read_text())
    info = doc.get("machine_info", {}).get("mnist_tiers")
    if info is None:
        raise ValueError(f"{path}: not a mnist-tiers benchmark JSON (no machine_info.mnist_tiers)"
                         "; produce one with `make bench`")
    run = Run(Path(path), info, doc.get("datetime", "")[:10])
    for b in doc["benchmarks"]:
        e = b["extra_info"]
        run.rows.append({"group": b["group"], "name": b["name"], "tier": e.get("tier"),
                         "loader": e.get("loader", "resident"), "device": e.get("device"),
                         "batch": e.get("batch"), "mean": b["stats"]["mean"],
                         "median": b["stats"]["median"], "gflops": e.get("gflops"),
                         "fraction_of_peak": e.get("fraction_of_peak"),
                         "samples_per_second": e.get("samples_per_second"),
                         "flops": e.get("flops"), "correct": e.get("correct"),
                         "extrapolated": e.get("extrapolated_epoch_seconds"),
                         "epoch_samples": e.get("epoch_samples"), "note": e.get("note"),
                         "extra": e})
    return run


def _roots(reference: bool, kind) -> list[Path]:
    """A user's own runs first (unless reference), then the committed reference set."""
    return [kind(True)] if reference else [kind(False), kind(True)]


def default_result_paths(reference: bool = False) -> list[Path]:
    """Every machine's latest.json: a user's runs if there are any, else the reference."""
    return paths.first_existing("*/latest.json", _roots(reference, paths.bench_root))


def load_trainings(paths) -> list[dict]:
    """Training summaries: files whose last non-empty line is `mnist-tiers train --json`."""
    out = []
    for p in paths:
        lines = [ln for ln in Path(p).read_text().splitlines() if ln.strip()]
        try:
            doc = json.loads(lines[-1])
        except (IndexError, ValueError) as exc:
            raise ValueError(f"{p}: last line is not the JSON of `mnist-tiers train --json`"
                             ) from exc
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


def load_sweep(path) -> dict | None:
    return json.loads(Path(path).read_text()) if path else None
