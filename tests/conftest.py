import pytest

from implementations import data as mnist_data


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST: (x_train float32 (60000, 784), y_train, x_test, y_test)."""
    a = mnist_data.training_arrays()
    return a.x_train, a.y_train, a.x_test, a.y_test
