"""No cache serves stale content and none is required: the Numba compile cache."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kernels import _jit

REPO = Path(__file__).resolve().parent.parent


def test_key_covers_every_kernel_file_and_codegen_setting(tmp_path, monkeypatch):
    copy = tmp_path / "kernels"
    shutil.copytree(REPO / "kernels", copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = _jit.cache_key(copy)
    assert _jit.cache_key(copy) == before  # stable
    (copy / "numba_cpu.py").write_text((copy / "numba_cpu.py").read_text() + "\n# edit\n")
    edited = _jit.cache_key(copy)
    assert edited != before
    monkeypatch.setenv("NUMBA_OPT", "0")
    assert _jit.cache_key(copy) != edited


def test_user_cache_dir_is_keyed_too(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert _jit.cache_dir() == tmp_path / _jit.cache_key()


def test_unwritable_folder_is_reported(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert "not writable" in _jit.usable(blocker / "cache")
    assert _jit.usable(tmp_path / "fine") is None


def _fused_forward_z1(pkg: Path, cache: Path) -> str:
    """z1[0, 0] of the fused forward, computed in a fresh process from the kernels in pkg."""
    code = ("import numpy as np; from kernels import numba_fused as nf; "
            "x = np.ones((3, 5), np.float32); W1 = np.ones((5, 4), np.float32); "
            "W1p = nf.pack_w1(W1, np.float32); W2p = nf.pad_w2(np.ones((4, 2)), np.float32); "
            "b1 = np.zeros(4, np.float32); b2 = np.zeros(2, np.float32); "
            "y = np.zeros(3, np.int64); z1 = np.empty((1, 3, W1p.shape[2]), np.float32); "
            "a1 = np.empty_like(z1); z2 = np.empty((3, 2), np.float32); "
            "dz2 = np.empty_like(z2); "
            "nf.forward_serial(x, y, W1p, b1, W2p, b2, nf.RELU, z1, a1, z2, dz2, 1); "
            "print(z1[0, 0, 0])")
    env = {**os.environ, "PYTHONPATH": str(pkg), "NUMBA_CACHE_DIR": str(cache)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300, cwd=pkg)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_editing_an_inlined_kernel_recompiles_its_callers(tmp_path):
    """numba_fused inlines intrinsics.gemm_microkernel: Numba's own index (keyed by
    numba_fused.py alone) would reload the old code after the microkernel changed; ours must
    not."""
    pkg = tmp_path / "pkg"
    shutil.copytree(REPO / "kernels", pkg / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "numba-cache"
    assert _fused_forward_z1(pkg, cache) == "5.0"  # a row of 5 ones dotted with 5 ones
    src = pkg / "kernels" / "intrinsics.py"
    text = src.read_text()
    old = "val = builder.fmul(alpha, t)"  # the store of a tile that does not accumulate
    assert old in text
    src.write_text(text.replace(old, "val = builder.fmul(builder.fadd(alpha, alpha), t)"))
    assert _fused_forward_z1(pkg, cache) == "10.0"
    assert not list((pkg / "kernels").glob("__pycache__/*.nbi"))  # never the in-tree cache


@pytest.mark.parametrize("command", [["tiers"], ["train", "--tier", "numba", "--limit", "256",
                                                 "--epochs", "1", "--no-progress"]],
                         ids=["tiers", "train"])
def test_no_writable_cache_still_runs(tmp_path, command):
    """An unwritable HOME (a file stands in for it: root may write anywhere): the Numba
    tiers run without a compile cache, with one warning, and `tiers` says so."""
    home = tmp_path / "not-a-folder"
    home.write_text("")
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_CACHE_HOME", "NUMBA_CACHE_DIR")}
    env["HOME"] = str(home)
    in_tree = set((REPO / "kernels").glob("__pycache__/*.nb[ic]"))
    proc = subprocess.run([sys.executable, "-m", "mnist_tiers.cli", *command], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("no compile cache") == 1, proc.stderr
    assert "cannot cache function" not in proc.stderr
    if command == ["tiers"]:
        assert "available (no compile cache" in proc.stdout
    else:
        assert "epoch   1" in proc.stdout
    assert set((REPO / "kernels").glob("__pycache__/*.nb[ic]")) == in_tree


def _small_kernel_run(cache: Path) -> subprocess.CompletedProcess:
    """A fresh process that compiles (or loads) one cached kernel and runs it."""
    code = ("import warnings; warnings.simplefilter('always'); import numpy as np; "
            "from kernels import numba_cpu as nc; a = np.ones((4, 3), np.float32); "
            "print(float(nc.matmul(a, np.ones((3, 2), np.float32))[0, 0]))")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300, cwd=REPO)


@pytest.mark.parametrize("damage", ["truncated data file", "empty index"])
def test_a_damaged_cache_entry_heals_with_one_warning(damage, tmp_path):
    first = _small_kernel_run(tmp_path)
    assert first.returncode == 0 and first.stdout.strip() == "3.0", first.stderr[-2000:]
    folder = tmp_path / _jit.cache_key()
    if damage == "empty index":
        victims = sorted(folder.rglob("*.nbi"))
        victims[0].write_bytes(b"")
    else:
        victims = sorted(folder.rglob("*.nbc"))
        victims[0].write_bytes(victims[0].read_bytes()[:100])
    assert victims
    healed = _small_kernel_run(tmp_path)
    assert healed.returncode == 0 and healed.stdout.strip() == "3.0", healed.stderr[-2000:]
    assert "Traceback" not in healed.stderr
    warnings_ = [ln for ln in healed.stderr.splitlines() if "CacheWarning" in ln]
    assert len(warnings_) == 1 and str(folder) in warnings_[0] and "damaged" in warnings_[0]
    assert all(_jit._whole(p) for p in folder.rglob("*.nb[ci]"))  # rewritten whole
    again = _small_kernel_run(tmp_path)
    assert again.returncode == 0 and "CacheWarning" not in again.stderr


def test_whole_tells_a_cut_pickle_from_a_complete_one(tmp_path):
    import pickle

    good = tmp_path / "k.1.nbc"
    good.write_bytes(pickle.dumps((b"x" * 1000, {"a": 1})))
    cut = tmp_path / "k.2.nbc"
    cut.write_bytes(good.read_bytes()[:-5])
    index = tmp_path / "k.nbi"
    index.write_bytes(pickle.dumps("0.68") + pickle.dumps(("stamp", {})))
    assert _jit._whole(good) and _jit._whole(index) and not _jit._whole(cut)
    index.write_bytes(pickle.dumps("0.68"))  # the version only: the rest was cut
    assert not _jit._whole(index)
