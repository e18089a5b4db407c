"""`make bench`: the full benchmark suite, saved as bench/results/<machine>/latest.json.

Runs `pytest --benchmark-only` over bench/ with the JSON written to a temporary file and
moved into place only if the run succeeded (no half-written result), plus pytest-benchmark's
autosave history under bench/results/<machine>/autosave/ for `pytest-benchmark compare`.
Extra arguments are passed to pytest (e.g. --quick, --batch-sizes 64, --threads 1).
"""

import json
import os
import sys
from pathlib import Path

import pytest

from implementations.machine import machine_name

RESULTS = Path(__file__).resolve().parent / "results"


def strip_raw_timings(path: Path) -> None:
    """Drop every round's raw time (stats.data): the statistics stay, the file goes from
    ~15 MB to ~100 KB, small enough to commit as a reference run."""
    doc = json.loads(path.read_text())
    for bench in doc["benchmarks"]:
        bench["stats"].pop("data", None)
    path.write_text(json.dumps(doc, indent=1))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    folder = RESULTS / machine_name()
    folder.mkdir(parents=True, exist_ok=True)
    name = "quick.json" if "--quick" in argv else "latest.json"
    final = folder / name
    tmp = folder / f".{name}.partial"
    args = ["bench", "--benchmark-only", f"--benchmark-json={tmp}",
            "--benchmark-autosave", f"--benchmark-storage=file://{folder / 'autosave'}",
            "--benchmark-columns=min,median,mean,stddev,rounds",
            "--benchmark-sort=mean", "-q", *argv]
    code = pytest.main(args)
    if code == 0 and tmp.exists():
        strip_raw_timings(tmp)
        os.replace(tmp, final)
        print(f"\nresults: {final}")
        print(f"history: {folder / 'autosave'}  (compare runs with: pytest-benchmark "
              f"--storage file://{folder / 'autosave'} compare)")
        print("report:  mnist-tiers report")
    else:
        tmp.unlink(missing_ok=True)
        print(f"\nbenchmark run failed (exit {code}); {final} left untouched", file=sys.stderr)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
