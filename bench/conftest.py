"""Options, markers and machine info of the benchmark suite (`pytest --benchmark-only`)."""

import pytest

DEFAULT_BATCHES = (1, 64, 1024)


def pytest_addoption(parser):
    g = parser.getgroup("mnist-tiers benchmarks")
    g.addoption("--quick", action="store_true",
                help="only the quick selection (train step at batch 64, the matmul shapes)")
    g.addoption("--batch-sizes", default=",".join(map(str, DEFAULT_BATCHES)),
                help="comma-separated batch sizes (default 1,64,1024)")
    g.addoption("--threads", type=int, default=None,
                help="threads for every CPU library (default: all cores)")


def pytest_configure(config):
    config.addinivalue_line("markers", "quick: part of the quick benchmark selection")
    from implementations.threads import set_threads

    set_threads(config.getoption("--threads"))


def batch_sizes(config):
    return [int(b) for b in config.getoption("--batch-sizes").split(",") if b.strip()]


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
    from implementations.machine import describe

    machine_info["mnist_tiers"] = describe()
