"""`make bench`: the full benchmark suite, saved as one JSON per machine.

Runs `pytest --benchmark-only` over bench/ with the JSON written to a temporary file beside
its destination and moved into place only if the run succeeded (no half-written result),
plus pytest-benchmark's autosave history for `pytest-benchmark compare`.

Destination: out/bench/<machine>/latest.json (quick.json with --quick, partial.json for a
selection: -k, -m or --batch-sizes, so a subset never replaces a full run; latest-h<H>.json or
latest-<format>.json for a full run with --hidden or --dtype; ignored by git),
--reference: the committed bench/results/<machine>/ instead (what `make reference` does),
--benchmark-json=PATH: exactly PATH. Other arguments go to pytest (e.g. --quick,
--batch-sizes 64, --threads 1, -k EXPR).
"""

import argparse
import contextlib
import json
import sys
from pathlib import Path

import pytest

from implementations import paths
from implementations.fileio import atomic_target
from implementations.machine import machine_name

SUITE = Path(__file__).resolve().parent  # bench/suite: the benchmark modules


class _RunFailed(Exception):
    """The suite failed or timed nothing: its JSON is not kept."""


def strip_raw_timings(path: Path) -> None:
    """Drop every round's raw time (stats.data): the statistics stay, the file goes from
    ~15 MB to ~100 KB, small enough to commit as a reference run."""
    doc = json.loads(path.read_text())
    for bench in doc["benchmarks"]:
        bench["stats"].pop("data", None)
    path.write_text(json.dumps(doc, indent=1))


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our own options (--reference, --benchmark-json) apart from pytest's."""
    p = argparse.ArgumentParser(prog="python -m bench.suite.run", add_help=False,
                                allow_abbrev=False)
    p.add_argument("--reference", action="store_true")
    p.add_argument("--benchmark-json", type=Path, default=None)
    args, rest = p.parse_known_args(argv)
    args.dtype, args.hidden = (_value(rest, "--dtype"), _value(rest, "--hidden"))
    return args, rest


def _value(rest: list[str], option: str) -> str | None:
    """The value given to a pytest option in `rest` (--opt=V or --opt V), else None."""
    for i, a in enumerate(rest):
        if a.split("=")[0] == option:
            return a.split("=", 1)[1] if "=" in a else (rest[i + 1] if i + 1 < len(rest)
                                                        else None)
    return None


def destination(args, rest: list[str]) -> Path:
    if args.benchmark_json is not None:
        return args.benchmark_json.expanduser().resolve()
    partial = any(a.split("=")[0] in ("-k", "-m", "--batch-sizes") or a.startswith("-k")
                  for a in rest)
    name = "quick.json" if "--quick" in rest else "partial.json" if partial else "latest.json"
    if name == "latest.json":  # a full run at another width or format: kept beside
        tags = ([f"h{args.hidden}"] if args.hidden not in (None, "128") else []) + (
            [args.dtype] if args.dtype else [])
        name = "-".join(["latest", *tags]) + ".json"
    return paths.bench_root(args.reference) / machine_name() / name


def main(argv=None) -> int:
    args, rest = parse(list(sys.argv[1:] if argv is None else argv))
    final = destination(args, rest)
    history = paths.autosave_dir(machine_name())
    code = 0
    with contextlib.suppress(_RunFailed), atomic_target(final) as tmp:
        code = pytest.main([str(SUITE), "--benchmark-only", f"--benchmark-json={tmp}",
                            "--benchmark-autosave", f"--benchmark-storage=file://{history}",
                            "--benchmark-columns=min,median,mean,stddev,rounds",
                            "--benchmark-sort=mean", "-q", *rest])
        if code != 0 or tmp.stat().st_size == 0:
            raise _RunFailed  # the temporary file goes; the previous result stays
        strip_raw_timings(tmp)
        print(f"\nresults: {final}")
        print(f"history: {history}  (compare runs with: pytest-benchmark "
              f"--storage file://{history} compare)")
        print("report:  mnist-tiers report")
        return 0
    why = (f"exit {int(code)}" if code != 0 else
           "no benchmark ran (were they all deselected or skipped?)")
    print(f"\nbenchmark run failed ({why}); {final} left untouched", file=sys.stderr)
    return int(code) or 1


if __name__ == "__main__":
    sys.exit(main())
