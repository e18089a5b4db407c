"""Recorded thread counts are the ones that ran; requests that make no sense are refused."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from implementations import threads
from mnist_tiers.cli import main

REPO = Path(__file__).resolve().parent.parent
CORES = threads.available_cores()


@pytest.fixture
def restore_threads():
    yield
    threads.set_threads(None)


def test_set_threads_reaches_every_library(restore_threads):
    """Every pool that can be resized runs 1; XLA's (if a JAX tier already started it in
    this process) keeps the count it started with, and says so."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert threads.set_threads(1) == 1
    counts = threads.thread_counts()
    assert any(k.startswith("openblas:") for k in counts), counts
    assert {"numba", "torch"} <= set(counts)
    assert {c for lib, c in counts.items() if lib != "xla"} == {1}, counts
    assert threads.current_threads() == 1
    if counts.get("xla", 1) != 1:
        assert any("'xla'" in str(w.message) for w in caught)


def test_more_threads_than_cores_warns_and_runs_the_cores(restore_threads):
    with pytest.warns(threads.ThreadsWarning, match=f"more threads than the {CORES} cores"):
        assert threads.set_threads(CORES + 14) == CORES
    assert set(threads.thread_counts().values()) == {CORES}


@pytest.mark.parametrize("bad", [0, -3, 2.5, "4", True])
def test_nonsense_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="threads must be a whole number >= 1"):
        threads.check_threads(bad)


def _bench(args, tmp_path, *paths):
    out = tmp_path / "bench.json"
    env = {**os.environ, "MNIST_TIERS_OUT": str(tmp_path / "runs")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *paths, "--benchmark-only", "-q",
         "-p", "no:cacheprovider", "-k", "test_matmul and openblas and 64x784",
         f"--benchmark-json={out}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    return proc, out


@pytest.mark.parametrize("paths", [("bench",), ()], ids=["pytest bench", "plain pytest"])
def test_benchmark_json_records_the_threads_that_ran(tmp_path, paths):
    """`pytest [bench] --threads 1 --benchmark-only ...`: OpenBLAS really runs 1 thread
    (the limit is applied after NumPy's BLAS is loaded) and the JSON says what ran."""
    proc, out = _bench(["--threads", "1"], tmp_path, *paths)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    info = doc["machine_info"]["mnist_tiers"]
    assert info["threads"] == 1
    assert any(k.startswith("openblas:") for k in info["threads_by_library"])
    assert set(info["threads_by_library"].values()) == {1}, info["threads_by_library"]
    assert [b["extra_info"]["threads"] for b in doc["benchmarks"]] == [1]


@pytest.mark.parametrize("value, words", [("0", "--threads must be a whole number >= 1, got '0'"),
                                          ("x", "--threads must be a whole number >= 1, got 'x'")])
def test_benchmark_threads_nonsense_is_a_usage_error(tmp_path, value, words):
    proc, out = _bench(["--threads", value], tmp_path, "bench")
    assert proc.returncode == 4, proc.stdout[-1000:]  # pytest's usage-error exit code
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_train_more_threads_than_cores(tmp_path):
    """`train --threads 16` on fewer cores: a warning, the cores run, the JSON says so."""
    proc = subprocess.run(
        [sys.executable, "-m", "mnist_tiers.cli", "train", "--tier", "numpy", "--limit",
         "1024", "--epochs", "1", "--threads", str(CORES + 14), "--json", "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"mnist-tiers: warning: threads={CORES + 14} asks for more threads" in proc.stderr
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["threads"] == CORES
    assert set(doc["threads_by_library"].values()) == {CORES}


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_train_nonsense_threads_is_refused(capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--tier", "numpy", "--threads", value])
    assert exc.value.code == 2
    assert "argument --threads" in capsys.readouterr().err


def test_the_headline_count_is_the_tiers_own_library():
    """NUMBA_NUM_THREADS=1 caps Numba's pool at 1: `train --tier numba --threads 2` ran on
    one thread, and the JSON's `threads` (the headline) says 1, not the BLAS pools' 2."""
    if CORES < 2:
        pytest.skip("needs 2 cores to ask for 2 threads")
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mnist_tiers.cli", "train", "--tier", "numba", "--limit",
         "512", "--epochs", "1", "--threads", "2", "--json", "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["threads_by_library"]["numba"] == 1 and doc["threads"] == 1
