import os

import pytest

from implementations import data as mnist_data


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST: (x_train float32 (60000, 784), y_train, x_test, y_test)."""
    a = mnist_data.training_arrays()
    return a.x_train, a.y_train, a.x_test, a.y_test


@pytest.fixture(autouse=True)
def _no_xdist_in_children(monkeypatch):
    """Tests run under pytest-xdist (`make test`: -n 2) start pytest and the benchmark
    runner as child processes; xdist's worker variables would make pytest-benchmark in the
    child believe it is an xdist worker and refuse --benchmark-only."""
    for name in [n for n in os.environ if n.startswith("PYTEST_XDIST_")]:
        monkeypatch.delenv(name)
