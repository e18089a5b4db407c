"""The benchmark suite's pytest plugin: options, markers, thread set-up and machine info.

Registered for every pytest run of this project (`-p bench.suite.plugin` in pyproject's addopts),
so its options work as written whatever paths are given: `pytest --benchmark-only
--threads 1` as well as `pytest bench --threads 1`. Problems with the options are usage
errors before anything is collected or timed.
"""

import warnings
from pathlib import Path

import pytest

from implementations import settings
from implementations.formats import get_format
from implementations.machine import describe
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


def _prepare_json_path(config) -> None:
    """Create --benchmark-json's folder now, so a long run never ends without its file."""
    path = config.getoption("benchmark_json", None)
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise pytest.UsageError(f"--benchmark-json={path} is a folder; give a file name, "
                                f"e.g. {path / 'results.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.writable"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise pytest.UsageError(f"--benchmark-json={path}: cannot write there ({exc}); "
                                f"choose a writable folder") from None


def pytest_configure(config):
    config.addinivalue_line("markers", "quick: part of the quick benchmark selection")

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
    _prepare_json_path(config)


def batch_sizes() -> list[int]:
    return SUITE["batches"]


def pytest_collection_modifyitems(config, items):
    bench_items = [i for i in items if "benchmark" in getattr(i, "fixturenames", ())]
    if not config.getoption("benchmark_only") and not config.getoption("benchmark_disable"):
        skip = pytest.mark.skip(reason="benchmarks run with `pytest --benchmark-only` "
                                       "(or `make bench`)")
        for item in bench_items:
            item.add_marker(skip)
        return
    if config.getoption("--quick"):
        keep = [i for i in items if i.get_closest_marker("quick") or i not in bench_items]
        deselected = [i for i in items if i not in keep]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = keep


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["mnist_tiers"] = describe()
