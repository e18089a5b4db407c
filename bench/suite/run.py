"""`make bench`: the full benchmark suite, saved as one JSON per machine.

`pytest --benchmark-only` over the suite (bench/suite/), plus pytest-benchmark's autosave
history for `pytest-benchmark compare` and the console columns we read (median, IQR).
Where the results go and how they are kept is the plugin's, the same for plain `pytest
--benchmark-only` (bench/suite/results.py): out/bench/<machine>/latest.json (quick.json
with --quick, partial.json for a selection, latest-h<H>.json / latest-<format>.json with
--hidden / --dtype), --reference: the committed bench/results/<machine>/ (what `make
reference` does), --benchmark-json=PATH: exactly PATH. Other arguments go to pytest (e.g.
--quick, --batch-sizes 64, --threads 1, -k EXPR).
"""

import sys
from pathlib import Path

import pytest

from implementations import paths
from implementations.fileio import ResultFileError, check_writable
from implementations.machine import machine_name

SUITE = Path(__file__).resolve().parent  # bench/suite: the benchmark modules


def main(argv=None) -> int:
    rest = list(sys.argv[1:] if argv is None else argv)
    history = paths.autosave_dir(machine_name())
    try:  # before anything is timed
        check_writable(history / "probe.json")
    except ResultFileError as exc:
        print(f"benchmark run refused: {exc}", file=sys.stderr)
        return 2
    code = pytest.main([str(SUITE), "--benchmark-only", "--benchmark-autosave",
                        f"--benchmark-storage=file://{history}",
                        "--benchmark-columns=min,median,iqr,mean,rounds",
                        "--benchmark-sort=min", "-q", *rest])
    print(f"history: {history}  (compare runs with: pytest-benchmark "
          f"--storage file://{history} compare)")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
