"""Roofline ceilings: cache sizes from sysfs, cache-level copy bandwidths, and the plot."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.report import plots
from bench.report.inputs import RESULTS, load_run
from bench.report.plots import ceilings, roofline, step_bytes
from implementations.machine import _parse_size, cache_sizes, cpu_peaks

REFERENCE = RESULTS / "amd-epyc-2c" / "latest.json"


def fake_sysfs(root: Path, caches: list[tuple[int, str, str]]) -> Path:
    for i, (level, kind, size) in enumerate(caches):
        d = root / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    return root


def test_parse_size():
    assert _parse_size("48K\n") == 48 * 2**10
    assert _parse_size("32M") == 32 * 2**20
    assert _parse_size("1G") == 2**30
    assert _parse_size("512") == 512
    assert _parse_size("64KB") == 64 * 2**10


def test_cache_sizes_reads_a_fake_sysfs_tree(tmp_path):
    root = fake_sysfs(tmp_path / "cache", [(1, "Data", "48K"), (1, "Instruction", "64K"),
                                           (2, "Unified", "2048K"), (3, "Unified", "32768K")])
    assert cache_sizes(root) == {1: 48 * 2**10, 2: 2 * 2**20, 3: 32 * 2**20}


def test_cache_sizes_handles_absence(tmp_path):
    assert cache_sizes(tmp_path / "no-such-dir") == {}
    # A level with a missing or garbled file is skipped; the others are still read.
    root = fake_sysfs(tmp_path / "cache", [(1, "Data", "32K"), (2, "Unified", "1M"),
                                           (3, "Unified", "lots")])
    (root / "index1" / "size").unlink()
    assert cache_sizes(root) == {1: 32 * 2**10}


def test_cpu_peaks_cache_copies_are_faster_than_dram():
    peaks = cpu_peaks()
    assert peaks["sgemm_gflops"] > 0 and peaks["copy_gbs"] > 0
    sizes = cache_sizes()
    if 2 not in sizes:
        pytest.skip("sysfs reports no L2 here")
    assert peaks["l2_bytes"] == sizes[2]
    assert peaks["l2_copy_gbs"] > peaks["copy_gbs"]
    if 3 in sizes:
        assert peaks["l3_bytes"] == sizes[3]
        assert peaks["l3_copy_gbs"] > 0


@dataclass
class FakeRun:
    """The attributes roofline() reads from a bench.report.inputs.Run."""

    machine: dict
    rows: list[dict] = field(default_factory=list)
    name: str = "fake-box"


ROWS = [{"group": f"train_step batch={b}", "tier": "numpy", "batch": b,
         "flops": 6 * b * (784 * 128 + 128 * 10), "gflops": g}
        for b, g in ((1, 1.0), (64, 40.0), (1024, 60.0))]
OLD = {"machine": "fake-box", "sgemm_gflops": 150.0, "copy_gbs": 11.0}
NEW = {**OLD, "l2_copy_gbs": 90.0, "l2_bytes": 2**21, "l3_copy_gbs": 30.0,
       "l3_bytes": 2**25, "gpu_fp32_tflops": 50.0, "gpu_copy_gbs": 4000.0,
       "gpu_l2_copy_gbs": 9000.0}


@pytest.mark.parametrize("machine, labels", [
    (OLD, ["CPU DRAM"]),
    (NEW, ["CPU DRAM", "CPU L3", "CPU L2", "GPU HBM", "GPU L2"]),
    ({**OLD, "gpu_fp32_tflops": 50.0, "gpu_copy_gbs": 4000.0}, ["CPU DRAM", "GPU HBM"]),
])
def test_roofline_draws_every_ceiling_present(tmp_path, monkeypatch, machine, labels):
    assert [c[0] for c in ceilings(machine)] == labels
    drawn = []
    real_save = plots._save

    def save(fig, path):
        drawn.extend(line.get_label() for line in fig.axes[0].get_lines())
        return real_save(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    out = roofline(FakeRun(machine, ROWS), tmp_path / "roofline.png")
    assert out.stat().st_size > 0
    assert len(drawn) == len(labels)
    for label, text in zip(labels, drawn, strict=True):
        assert text.startswith(label) and "GB/s" in text
    assert any(f"{machine['copy_gbs']:.0f} GB/s" in t for t in drawn)


def test_roofline_plots_the_committed_reference_run(tmp_path):
    run = load_run(REFERENCE)
    assert {"l2_copy_gbs", "l3_copy_gbs", "copy_gbs"} <= set(run.machine)
    assert {"CPU L2", "CPU L3", "CPU DRAM"} <= {label for label, *_ in ceilings(run.machine)}
    assert roofline(run, tmp_path / "roofline.png").stat().st_size > 0


def test_numba_fused_batch1_sits_under_the_l2_roof():
    """The point that motivated the cache roofs: above the DRAM roof, under the L2 one."""
    run = load_run(REFERENCE)
    (row,) = [r for r in run.rows if r["group"] == "train_step batch=1"
              and r["tier"] == "numba-fused"]
    intensity = row["flops"] / step_bytes(row["batch"])
    peak = run.machine["sgemm_gflops"]
    assert row["gflops"] > min(peak, run.machine["copy_gbs"] * intensity)  # the fault
    l2 = cpu_peaks().get("l2_copy_gbs")
    if l2 is None:
        pytest.skip("sysfs reports no L2 here")
    assert row["gflops"] < min(peak, l2 * intensity)

