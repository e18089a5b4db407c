"""The benchmark suite itself: wrong results are never timed; missing GPUs skip with reason."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import verify
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
        [sys.executable, "-m", "pytest", "bench/test_bench.py", "--benchmark-only", "-q", "-rs",
         "-p", "no:cacheprovider", "-k", "test_pass and torch-cuda and train_step and 64"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "SKIPPED" in proc.stdout and reason in proc.stdout
