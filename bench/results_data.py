"""Reading saved results: pytest-benchmark JSONs, training JSONs, profile breakdowns."""

import json
from dataclasses import dataclass, field
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PROFILES = Path(__file__).resolve().parent.parent / "profiles" / "reports"


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
                         "epoch_samples": e.get("epoch_samples"), "note": e.get("note")})
    return run


def default_result_paths() -> list[Path]:
    return sorted(RESULTS.glob("*/latest.json"))


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


def default_training_paths() -> list[Path]:
    return sorted(RESULTS.glob("*/train-*.json"))


def breakdown_charts() -> dict[str, Path]:
    """machine -> its profiles' stacked phase chart, for every profile set present."""
    return {p.parent.name: p for p in sorted(PROFILES.glob("*/breakdown.png"))}
