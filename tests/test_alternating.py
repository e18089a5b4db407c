"""bench/studies/alternating.py: epochs of two tiers alternating in one process, checked first."""

import json

import pytest

from bench.report import alternating as alternating_report
from bench.studies import alternating


def _run(tmp_path, **kw):
    path = alternating.alternate(["numba-fused"], batch_sizes=(8, 64), runs=3, limit=200,
                                 out_path=tmp_path / "alternating.json", gap=0.0, **kw)
    return json.loads(path.read_text())


def test_alternating_epochs_record_medians_floor_and_ratio(tmp_path):
    doc = _run(tmp_path)
    rows = {(r["tier"], r["batch"]): r for r in doc["results"]}
    assert set(rows) == {(t, b) for t in ("numpy", "numba-fused") for b in (8, 64)}
    for (_, b), r in rows.items():
        assert len(r["runs_s"]) == 3 and r["median_s"] == sorted(r["runs_s"])[1]
        assert r["samples"] == 200 and r["floor_s"] > 0
        assert r["x_floor"] == pytest.approx(r["median_s"] / r["floor_s"])
        numpy_median = rows["numpy", b]["median_s"]
        assert r["numpy_over_this"] == pytest.approx(numpy_median / r["median_s"])
    assert doc["machine"]["sgemm_gflops"] > 0 and doc["gap_seconds"] == 0.0
    lines = alternating_report.section(tmp_path / "alternating.json")
    assert any("| 64 | 200 | numba-fused |" in line for line in lines)
    assert not list(tmp_path.glob(".*partial"))


def test_a_wrong_epoch_is_an_error_not_a_time(tmp_path, monkeypatch):
    """A tier whose epoch computes something else fails the loss check against numpy."""
    from implementations.models.numba_fused import NumbaFusedMLP

    real = NumbaFusedMLP.train_epoch
    monkeypatch.setattr(NumbaFusedMLP, "train_epoch",
                        lambda self, X, Y, b, lr: real(self, X, Y, b, 3 * lr))
    with pytest.raises(AssertionError,
                       match="numba-fused epoch at batch 8: mean loss of the first 500"):
        _run(tmp_path)
    assert not (tmp_path / "alternating.json").exists()


@pytest.mark.parametrize("tiers,runs,message", [
    (["no-such-tier"], 3, "unknown tier 'no-such-tier'"),
    (["torch-cuda"], 3, "tier 'torch-cuda' (is unavailable here|is a cuda tier)"),
    (["numba-fused"], 2, "runs must be a whole number >= 3, got 2"),
])
def test_bad_requests_are_refused_before_timing(tmp_path, tiers, runs, message):
    with pytest.raises(ValueError, match=message):
        alternating.alternate(tiers, batch_sizes=(64,), runs=runs, limit=100,
                              out_path=tmp_path / "a.json", gap=0.0)


def test_cli_refuses_fewer_than_three_runs():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "mnist_tiers.cli", "alternate", "--runs",
                           "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--runs: must be a whole number >= 3" in proc.stderr
    assert proc.stdout == ""  # refused before anything ran
