"""The one MNIST loader for every tier.

Reads the four IDX files (gzipped or not) from the vendored `data/mnist/`, from `--data-dir`
or from the environment variable MNIST_TIERS_DATA (a torchvision `MNIST/raw` folder works
too), verifies the md5 of each uncompressed file once (the verdict is cached), and returns
uint8 arrays. `normalize` is the single conversion to the network's float32 input.
"""

import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV_VAR = "MNIST_TIERS_DATA"
VENDORED_DIR = Path(__file__).resolve().parent.parent / "data" / "mnist"

# name -> (md5 of the uncompressed bytes, IDX magic, shape after the header)
FILES = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 0x803, (60000, 28, 28)),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 0x801, (60000,)),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 0x803, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 0x801, (10000,)),
}


class DataError(ValueError):
    """A data file is missing, corrupt or malformed; the message says how to fix it."""


@dataclass(frozen=True)
class Mnist:
    """uint8 images (N, 28, 28) and uint8 labels (N,) for the train and test splits."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _cache_path() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "mnist-tiers" / "md5-verdicts.json"


def _verdict_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _read_cache() -> dict:
    try:
        return json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict) -> None:
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=0))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs a re-hash next time


def find_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder to read: the argument, else $MNIST_TIERS_DATA, else the vendored copy.

    A torchvision root (with MNIST/raw inside) is followed down to its raw folder.
    """
    chosen = data_dir or os.environ.get(ENV_VAR) or VENDORED_DIR
    path = Path(chosen).expanduser()
    for sub in (Path("MNIST") / "raw", Path("raw")):
        if not _has_any(path) and _has_any(path / sub):
            return path / sub
    return path


def _has_any(folder: Path) -> bool:
    return any(_candidates(folder, name) for name in FILES)


def _candidates(folder: Path, name: str) -> list[Path]:
    return [p for p in (folder / f"{name}.gz", folder / name) if p.is_file()]


def _locate(folder: Path, name: str) -> Path:
    found = _candidates(folder, name)
    if not found:
        raise DataError(
            f"MNIST file {name}(.gz) not found in {folder}. Point --data-dir (or the "
            f"{ENV_VAR} environment variable) at a folder holding the four IDX files, gzipped "
            f"or not (a torchvision MNIST/raw folder works), or restore the vendored copy "
            f"with `git checkout -- data/mnist`."
        )
    return found[0]


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(
            f"cannot read {path}: {exc}. The file is damaged; replace it with an intact copy "
            f"(the vendored one: `git checkout -- data/mnist`)."
        ) from exc


def _parse_idx(raw: bytes, path: Path, magic: int, shape: tuple) -> np.ndarray:
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    got_magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if got_magic != magic:
        raise DataError(f"{path}: IDX magic {got_magic!r}, expected {magic:#x}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if dims != shape or len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{path}: IDX dimensions {dims}, expected {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_file(folder: Path, name: str) -> np.ndarray:
    """Read, md5-verify (verdict cached by path, size and mtime) and parse one IDX file."""
    md5, magic, shape = FILES[name]
    path = _locate(folder, name)
    raw = _read_bytes(path)
    cache = _read_cache()
    key = _verdict_key(path)
    if cache.get(key) != md5:
        got = hashlib.md5(raw).hexdigest()
        if got != md5:
            raise DataError(
                f"{path}: md5 of the uncompressed content is {got}, expected {md5}. The file "
                f"is corrupt or not the MNIST file; replace it (vendored copy: "
                f"`git checkout -- data/mnist`, or point --data-dir at an intact copy)."
            )
        cache[key] = md5
        _write_cache(cache)
    return _parse_idx(raw, path, magic, shape)


_LOADED: dict[Path, Mnist] = {}


def load_mnist(data_dir: str | os.PathLike | None = None) -> Mnist:
    """All four files as uint8 arrays; loaded once per folder and process."""
    folder = find_data_dir(data_dir)
    if folder not in _LOADED:
        arrays = [load_file(folder, name) for name in FILES]
        _LOADED[folder] = Mnist(*arrays)
    return _LOADED[folder]


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) or (N, 784) -> float32 (N, 784) in [0, 1]."""
    images = np.asarray(images)
    return (images.reshape(images.shape[0], -1).astype(np.float32)) / np.float32(255.0)
