"""The benchmark suite's pytest plugin: options, markers, thread set-up and machine info.

Registered for every pytest run of this project (`-p bench.suite.plugin` in pyproject's addopts),
so its options work as written whatever paths are given: `pytest --benchmark-only
--threads 1` as well as `pytest bench --threads 1`. Problems with the options are usage
errors before anything is collected or timed.
"""

import importlib.util
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest

from bench.suite import results
from implementations import paths, settings
from implementations.fileio import ResultFileError, check_writable
from implementations.formats import get_format
from implementations.machine import describe
from implementations.noise import NoiseGuard, busy_note
from implementations.provenance import stamp
from implementations.threads import set_threads

# the session's suite settings, parsed once in pytest_configure: batch sizes (--batch-sizes),
# network width (--hidden) and number format (--dtype; None: each tier's own)
SUITE = {"batches": list(settings.default("batch_sizes")), "hidden": settings.default("hidden"),
         "dtype": None}


def pytest_addoption(parser):
    g = parser.getgroup("mnist-tiers benchmarks")
    g.addoption("--quick", action="store_true",
                help="only the quick selection (train step at batch 64, the matmul shapes)")
    g.addoption("--batch-sizes", default=None, help=settings.help_text("batch_sizes"))
    g.addoption("--threads", default=None, help=settings.help_text("threads"))
    g.addoption("--hidden", default=None, help=settings.help_text("hidden"))
    g.addoption("--reference", action="store_true",
                help="save the results into the committed bench/results/<machine>/ (what "
                     "`make reference` does) instead of out/bench/<machine>/")
    g.addoption("--dtype", default=None,
                help="number format of the main suite's models (default: each tier's own, "
                     "float32; tiers without it are skipped with the reason)")


def parse_dtype(value) -> str | None:
    """The --dtype option: a known number format or None; ValueError naming them."""
    return None if value is None else get_format(value).name


def suite_hidden() -> int:
    return SUITE["hidden"]


def suite_format() -> str | None:
    return SUITE["dtype"]


# options of pytest-benchmark whose extra package is not one of ours: refused before
# anything is timed when the package is missing (it would fail only after the timings)
EXTRAS = (("benchmark_histogram", "pygal", "pytest-benchmark[histogram]"),
          ("benchmark_histogram", "pygaljs", "pytest-benchmark[histogram]"))


def _check_extras(config) -> None:
    for option, module, package in EXTRAS:
        if config.getoption(option, None) and importlib.util.find_spec(module) is None:
            flag = "--" + option.replace("_", "-")
            raise pytest.UsageError(f"{flag} needs the package {module!r}, which is not "
                                    f"installed: pip install '{package}' (or leave out "
                                    f"{flag}); nothing was timed")
    storage = str(config.getoption("benchmark_storage", "") or "")
    if storage.startswith("elasticsearch") and importlib.util.find_spec("elasticsearch") is None:
        raise pytest.UsageError("--benchmark-storage=elasticsearch... needs the package "
                                "'elasticsearch': pip install 'pytest-benchmark[elasticsearch]'"
                                "; nothing was timed")


# this session's record: the machine's state around the timings (noise.NoiseGuard) and the
# benchmarks that failed, both written into the JSON beside the results that ran
RUN = {"guard": None, "failures": [], "final": None, "raw": None, "started": 0.0,
       "progress": None}


def _timing(config) -> bool:
    return bool(config.getoption("benchmark_only", False)) and not config.getoption(
        "benchmark_disable", False)


def _redirect_json(config) -> None:
    """Send pytest-benchmark's JSON to a private temporary file and remember where the
    results belong (bench/suite/results.py); an unwritable destination is a usage error
    now, before anything is timed."""
    final = results.destination(config)
    try:
        check_writable(final)
    except ResultFileError as exc:
        raise pytest.UsageError(f"cannot save the results: {exc}") from None
    tmpdir = Path(tempfile.mkdtemp(prefix="mnist-tiers-bench-"))
    RUN.update(final=final, raw=tmpdir / "run.json", started=time.time())
    config.option.benchmark_json = RUN["raw"]


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads --benchmark-json
def pytest_configure(config):
    config.addinivalue_line("markers", "quick: part of the quick benchmark selection")
    _check_extras(config)
    if _timing(config) and not hasattr(config, "workerinput"):
        _redirect_json(config)

    try:
        SUITE["batches"] = settings.parse("batch_sizes", config.getoption("--batch-sizes"))
        threads = settings.parse("threads", config.getoption("--threads"))
        SUITE["dtype"] = parse_dtype(config.getoption("--dtype"))
        SUITE["hidden"] = settings.parse("hidden", config.getoption("--hidden"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            set_threads(threads)
    except settings.SettingError as exc:  # a person typed the flag
        raise pytest.UsageError(exc.for_flag()) from None
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    for w in caught:  # shown at once: pytest's warning summary comes after the timings
        config.issue_config_time_warning(w.message, stacklevel=2)


def batch_sizes() -> list[int]:
    return SUITE["batches"]


def pytest_ignore_collect(collection_path, config):
    """`pytest --benchmark-only` collects the benchmark suite only: the unit tests under
    tests/ are not even imported (no page of "Skipping non-benchmark" lines), unless named
    on the command line."""
    if not config.getoption("benchmark_only", False):
        return None
    named = [Path(a.split("::")[0]).resolve() for a in config.args]
    tests = paths.REPO / "tests"
    if collection_path == tests and not any(n == tests or tests in n.parents for n in named):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    bench_items = [i for i in items if "benchmark" in getattr(i, "fixturenames", ())]
    if not config.getoption("benchmark_only") and not config.getoption("benchmark_disable"):
        skip = pytest.mark.skip(reason="benchmarks run with `pytest --benchmark-only` "
                                       "(or `make bench`)")
        for item in bench_items:
            item.add_marker(skip)
        return
    keep = [i for i in bench_items if i.get_closest_marker("quick")] if config.getoption(
        "--quick") else bench_items
    deselected = [i for i in items if i not in keep]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep


def pytest_collection_finish(session):
    """The progress lines count what will really run (after -k, -m and --quick)."""
    if RUN["guard"] is not None:
        RUN["progress"] = Progress(session.items)


def _label(item) -> str:
    """The stretch of the suite a benchmark belongs to, as the suite runs them: its test and
    batch size ("pass batch 64", "epoch", "matmul 64x784x128"); the passes, tiers and
    kernels within one batch size run interleaved, so they are not told apart here."""
    params = item.callspec.params if hasattr(item, "callspec") else {}
    batch = params.get("batch") or params.get("fmt_batch") or params.get("ddp_batch")
    shape = params.get("shape")
    parts = [item.originalname.removeprefix("test_"), f"batch {batch}" if batch else None,
             "x".join(map(str, shape)) if shape else None]
    return " ".join(p for p in parts if p)


class Progress:
    """One line each time the suite moves to another group: where it is, how many of the
    benchmarks are done and an estimate of the time left (from the pace so far)."""

    def __init__(self, items):
        self.labels = {i.nodeid: _label(i) for i in items}
        self.order = {i.nodeid: n for n, i in enumerate(items)}
        self.total = len(items)
        self.groups = list(dict.fromkeys(self.labels.values()))
        self.last = None
        self.t0 = time.perf_counter()

    def line(self, nodeid: str) -> str | None:
        label = self.labels.get(nodeid)
        if label is None or label == self.last:
            return None
        self.last = label
        done = self.order[nodeid]
        elapsed = time.perf_counter() - self.t0
        left = (f"~{_duration(elapsed / done * (self.total - done))} left at the pace so far"
                if done >= 3 else "estimating the time left")
        return (f"[part {self.groups.index(label) + 1}/{len(self.groups)}] {label}: "
                f"{done}/{self.total} benchmarks done, {_duration(elapsed)} so far, {left}")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def pytest_runtest_logstart(nodeid, location):
    progress = RUN["progress"]
    line = progress.line(nodeid) if progress and RUN["guard"] is not None else None
    reporter = RUN.get("reporter")
    if line and reporter is not None:
        where = reporter.currentfspath
        reporter.ensure_newline()
        reporter.write_line(line, cyan=True)
        reporter.currentfspath = where  # the dots go on below, without the file's name again


def pytest_sessionstart(session):
    if _timing(session.config):
        RUN["guard"] = NoiseGuard("benchmark suite").begin()
        RUN["failures"] = []
        RUN["reporter"] = session.config.pluginmanager.get_plugin("terminalreporter")
        bench_session = getattr(session.config, "_benchmarksession", None)
        if bench_session is not None and RUN["raw"] is not None:  # its private file: unsaid
            info = bench_session.logger.info
            bench_session.logger.info = lambda text, **kw: (
                None if str(RUN["raw"]) in str(text) else info(text, **kw))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    """End the noise guard before pytest-benchmark writes its JSON (it writes in its own
    sessionfinish, inside this wrapper)."""
    if RUN["guard"] is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # said in the terminal summary instead
            RUN["guard"].finish()
    yield  # pytest-benchmark writes its JSON, then the terminal summary is printed
    if RUN["raw"] is not None:
        kept, lines = results.keep(RUN["raw"], RUN["final"], exitstatus, RUN["started"])
        shutil.rmtree(RUN["raw"].parent, ignore_errors=True)
        RUN["raw"] = None
        print("\n" + "\n".join(lines), file=sys.stdout if kept else sys.stderr, flush=True)


def pytest_runtest_logreport(report):
    """A failed benchmark (or its set-up) of a --benchmark-only session, kept for the JSON."""
    if report.failed and RUN["guard"] is not None:
        text = (report.longreprtext or "").strip().splitlines()
        RUN["failures"].append({"test": report.nodeid, "when": report.when,
                                "message": (text[-1] if text else "failed")[:500]})


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["mnist_tiers"] = describe()


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Every suite JSON says what ran: provenance (machine, code version), the machine's
    state around the timings, and the benchmarks that failed next to those that ran."""
    guard = RUN["guard"]
    output_json["provenance"] = stamp()
    output_json["machine_state"] = guard.finish() if guard is not None else None
    output_json["failures"] = list(RUN["failures"])


def pytest_terminal_summary(terminalreporter):
    guard = RUN["guard"]
    if guard is None or guard.state is None:
        return
    state = guard.state
    note = busy_note(state)
    others = state.get("others_cores")
    detail = f"other processes {others:.2f} cores" if others is not None else "no /proc"
    if note:
        terminalreporter.write_line(f"machine state: BUSY ({note}); the results are saved "
                                    f"but flagged busy: rerun on a quiet machine",
                                    yellow=True, bold=True)
    else:
        terminalreporter.write_line(f"machine state: quiet ({detail}, calibration "
                                    f"{state['calibration_ms'][0]:.2f} -> "
                                    f"{state['calibration_ms'][1]:.2f} ms)")
