"""The benchmark suite itself: wrong results are never timed; missing GPUs skip with reason."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.suite.common import verify
from implementations.registry import TIERS

REPO = Path(__file__).resolve().parent.parent


def test_wrong_result_fails_before_timing():
    def check():
        raise AssertionError("numpy logits: max |diff| 1.0e+00 exceeds rtol 0.0002")

    with pytest.raises(pytest.fail.Exception, match="does not match the reference, so it is "
                                                    "not timed: numpy logits"):
        verify("numpy", check)


def test_right_result_passes():
    verify("numpy", lambda: None)


def test_cuda_tier_benchmark_skips_with_reason():
    reason = TIERS["torch-cuda"].unavailable_reason
    if reason is None:
        pytest.skip("a CUDA GPU is present here")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "bench/suite/test_bench.py", "--benchmark-only", "-q",
         "-rs", "-p", "no:cacheprovider", "-k", "test_pass and torch-cuda and train_step and 64"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "SKIPPED" in proc.stdout and reason in proc.stdout


def _pytest_bench(*args, env=None):
    return subprocess.run([sys.executable, "-m", "pytest", "bench", "-q", "-p",
                           "no:cacheprovider", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)


def test_benchmark_disable_runs_the_suite_once_as_plain_tests():
    """`--benchmark-disable` is how pytest-benchmark users smoke-test a suite: every
    benchmark runs (and checks its result) once, nothing is timed, nothing fails."""
    proc = _pytest_bench("--benchmark-disable", "-k", "test_matmul and 64x784")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "4 passed" in proc.stdout and "AttributeError" not in proc.stdout


def test_benchmark_json_into_a_missing_folder(tmp_path):
    """The folder of --benchmark-json is created before anything is timed."""
    out = tmp_path / "missing" / "dir" / "out.json"
    proc = _pytest_bench("--benchmark-only", "-k", "test_matmul and openblas and 64x784",
                         f"--benchmark-json={out}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert json.loads(out.read_text())["benchmarks"][0]["extra_info"]["correct"] is True


def test_benchmark_json_that_cannot_be_written_fails_before_timing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = _pytest_bench("--benchmark-only", "-k", "test_matmul and openblas and 64x784",
                         f"--benchmark-json={blocker / 'out.json'}")
    assert proc.returncode == 4  # usage error: nothing collected, nothing timed
    assert "cannot write there" in proc.stderr and "benchmark 'matmul" not in proc.stdout


@pytest.mark.parametrize("sizes, words", [("0,64", "got '0,64'"), ("a", "got 'a'"),
                                          (",", "got ','")])
def test_bad_batch_sizes_are_a_usage_error(sizes, words):
    proc = _pytest_bench("--benchmark-only", "--batch-sizes", sizes, "-k", "test_pass")
    assert proc.returncode == 4 and words in proc.stderr, proc.stderr[-1000:]


def test_bench_run_honours_the_users_benchmark_json(tmp_path):
    """`python -m bench.suite.run ... --benchmark-json=mine.json`: the file is where the user
    asked, stripped like ours, and the run says it succeeded. Run from another folder:
    `cd /tmp && python -m bench.suite.run -k ...` once failed with "file or directory not
    found: bench"; the suite is found by its own path, not the working directory."""
    mine = tmp_path / "mine.json"
    env = {**os.environ, "MNIST_TIERS_OUT": str(tmp_path / "runs")}
    proc = subprocess.run([sys.executable, "-m", "bench.suite.run", "-k",
                           "test_matmul and openblas and 64x784", f"--benchmark-json={mine}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "failed" not in proc.stdout + proc.stderr
    assert f"results: {mine}" in proc.stdout
    doc = json.loads(mine.read_text())
    assert "data" not in doc["benchmarks"][0]["stats"]
    assert not list(tmp_path.glob(".*.partial"))


def test_bench_run_with_nothing_selected_says_why(tmp_path):
    env = {**os.environ, "MNIST_TIERS_OUT": str(tmp_path / "runs")}
    proc = subprocess.run([sys.executable, "-m", "bench.suite.run", "-k", "no-such-benchmark"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0
    assert "left untouched" in proc.stderr and "(exit 0)" not in proc.stderr


def test_suite_in_another_format_and_a_bad_one():
    ok = _pytest_bench("--benchmark-disable", "--dtype", "float64", "-rs", "-k",
                       "test_pass and train_step and 64 and (numpy or loops or torch-cuda)")
    assert ok.returncode == 0, ok.stdout[-2000:]
    assert "torch-cuda does not compute in float64" in ok.stdout or "no CUDA" in ok.stdout
    bad = _pytest_bench("--benchmark-only", "--dtype", "float8", "-k", "test_pass")
    assert bad.returncode == 4 and "unknown number format 'float8'" in bad.stderr


class _Options:
    """A pytest config as results.destination reads it."""

    def __init__(self, args=(), **options):
        self.args = list(args) or ["bench/suite"]
        self.options = options

    def getoption(self, name, default=None):
        return self.options.get(name.lstrip("-").replace("-", "_"), default)


def test_results_are_named_by_what_ran():
    from bench.suite.results import destination

    assert destination(_Options()).name == "latest.json"
    assert destination(_Options(dtype="float64", threads="1")).name == "latest-float64.json"
    assert destination(_Options(dtype="bfloat16", keyword="numpy")).name == "partial.json"
    assert destination(_Options(quick=True)).name == "quick.json"
    assert destination(_Options(["bench/suite/test_bench.py::test_pass"])).name == \
        "partial.json"
    assert destination(_Options(batch_sizes="64")).name == "partial.json"
    assert destination(_Options(hidden="300")).name == "latest-h300.json"
    assert destination(_Options(benchmark_json="/tmp/x.json")) == Path("/tmp/x.json")


def test_suite_at_another_width():
    ok = _pytest_bench("--benchmark-disable", "--hidden", "33", "-k",
                       "(test_pass and train_step and 64 and numba-fused) or "
                       "(test_kernel and numba and linear_backward and 64)")
    assert ok.returncode == 0 and "2 passed" in ok.stdout, ok.stdout[-2000:]
    bad = _pytest_bench("--benchmark-only", "--hidden", "0", "-k", "test_pass")
    assert bad.returncode == 4 and "--hidden must be a whole number >= 1" in bad.stderr



def test_plain_benchmark_only_saves_says_where_and_collects_only_benchmarks(tmp_path):
    """`pytest --benchmark-only` as a user types it: only the suite is collected (no page of
    "Skipping non-benchmark" lines), each group is announced with the time left, and the
    results land where the report looks, said at the end."""
    env = {**os.environ, "MNIST_TIERS_OUT": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--benchmark-only", "-p",
                           "no:cacheprovider", "-k", "test_matmul and openblas and 64x784"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (saved,) = tmp_path.glob("bench/*/partial.json")
    assert f"results: {saved}  (1 benchmarks)" in proc.stdout.splitlines()
    assert "Wrote benchmark data" not in proc.stdout  # no word of the private temporary
    assert "report:  mnist-tiers report" in proc.stdout
    assert "Skipping non-benchmark" not in proc.stdout and "tests/" not in proc.stdout
    assert "[part 1/1] matmul 64x784x128: 0/1 benchmarks done" in proc.stdout
    assert "machine state:" in proc.stdout
    doc = json.loads(saved.read_text())
    assert doc["provenance"]["machine"] and "data" not in doc["benchmarks"][0]["stats"]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith((".partial", ".probe"))]
