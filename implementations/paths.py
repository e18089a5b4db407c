"""Where results are written and read: a user's own runs, or the committed reference set.

A user's runs (`make bench`, `make profile`, `mnist-tiers report`) go under `out/` in the
checkout (ignored by git; $MNIST_TIERS_OUT moves it), so running the README's commands
leaves `git status` clean. Only `--reference` (what `make reference` passes) writes the
committed set: bench/results/<machine>/ and profiles/reports/<machine>/.

Readers (the report) take a user's runs where there are any, else the reference set.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE_BENCH = REPO / "bench" / "results"
REFERENCE_PROFILES = REPO / "profiles" / "reports"
ENV_VAR = "MNIST_TIERS_OUT"


def runs_root() -> Path:
    """The ignored folder of a user's runs: $MNIST_TIERS_OUT, else <checkout>/out."""
    return Path(os.environ.get(ENV_VAR) or REPO / "out")


def bench_root(reference: bool = False) -> Path:
    """Folder holding one subfolder of benchmark results per machine."""
    return REFERENCE_BENCH if reference else runs_root() / "bench"


def profiles_root(reference: bool = False) -> Path:
    """Folder holding one subfolder of profile reports per machine."""
    return REFERENCE_PROFILES if reference else runs_root() / "profiles"


def report_dir(reference: bool = False) -> Path:
    """Where `mnist-tiers report` writes when no --out is given (reference: beside the
    committed results, chosen by the report itself)."""
    return REFERENCE_BENCH if reference else runs_root() / "report"


def autosave_dir(machine: str) -> Path:
    """pytest-benchmark's run history (`pytest-benchmark compare`): always a user's own."""
    return runs_root() / "bench" / machine / "autosave"


def first_existing(pattern: str, roots: list[Path]) -> list[Path]:
    """Files matching `pattern` in the first root that has any (sorted); [] if none."""
    for root in roots:
        found = sorted(root.glob(pattern))
        if found:
            return found
    return []
