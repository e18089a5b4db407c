import numpy as np
import pytest

from implementations import data as mnist_data


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST: (x_train float32 (60000, 784), y_train, x_test, y_test)."""
    mn = mnist_data.load_mnist()
    return (mnist_data.normalize(mn.train_images), mn.train_labels.astype(np.int64),
            mnist_data.normalize(mn.test_images), mn.test_labels.astype(np.int64))
