"""Where a benchmark run's results go, and keeping them: one place for `pytest
--benchmark-only`, `make bench` and `python -m bench.suite.run`.

Destination (`destination`): out/bench/<machine>/latest.json for a full run; quick.json with
--quick; partial.json for a selection (-k, -m, --batch-sizes, a test file or node), so a
subset never replaces a full run; latest-h<H>.json / latest-<format>.json for a full run
with --hidden / --dtype; --reference: the committed bench/results/<machine>/ instead;
--benchmark-json=PATH: exactly PATH.

Keeping (`keep`): pytest-benchmark writes its JSON into a private temporary folder; the
results are then moved into place atomically, without the raw rounds, under a lock on the
folder. A run where some benchmarks failed is saved with the failures recorded in it; one
cut short (Ctrl-C) is kept as <name>-interrupted.json beside the destination; when another
run wrote the destination after this one started, this one is kept beside it as
<name>-<time>.json. Nothing measured is lost, and no hidden temporary is left.
"""

import json
import time
from pathlib import Path

import pytest
from filelock import FileLock

from implementations import paths
from implementations.fileio import atomic_json
from implementations.machine import machine_name

LOCK_SECONDS = 60  # the lock is held for one file's write


def is_selection(config) -> bool:
    """Whether the run is a subset of the suite (its results must not replace a full run)."""
    if config.getoption("keyword", "") or config.getoption("markexpr", ""):
        return True
    if config.getoption("--batch-sizes", None):
        return True
    return any("::" in a or a.split("::")[0].endswith(".py") for a in config.args)


def destination(config) -> Path:
    given = config.getoption("benchmark_json", None)
    if given is not None:
        return Path(given).expanduser().resolve()
    hidden, dtype = config.getoption("--hidden", None), config.getoption("--dtype", None)
    if config.getoption("--quick", False):
        name = "quick.json"
    elif is_selection(config):
        name = "partial.json"
    else:
        tags = ([f"h{hidden}"] if hidden not in (None, "128") else []) + (
            [dtype] if dtype else [])
        name = "-".join(["latest", *tags]) + ".json"
    return paths.bench_root(config.getoption("--reference", False)) / machine_name() / name


def kept_path(final: Path, code: int, started: float) -> Path:
    """Where a run's results go (see the module docstring); called under the folder's lock."""
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return final.with_name(f"{final.stem}-interrupted.json")
    try:
        concurrent = final.stat().st_mtime > started
    except FileNotFoundError:
        concurrent = False
    if concurrent:
        return final.with_name(f"{final.stem}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    return final


def keep(raw: Path, final: Path, code: int, started: float) -> tuple[Path | None, list[str]]:
    """Move the run's JSON `raw` to its place; returns (the path kept or None, the lines to
    tell a person)."""
    try:
        doc = json.loads(raw.read_text())
    except (OSError, ValueError):
        doc = None
    if not doc or not doc.get("benchmarks"):
        why = (f"exit {int(code)}" if code != 0 else
               "no benchmark ran (were they all deselected or skipped?)")
        return None, [f"benchmark run saved nothing ({why}); {final} left untouched"]
    for bench in doc["benchmarks"]:
        bench["stats"].pop("data", None)  # raw rounds: ~15 MB -> ~100 KB, committable
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final.parent / ".results.lock"), timeout=LOCK_SECONDS):
        kept = kept_path(final, code, started)
        atomic_json(kept, doc)
    lines = [f"results: {kept}  ({len(doc['benchmarks'])} benchmarks)"]
    failures = doc.get("failures") or []
    if failures:
        lines.append(f"failed:  {len(failures)} (recorded in the file, under \"failures\"):")
        lines += [f"  {f['test']}: {f['message']}" for f in failures[:10]]
    if kept.name.endswith("-interrupted.json"):
        lines.append(f"         the run was cut short (exit {int(code)}): kept beside "
                     f"{final.name}, which is left untouched")
    elif kept != final:
        lines.append(f"         another run wrote {final.name} while this one ran: kept "
                     f"beside it")
    if kept.parent.parent == paths.bench_root(False):
        lines.append("report:  mnist-tiers report")
    return kept, lines
