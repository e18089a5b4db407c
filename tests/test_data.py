"""The one loader: shapes, md5 verification, layouts, and errors that say how to fix them."""

import bz2
import functools
import gzip
import io
import lzma
import os
import re
import shutil
import tarfile
import time
import zipfile

import numpy as np
import pytest

from implementations import data
from implementations.data import FILES, VENDORED_DIR, DataError

LABELS = "t10k-labels-idx1-ubyte"  # the smallest file: 10 008 bytes uncompressed
DOTTED = "t10k-labels.idx1-ubyte"
COMPRESS = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
            "raw": lambda b: b}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test gets its own md5-verdict cache, so a verdict from one never hides another."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data._LOADED.clear()
    yield
    data._LOADED.clear()


@functools.cache
def idx_bytes(name):
    """The intact uncompressed IDX bytes of a vendored file."""
    with gzip.open(VENDORED_DIR / f"{name}.gz") as f:
        return f.read()


def write(folder, filename, content):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / filename).write_bytes(content)
    return folder / filename


def corrupted(raw, at=100):
    raw = bytearray(raw)
    raw[at] ^= 0xFF
    return bytes(raw)


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
    monkeypatch.setattr(data, "_SETTLED_NS", 0)  # even in a checkout made a moment ago
    data.load_file(VENDORED_DIR, LABELS)
    monkeypatch.setattr(data.hashlib, "md5", lambda *_: pytest.fail("re-hashed"))
    data.load_file(VENDORED_DIR, LABELS)


# layout -> (file name for `name`, content from the uncompressed IDX bytes)
LAYOUTS = {
    "gz": (lambda n: f"{n}.gz", gzip.compress),
    "plain": (lambda n: n, COMPRESS["raw"]),
    "plain-saved-as-gz": (lambda n: f"{n}.gz", COMPRESS["raw"]),  # what browsers do
    # level 1: the layout is the point, not the ratio (level 9 took 15 s for 47 MB)
    "dotted-gz": (lambda n: f"{n.replace('-idx', '.idx')}.gz",
                  lambda raw: gzip.compress(raw, compresslevel=1)),
    "dotted-plain": (lambda n: n.replace("-idx", ".idx"), COMPRESS["raw"]),
}


def copy_folder(dst, layout="gz"):
    dst.mkdir(parents=True)
    filename, encode = LAYOUTS[layout]
    for name in FILES:
        if layout == "gz":
            shutil.copy(VENDORED_DIR / f"{name}.gz", dst / f"{name}.gz")
        else:
            (dst / filename(name)).write_bytes(encode(idx_bytes(name)))
    return dst


@pytest.mark.parametrize("layout", list(LAYOUTS))
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
    path = folder / LABELS
    path.write_bytes(corrupted(path.read_bytes()))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: md5 .* expected 27ae3e4e"):
        data.load_file(folder, LABELS)


def test_missing_file_says_where_and_how(tmp_path):
    with pytest.raises(DataError, match=r"not found in .*empty.*--data-dir"):
        data.load_mnist(tmp_path / "empty")


def test_missing_file_lists_accepted_names(tmp_path):
    with pytest.raises(DataError) as info:
        data.load_file(tmp_path, LABELS)
    for accepted in (f"{LABELS}.gz", LABELS, f"{DOTTED}.gz", DOTTED, f"{LABELS}.xz"):
        assert re.search(rf"[ (]{re.escape(accepted)}[,)]", str(info.value)), accepted


def test_truncated_gzip(tmp_path):
    folder = copy_folder(tmp_path / "d", "gz")
    path = folder / f"{LABELS}.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="damaged"):
        data.load_file(folder, LABELS)


# --- 1. the content, not the name, decides how a file is read -------------------------


@pytest.mark.parametrize("filename", [f"{LABELS}.gz", LABELS, f"{LABELS}.bz2", f"{LABELS}.xz",
                                      f"{DOTTED}.gz", DOTTED])
@pytest.mark.parametrize("encoding", list(COMPRESS))
def test_content_not_name_decides_compression(tmp_path, filename, encoding):
    """Raw IDX saved as .gz, gzip without .gz, bz2 or xz under any accepted name: all load."""
    write(tmp_path, filename, COMPRESS[encoding](idx_bytes(LABELS)))
    labels = data.load_file(tmp_path, LABELS)
    assert labels.shape == (10000,) and labels.tobytes() == idx_bytes(LABELS)[8:]


@pytest.mark.parametrize("layers", [("gzip", "gzip"), ("xz", "gzip"), ("gzip", "bz2", "xz")])
def test_nested_compression_is_peeled(tmp_path, layers):
    content = idx_bytes(LABELS)
    for encoding in layers:
        content = COMPRESS[encoding](content)
    write(tmp_path, f"{LABELS}.gz", content)
    assert data.load_file(tmp_path, LABELS).tobytes() == idx_bytes(LABELS)[8:]


def test_too_many_compression_layers(tmp_path):
    content = idx_bytes(LABELS)
    for _ in range(data._MAX_LAYERS + 1):
        content = gzip.compress(content)
    path = write(tmp_path, f"{LABELS}.gz", content)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))} is still gzip-compressed"):
        data.load_file(tmp_path, LABELS)


def _zip(raw):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(LABELS, raw)
    return buf.getvalue()


def _tar(raw):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo(LABELS)
        info.size = len(raw)
        t.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


REFUSED = {  # kind -> (content from the IDX bytes, words the message must hold)
    "zip": (_zip, r"holds a zip archive, not the IDX file .*Extract it \(`unzip "),
    "tar": (_tar, r"holds a tar archive, not .*Extract it \(`tar xf "),
    "tar.gz": (lambda raw: gzip.compress(_tar(raw)),
               r"holds a tar archive \(inside gzip compression\).*Extract it"),
    "gzipped zip": (lambda raw: gzip.compress(_zip(raw)),
                    r"holds a zip archive \(inside gzip compression\)"),
    "7z": (lambda raw: b"7z\xbc\xaf\x27\x1c\x00\x04" + raw, r"holds a 7z archive.*`7z x "),
    "rar": (lambda raw: b"Rar!\x1a\x07\x01\x00" + raw, r"holds a RAR archive.*Extract it"),
    "zstd": (lambda raw: b"\x28\xb5\x2f\xfd" + raw,
             r"holds zstd-compressed data, .*cannot read.*Decompress it \(`zstd -d "),
}


@pytest.mark.parametrize("filename", [f"{LABELS}.gz", LABELS])
@pytest.mark.parametrize("kind", list(REFUSED))
def test_archive_is_refused_with_extract_hint(tmp_path, kind, filename):
    encode, words = REFUSED[kind]
    path = write(tmp_path, filename, encode(idx_bytes(LABELS)))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))} {words}") as info:
        data.load_file(tmp_path, LABELS)
    assert f"put the resulting {LABELS} (gzipped or not) in {tmp_path}, or point --data-dir" \
        in str(info.value)


def _flip_middle(content):
    return corrupted(content, at=len(content) // 2)


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
@pytest.mark.parametrize("encoding", ["gzip", "bz2", "xz"])
def test_damaged_compressed_file(tmp_path, encoding, damage):
    content = COMPRESS[encoding](idx_bytes(LABELS))
    content = content[: len(content) // 2] if damage == "truncated" else _flip_middle(content)
    path = write(tmp_path, LABELS, content)  # no suffix: the bytes say it is compressed
    with pytest.raises(DataError, match=rf"cannot read {re.escape(str(path))}: .*"
                                        rf"{encoding}-compressed but damaged"):
        data.load_file(tmp_path, LABELS)


def test_error_page_saved_as_gz(tmp_path):
    path = write(tmp_path, f"{LABELS}.gz", b"<!DOCTYPE html><html>404 Not Found</html>")
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}: not the IDX file expected: "
                                        r".*b'<!DOCTYPE html>.*0x00000801"):
        data.load_file(tmp_path, LABELS)


@pytest.mark.parametrize("change, words", [(lambda b: b[:-1], "10007 bytes"),
                                           (lambda b: b + b"\0", "more than 10008 bytes")])
def test_truncated_or_padded_raw_idx(tmp_path, change, words):
    write(tmp_path, LABELS, change(idx_bytes(LABELS)))
    with pytest.raises(DataError, match=rf"content is {words}, expected 10008 .*truncated"):
        data.load_file(tmp_path, LABELS)


# --- 2. the dotted names, and which of two candidates wins ------------------------------


def test_accepted_names_in_order_of_preference():
    assert data.accepted_names(LABELS) == [
        f"{LABELS}.gz", LABELS, f"{LABELS}.bz2", f"{LABELS}.xz",
        f"{DOTTED}.gz", DOTTED, f"{DOTTED}.bz2", f"{DOTTED}.xz",
    ]
    assert data.accepted_names("train-images-idx3-ubyte")[4] == "train-images.idx3-ubyte.gz"


@pytest.mark.parametrize("first, second", [(LABELS, DOTTED), (f"{LABELS}.gz", LABELS),
                                           (f"{DOTTED}.gz", DOTTED), (LABELS, f"{DOTTED}.gz")])
def test_preferred_candidate_is_read(tmp_path, first, second):
    write(tmp_path, first, idx_bytes(LABELS))
    write(tmp_path, second, corrupted(idx_bytes(LABELS)))
    assert data.load_file(tmp_path, LABELS).tobytes() == idx_bytes(LABELS)[8:]


def test_failing_preferred_candidate_names_the_others(tmp_path):
    write(tmp_path, LABELS, corrupted(idx_bytes(LABELS)))
    write(tmp_path, f"{DOTTED}.gz", gzip.compress(idx_bytes(LABELS)))
    with pytest.raises(DataError, match=rf"{LABELS}: md5 .*Also present but not read.*"
                                        rf"{re.escape(DOTTED)}\.gz; remove or replace {LABELS}"):
        data.load_file(tmp_path, LABELS)


# --- 3. the md5-verdict cache never trusts a changed file --------------------------------


def _cached_keys(path):
    return [k for k in data._read_cache() if k.startswith(f"{path.resolve()}|")]


@pytest.mark.parametrize("how", ["rewritten in place", "replaced by another file"])
def test_same_size_rewrite_with_restored_mtime_is_detected(tmp_path, monkeypatch, how):
    monkeypatch.setattr(data, "_SETTLED_NS", 50_000_000)
    path = write(tmp_path, LABELS, idx_bytes(LABELS))
    time.sleep(0.1)  # settled: its verdict is cached
    data.load_file(tmp_path, LABELS)
    assert len(_cached_keys(path)) == 1
    before = path.stat()
    if how == "rewritten in place":
        path.write_bytes(corrupted(idx_bytes(LABELS)))
    else:
        write(tmp_path, "other", corrupted(idx_bytes(LABELS))).replace(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p / touch -r do
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(DataError, match=f"{LABELS}: md5 .* expected 27ae3e4e"):
        data.load_file(tmp_path, LABELS)


def test_fresh_file_verdict_is_not_cached(tmp_path):
    """A write within one timestamp tick of the check cannot change ctime: never trusted."""
    path = write(tmp_path, LABELS, idx_bytes(LABELS))
    data.load_file(tmp_path, LABELS)
    assert _cached_keys(path) == []
    before = path.stat()
    path.write_bytes(corrupted(idx_bytes(LABELS)))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(DataError, match=f"{LABELS}: md5"):
        data.load_file(tmp_path, LABELS)


def test_changed_expectation_never_matches(monkeypatch):
    monkeypatch.setattr(data, "_SETTLED_NS", 0)  # nothing rewrites the vendored file
    data.load_file(VENDORED_DIR, LABELS)
    path = VENDORED_DIR / f"{LABELS}.gz"
    assert len(_cached_keys(path)) == 1
    other = "0" * 32
    st = path.stat()
    assert data._verdict_key(path, st, other) != data._verdict_key(path, st, FILES[LABELS][0])
    monkeypatch.setitem(FILES, LABELS, (other, *FILES[LABELS][1:]))
    with pytest.raises(DataError, match=f"expected {other}"):
        data.load_file(VENDORED_DIR, LABELS)


def test_key_holds_inode_and_ctime():
    path = VENDORED_DIR / f"{LABELS}.gz"
    st = path.stat()
    key = data._verdict_key(path, st, "m" * 32)
    for part in (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, "m" * 32):
        assert f"|{part}" in key


def test_stale_verdicts_for_a_path_are_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_SETTLED_NS", 50_000_000)
    path = write(tmp_path, LABELS, idx_bytes(LABELS))
    time.sleep(0.1)
    data.load_file(tmp_path, LABELS)
    first = _cached_keys(path)
    path.write_bytes(idx_bytes(LABELS))  # same content, new ctime: a new verdict
    time.sleep(0.1)
    data.load_file(tmp_path, LABELS)
    assert len(_cached_keys(path)) == 1 and _cached_keys(path) != first


@pytest.mark.parametrize("where", ["XDG_CACHE_HOME", "HOME"])
def test_unwritable_cache_still_loads(tmp_path, monkeypatch, where):
    monkeypatch.setattr(data, "_SETTLED_NS", 0)  # so every load tries to write the cache
    blocker = write(tmp_path, "not-a-folder", b"")  # mkdir under it fails, even for root
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv(where, str(blocker))
    for _ in range(2):  # nothing cached: hashed again, still fine
        assert data.load_file(VENDORED_DIR, LABELS).shape == (10000,)
    assert not list(tmp_path.glob("**/*.tmp"))


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"a string"'])
def test_unreadable_cache_is_ignored(text):
    cache = data._cache_path()
    cache.parent.mkdir(parents=True)
    cache.write_text(text)
    assert data.load_file(VENDORED_DIR, LABELS).shape == (10000,)
    assert isinstance(data._read_cache(), dict)
