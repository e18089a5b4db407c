"""Profiles: the phase accounting, every tier's phases, a clear error without scalene."""

import itertools

import pytest

from implementations.phases import PhaseClock
from implementations.registry import TIERS
from profiles import breakdown, report_index, scalene_run

AVAILABLE = [t.name for t in TIERS.values() if t.available]


class FakeTime:
    """A clock that advances 1 ms per read: totals are exact and deterministic."""

    def __init__(self):
        self.t = itertools.count()

    def __call__(self):
        return next(self.t) * 1e-3


def test_phase_clock_accounts_exactly():
    clock = PhaseClock(now=FakeTime())
    for _ in range(3):
        with clock("forward/linear1"):
            pass
        with clock("update"):
            pass
    assert clock.order == ["forward/linear1", "update"]
    assert clock.seconds["forward/linear1"] == pytest.approx(3e-3)
    assert clock.seconds["update"] == pytest.approx(3e-3)


@pytest.mark.parametrize("tier", AVAILABLE)
def test_every_tier_yields_phases_that_add_up(tier):
    # a tier that runs in worker processes reports their measured phases, so its clock
    # must be real; every other tier gets the exact fake one
    clock = PhaseClock() if TIERS[tier].processes else PhaseClock(now=FakeTime())
    slow = not TIERS[tier].fast  # loops: ~1.5 s a step, nothing to warm
    r = breakdown.measure(tier, steps=1 if slow else 2, warmup=0 if slow else 1, clock=clock)
    assert r["phases_ms"], f"{tier} reported no phases"
    assert sum(r["phases_ms"].values()) + r["other_ms"] == pytest.approx(r["step_ms"])
    assert r["other_ms"] >= 0
    assert r["peak_rss_mb"] > 0
    expected = {"loops": "backward/linear1", "numpy": "forward/softmax_ce",
                "numba": "update", "numba-fused": "fused_step", "torch-cpu": "optimizer",
                "torch-ddp": "allreduce", "jax": "fused_step", "jax-scan": "fused_step"}
    if tier in expected:
        assert expected[tier] in r["phases_ms"]


def test_breakdown_table_and_chart(tmp_path):
    results = {"numpy": {"step_ms": 1.0, "phases_ms": {"forward/linear1": 0.5, "update": 0.25},
                         "other_ms": 0.25, "peak_rss_mb": 300.0, "traced_peak_mb": 1.5},
               "loops": {"step_ms": 800.0, "phases_ms": {"backward/linear1": 500.0},
                         "other_ms": 300.0, "peak_rss_mb": 200.0, "traced_peak_mb": 2.0}}
    info = {"machine": "test", "cpu": "cpu", "threads": 2, "gpu": None, "date": "2026-01-01",
            "versions": {"numpy": "x"}}
    index = report_index.write(tmp_path, results, info)
    text = index.read_text()
    assert "data:image/png;base64," in text and "forward/linear1 0.5 ms (50%)" in text
    assert "<th>forward ms</th>" in text and "0.5 (50%)" in text  # the phases by category
    assert (tmp_path / "breakdown.png").stat().st_size > 5000


def test_missing_scalene_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(scalene_run.shutil, "which", lambda _: None)
    monkeypatch.setattr(scalene_run.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(scalene_run.ScaleneMissing, match="pip install .scalene>=2.3."):
        scalene_run.profile("numpy", tmp_path)


def test_numba_fused_breakdown_comes_from_its_instrumented_build():
    r = breakdown.measure("numba-fused", steps=4, warmup=1)
    assert r["method"] == "instrumented build"
    assert list(r["phases_ms"])[:2] == ["layer-1 forward + activation", "partial logits"]
    assert all(v >= 0 for v in r["phases_ms"].values()) and r["handoff_us"] > 0
    assert isinstance(r["phases_agree"], bool)
    assert sum(r["phases_ms"].values()) + r["other_ms"] == pytest.approx(r["step_ms"])


def test_two_profile_runs_at_once_lose_nothing(tmp_path):
    """Two `mnist-tiers profile` runs into one folder at the same time (numpy, numba): both
    said "profiles written", and breakdown.json once lacked one of them."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "MNIST_TIERS_OUT": str(tmp_path)}
    runs = [subprocess.Popen([sys.executable, "-m", "mnist_tiers.cli", "profile", "--tier", t,
                              "--no-scalene", "--steps", "20"], cwd=repo, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for t in ("numpy", "numba")]
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-2000:]
        assert "profiles written" in out
    (folder,) = (tmp_path / "profiles").iterdir()
    tiers = json.loads((folder / "breakdown.json").read_text())["tiers"]
    assert {"numpy", "numba"} <= set(tiers), sorted(tiers)
    table = (folder / "breakdown.md").read_text()
    assert "| numpy |" in table and "| numba |" in table, table
    assert not list(folder.glob(".*partial"))


def test_a_damaged_breakdown_json_is_named(tmp_path):
    from implementations.fileio import ResultFileError

    (tmp_path / "breakdown.json").write_text('{"machine": {}, "tiers": {"numpy": ')
    with pytest.raises(ResultFileError, match=r"breakdown.json: not valid JSON.*rerun "
                                              r"`mnist-tiers profile`"):
        report_index.load_breakdowns(tmp_path)
