"""The one MNIST loader for every tier.

Where: the folder given as `--data-dir`, else the environment variable MNIST_TIERS_DATA,
else the vendored `data/mnist/`. A torchvision root (with `MNIST/raw` inside) is followed
down to its raw folder.

Names: each of the four files is looked for under these names, and the first one present
wins (so the canonical name beats the dotted one, and `.gz` beats the bare name):
`train-images-idx3-ubyte.gz`, `train-images-idx3-ubyte`, `train-images-idx3-ubyte.bz2`,
`train-images-idx3-ubyte.xz`, then the same four with the dotted name that 7-zip and some
mirrors write, `train-images.idx3-ubyte` (likewise train-labels.idx1-ubyte,
t10k-images.idx3-ubyte, t10k-labels.idx1-ubyte). `accepted_names` lists them.

Content: a name only finds a file; how it is read is decided by its first bytes, never by
its suffix. gzip (1f 8b), bz2 ("BZh") and xz (fd 37 7a 58 5a 00) are decompressed, layer
by layer; anything else is read as raw IDX. So an uncompressed file a browser saved as
`.gz`, and a gzipped file without `.gz`, both load. Archives (zip, tar, 7z, RAR) and
compressors the standard library lacks (zstd, Unix compress) are refused with a DataError
saying to extract or decompress the file first.

Checks: the IDX header (magic, dimensions, length) and the md5 of the uncompressed bytes.
The md5 verdict is cached in $XDG_CACHE_HOME/mnist-tiers (default ~/.cache/mnist-tiers),
keyed by the file's resolved path, size, mtime, inode, device, ctime and the md5 expected:
ctime changes on every write and cannot be set back (`cp -p`, `touch -r` and `os.utime`
only restore the mtime), and a verdict is stored only for a file unchanged for 2 s
(_SETTLED_NS), so a write within one timestamp tick cannot hide. A cache that cannot be
read or written (read-only home) only costs a re-hash.

Returns: `Mnist`, uint8 images (N, 28, 28) and uint8 labels (N,), N = 60000 for train and
10000 for test. `normalize` is the single conversion to the network's float32 input.

Errors: every problem with the data is a DataError (a ValueError) whose message names the
file, says what was expected and how to fix it: missing (with the names accepted),
unreadable, damaged compressed data, an archive or unsupported compression, a file that is
not the IDX file expected, or an md5 mismatch.
"""

import bz2
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import time
import zlib
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

# Suffixes tried after each stem, in order of preference. They only find the file: the
# content decides how it is read.
SUFFIXES = (".gz", "", ".bz2", ".xz")

# Leading bytes of the compressions the standard library reads -> (name, opener).
_COMPRESSIONS = (
    (b"\x1f\x8b", "gzip", lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
    (b"BZh", "bz2", bz2.BZ2File),
    (b"\xfd7zXZ\x00", "xz", lzma.LZMAFile),
)
# Leading bytes of what is refused -> (what it is, how to fix it; FILE is the path).
_REFUSED = (
    (b"PK\x03\x04", "a zip archive", "extract it (`unzip FILE`)"),
    (b"PK\x05\x06", "a zip archive", "extract it (`unzip FILE`)"),
    (b"PK\x07\x08", "a zip archive", "extract it (`unzip FILE`)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive", "extract it (`7z x FILE`)"),
    (b"Rar!\x1a\x07", "a RAR archive", "extract it (`unrar x FILE`)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data, which Python's standard library cannot read",
     "decompress it (`zstd -d FILE`)"),
    (b"\x1f\x9d", "Unix-compress (.Z) data, which Python's standard library cannot read",
     "decompress it (`uncompress FILE`)"),
)
_TAR = ("a tar archive", "extract it (`tar xf FILE`)")  # "ustar" at offset 257
_MAX_LAYERS = 3  # compression layers peeled before giving up
_SETTLED_NS = 2_000_000_000  # a verdict is cached only for a file unchanged this long
_VENDORED_FIX = "the vendored copy: `git checkout -- data/mnist`"


class DataError(ValueError):
    """A data file is missing, corrupt or malformed; the message says how to fix it."""


@dataclass(frozen=True)
class Mnist:
    """uint8 images (N, 28, 28) and uint8 labels (N,) for the train and test splits."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


# --- the md5-verdict cache -----------------------------------------------------------


def _cache_path() -> Path | None:
    """The cache file, or None where no absolute cache folder can be named."""
    root = os.environ.get("XDG_CACHE_HOME")
    if not root:
        try:
            root = Path.home() / ".cache"
        except RuntimeError:  # no home directory at all
            return None
    root = Path(root)
    return root / "mnist-tiers" / "md5-verdicts.json" if root.is_absolute() else None


def _path_prefix(path: Path) -> str:
    return f"{path.resolve()}|"


def _verdict_key(path: Path, st: os.stat_result, md5: str) -> str:
    """What a verdict holds for: this path, this very file and content, this expectation."""
    return (f"{_path_prefix(path)}{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_dev}|"
            f"{st.st_ctime_ns}|{md5}")


def _settled(st: os.stat_result) -> bool:
    """Unchanged for _SETTLED_NS: a later write is sure to give a new ctime."""
    return time.time_ns() - st.st_ctime_ns >= _SETTLED_NS


def _read_cache() -> dict:
    path = _cache_path()
    if path is None:
        return {}
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(cache: dict) -> None:
    path = _cache_path()
    if path is None:
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(cache, indent=0))
        tmp.replace(path)
    except OSError:  # a read-only home only costs a re-hash next time
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _remember(cache: dict, path: Path, key: str, md5: str) -> None:
    """Store one verdict, dropping the stale ones for the same path."""
    prefix = _path_prefix(path)
    kept = {k: v for k, v in cache.items() if not k.startswith(prefix)}
    kept[key] = md5
    _write_cache(kept)


# --- finding the files ---------------------------------------------------------------


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


def accepted_names(name: str) -> list[str]:
    """The file names tried for `name` (a FILES key), most preferred first.

    The canonical stem (train-images-idx3-ubyte) before the dotted one 7-zip and some mirrors
    write (train-images.idx3-ubyte); each with the SUFFIXES in order (.gz, none, .bz2, .xz).
    """
    stem, _, kind = name.rpartition("-idx")
    return [f"{s}{suffix}" for s in (name, f"{stem}.idx{kind}") for suffix in SUFFIXES]


def _has_any(folder: Path) -> bool:
    return any(_candidates(folder, name) for name in FILES)


def _candidates(folder: Path, name: str) -> list[Path]:
    """The files present for `name`, in the order of accepted_names."""
    return [p for p in (folder / n for n in accepted_names(name)) if p.is_file()]


def _missing(folder: Path, name: str) -> DataError:
    where = f"{folder}" if folder.is_dir() else f"{folder} (no such folder)"
    return DataError(
        f"MNIST file {name} not found in {where} (looked for "
        f"{', '.join(accepted_names(name))}). Point --data-dir (or the {ENV_VAR} environment "
        f"variable) at a folder holding the four IDX files, gzipped, bz2- or xz-compressed or "
        f"not (a torchvision MNIST/raw folder works), or restore {_VENDORED_FIX}."
    )


# --- reading the bytes ---------------------------------------------------------------


def _read_file(path: Path) -> tuple[bytes, os.stat_result]:
    """The file's bytes and the stat of the very file read (taken before reading)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            return f.read(), st
    except OSError as exc:
        raise DataError(
            f"cannot read {path}: {exc}. Make it a readable file, or point --data-dir at an "
            f"intact copy ({_VENDORED_FIX})."
        ) from exc


def _compression(data: bytes):
    """(name, opener) of the compression `data` starts with, or None."""
    return next(((n, o) for magic, n, o in _COMPRESSIONS if data.startswith(magic)), None)


def _refuse_archive(data: bytes, path: Path, name: str, layers: list[str]) -> None:
    """A DataError if `data` is an archive or a compression the standard library lacks."""
    found = next(((w, h) for magic, w, h in _REFUSED if data.startswith(magic)), None)
    if found is None and data[257:262] == b"ustar":
        found = _TAR
    if found is None:
        return
    what, how = found
    how = how.replace("FILE", str(path))
    inside = f" (inside {' inside '.join(reversed(layers))} compression)" if layers else ""
    raise DataError(
        f"{path} holds {what}{inside}, not the IDX file {name}. "
        f"{how[0].upper()}{how[1:]} and put the resulting {name} "
        f"(gzipped or not) in {path.parent}, or point --data-dir at the folder holding it."
    )


def _unpack(data: bytes, path: Path, name: str, limit: int) -> bytes:
    """The IDX bytes in `data`: compressions peeled by their magic numbers, archives refused.

    At most `limit` + 1 bytes come out of each layer, so a wrong file cannot flood memory.
    """
    layers: list[str] = []
    while True:
        _refuse_archive(data, path, name, layers)
        found = _compression(data)
        if found is None:
            return data
        if len(layers) == _MAX_LAYERS:
            raise DataError(
                f"{path} is still {found[0]}-compressed after {len(layers)} layers "
                f"({', '.join(layers)}); expected the IDX file {name} under at most "
                f"{_MAX_LAYERS}. Replace it with an intact copy ({_VENDORED_FIX})."
            )
        kind, opener = found
        layers.append(kind)
        try:
            with opener(io.BytesIO(data)) as f:
                data = f.read(limit + 1)
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
            raise DataError(
                f"cannot read {path}: {exc}. The file is {kind}-compressed but damaged "
                f"(truncated or corrupt); replace it with an intact copy ({_VENDORED_FIX})."
            ) from exc


def _idx_size(magic: int, shape: tuple) -> int:
    return 4 + 4 * (magic & 0xFF) + int(np.prod(shape))


def _parse_idx(raw: bytes, path: Path, magic: int, shape: tuple) -> np.ndarray:
    """Check the IDX header and length, and view the data as uint8 `shape`."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    size = _idx_size(magic, shape)
    fix = f"replace it with an intact copy ({_VENDORED_FIX})"
    if raw[:4] != magic.to_bytes(4, "big"):
        raise DataError(
            f"{path}: not the IDX file expected: its (uncompressed) content starts with "
            f"{raw[:16]!r}, expected the IDX magic {magic:#010x}. It is neither IDX nor "
            f"gzip, bz2 or xz data (an error page saved by a browser?); {fix}."
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if dims != shape:
        raise DataError(f"{path}: IDX dimensions {dims}, expected {shape}; {fix}.")
    if len(raw) != size:
        got = f"more than {size}" if len(raw) > size else f"{len(raw)}"
        raise DataError(
            f"{path}: uncompressed content is {got} bytes, expected {size} for IDX "
            f"dimensions {shape}; the file is truncated or padded; {fix}."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _check_md5(raw: bytes, path: Path, st: os.stat_result, md5: str) -> None:
    """Raise unless `raw` has the md5 expected; a settled file's verdict is cached."""
    cache = _read_cache()
    key = _verdict_key(path, st, md5)
    if cache.get(key) == md5:
        return
    got = hashlib.md5(raw).hexdigest()
    if got != md5:
        raise DataError(
            f"{path}: md5 of the uncompressed content is {got}, expected {md5}. The file "
            f"is corrupt or not the MNIST file; replace it ({_VENDORED_FIX}, or point "
            f"--data-dir at an intact copy)."
        )
    if _settled(st):
        _remember(cache, path, key, md5)


def _load_path(path: Path, name: str) -> np.ndarray:
    md5, magic, shape = FILES[name]
    data, st = _read_file(path)
    raw = _unpack(data, path, name, _idx_size(magic, shape))
    array = _parse_idx(raw, path, magic, shape)
    _check_md5(raw, path, st, md5)
    return array


def load_file(folder: Path, name: str) -> np.ndarray:
    """Find (see accepted_names), read, parse and md5-verify one IDX file (verdict cached).

    `name` is a FILES key; the first accepted name present is read, and if it fails the
    error also names the other candidates present.
    """
    found = _candidates(folder, name)
    if not found:
        raise _missing(folder, name)
    try:
        return _load_path(found[0], name)
    except DataError as exc:
        if len(found) == 1:
            raise
        others = ", ".join(p.name for p in found[1:])
        raise DataError(
            f"{exc} (Also present but not read, as {found[0].name} comes first in the "
            f"accepted order: {others}; remove or replace {found[0].name}.)"
        ) from exc


_LOADED: dict[Path, Mnist] = {}


def load_mnist(data_dir: str | os.PathLike | None = None) -> Mnist:
    """All four files as uint8 arrays (see Mnist); loaded once per folder and process."""
    folder = find_data_dir(data_dir)
    if folder not in _LOADED:
        arrays = [load_file(folder, name) for name in FILES]
        _LOADED[folder] = Mnist(*arrays)
    return _LOADED[folder]


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) or (N, 784) -> float32 (N, 784) in [0, 1]."""
    images = np.asarray(images)
    return (images.reshape(images.shape[0], -1).astype(np.float32)) / np.float32(255.0)


@dataclass(frozen=True)
class Arrays:
    """MNIST ready for the network: x_train (N, 784) float32 in [0, 1], y_train (N,) int64
    labels 0..9, x_test (10000, 784), y_test (10000,); N = 60000 or the limit asked for."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def training_arrays(data_dir: str | os.PathLike | None = None,
                    limit: int | None = None) -> Arrays:
    """The one way every tier, study and profile gets MNIST as arrays: load_mnist (checked)
    then normalize; `limit` keeps the first `limit` training samples."""
    mn = load_mnist(data_dir)
    x, y = normalize(mn.train_images), mn.train_labels.astype(np.int64)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return Arrays(x, y, normalize(mn.test_images), mn.test_labels.astype(np.int64))
