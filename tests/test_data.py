"""The one loader: shapes, md5 verification, layouts, and errors that say how to fix them."""

import gzip
import shutil

import numpy as np
import pytest

from implementations import data
from implementations.data import FILES, VENDORED_DIR, DataError


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test gets its own md5-verdict cache, so a verdict from one never hides another."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data._LOADED.clear()
    yield
    data._LOADED.clear()


def test_vendored_shapes_and_counts():
    mn = data.load_mnist()
    assert mn.train_images.shape == (60000, 28, 28) and mn.train_images.dtype == np.uint8
    assert mn.test_images.shape == (10000, 28, 28)
    assert np.bincount(mn.train_labels).tolist()[:3] == [5923, 6742, 5958]
    assert np.bincount(mn.test_labels).tolist()[-1] == 1009


def test_normalize():
    x = data.normalize(np.array([[[0, 255], [51, 102]]], dtype=np.uint8))
    assert x.dtype == np.float32 and x.shape == (1, 4)
    np.testing.assert_allclose(x, [[0, 1, 0.2, 0.4]])


def test_verdict_is_cached(monkeypatch):
    data.load_file(VENDORED_DIR, "t10k-labels-idx1-ubyte")
    monkeypatch.setattr(data.hashlib, "md5", lambda *_: pytest.fail("re-hashed"))
    data.load_file(VENDORED_DIR, "t10k-labels-idx1-ubyte")


def copy_folder(dst, layout="gz"):
    dst.mkdir(parents=True)
    for name in FILES:
        src = VENDORED_DIR / f"{name}.gz"
        if layout == "gz":
            shutil.copy(src, dst / f"{name}.gz")
        else:
            with gzip.open(src) as f:
                (dst / name).write_bytes(f.read())
    return dst


@pytest.mark.parametrize("layout", ["gz", "plain"])
def test_data_dir_layouts(tmp_path, layout, monkeypatch):
    root = tmp_path / "tv"
    copy_folder(root / "MNIST" / "raw", layout)
    mn = data.load_mnist(root)  # torchvision root: followed to MNIST/raw
    assert mn.test_labels.shape == (10000,)
    data._LOADED.clear()
    monkeypatch.setenv(data.ENV_VAR, str(root / "MNIST" / "raw"))
    assert data.load_mnist().train_labels.shape == (60000,)


def test_corrupt_file_names_file(tmp_path):
    folder = copy_folder(tmp_path / "d", "plain")
    path = folder / "t10k-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: md5 .* expected 27ae3e4e"):
        data.load_file(folder, "t10k-labels-idx1-ubyte")


def test_missing_file_says_where_and_how(tmp_path):
    with pytest.raises(DataError, match=r"not found in .*empty.*--data-dir"):
        data.load_mnist(tmp_path / "empty")


def test_truncated_gzip(tmp_path):
    folder = copy_folder(tmp_path / "d", "gz")
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="damaged"):
        data.load_file(folder, "t10k-labels-idx1-ubyte")
