"""The batch x width sweep, its cost model, and the report sections built from it."""

import json

import numpy as np
import pytest

from bench.report import scaling as scaling_report
from bench.studies import sweep
from implementations.experiment import step_flops
from implementations.registry import TierError


def test_minimum_bytes_counts_weights_gradients_and_activations():
    d, h, k, b = 784, 128, 10, 64
    params = d * h + h + h * k + k
    assert sweep.minimum_bytes(b, h) == 4 * (2 * params + b * (d + 3 * h + 2 * k))


def _cells(t0, rate, widths=(32, 128), batches=(1, 16, 256, 4096)):
    return [{"batch": b, "hidden": h, "flops": step_flops(b, h=h)["train_step"],
             "median_s": t0 + step_flops(b, h=h)["train_step"] / rate}
            for h in widths for b in batches]


def test_cost_model_recovers_t0_and_rate_and_lists_misses():
    cells = _cells(50e-6, 100e9)
    m = sweep.fit_cost_model(cells)
    assert m["t0_us"] == pytest.approx(50, rel=1e-6)
    assert m["rate_gflops"] == pytest.approx(100, rel=1e-6)
    assert m["r2_log"] == pytest.approx(1.0) and m["misses"] == []
    cells[-1]["median_s"] *= 3  # a cache cliff
    assert [(x["batch"], x["hidden"]) for x in sweep.fit_cost_model(cells)["misses"]] == \
        [(4096, 128)]


def test_crossover_predicted_and_measured():
    slow_start = {"t0_us": 100.0, "rate_gflops": 200.0}  # BLAS-like
    fast_start = {"t0_us": 10.0, "rate_gflops": 50.0}  # compiled loops
    cells = {"a": _cells(100e-6, 200e9), "b": _cells(10e-6, 50e9)}
    (c,) = sweep.crossovers({"a": slow_start, "b": fast_start}, cells)
    f_star = 90e-6 / (1 / 50e9 - 1 / 200e9)
    assert c["predicted_batch"] == pytest.approx(f_star / step_flops(1)["train_step"])
    assert 1 < c["predicted_batch"] < 16 and c["measured_batch"] == 16  # b wins at 1 only


def test_a_small_sweep_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "MIN_SECONDS", 0.01)
    out = sweep.sweep(["numpy", "numba-fused", "loops"], out_path=tmp_path / "s.json",
                      batches=(1, 4, 16), widths=(5, 33), progress=False)
    doc = json.loads(out.read_text())
    assert not list(tmp_path.glob(".*.partial"))
    for tier in ("numpy", "numba-fused", "loops"):
        cells = doc["cells"][tier]
        assert len(cells) == 6 and all("median_s" in c for c in cells), cells
        assert all(c["minimum_bytes"] > 0 and c["p25_s"] <= c["p75_s"] for c in cells)
        assert doc["cost_models"][tier]["rate_gflops"] > 0
    assert doc["machine"]["sgemm_gflops"] > 0


def test_loops_cells_too_slow_say_why_and_wrong_cells_are_not_timed(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "SLOW_CELL_SECONDS", 0.0)
    real = sweep.oracle_step

    def wrong(params, x, y, act, lr):
        ref = real(params, x, y, act, lr)
        ref["W1"] = ref["W1"] + 1.0
        return ref

    monkeypatch.setattr(sweep, "oracle_step", wrong)
    doc = json.loads(sweep.sweep(["loops", "numpy"], out_path=tmp_path / "s.json",
                                 batches=(1,), widths=(5,), progress=False).read_text())
    assert "a step would take" in doc["cells"]["loops"][0]["skipped"]
    bad = doc["cells"]["numpy"][0]
    assert "does not match the oracle, not timed" in bad["error"] and "median_s" not in bad


def test_unknown_tier_is_refused():
    with pytest.raises(TierError, match="unknown tier 'nope'; known tiers: loops"):
        sweep.sweep(["nope"], progress=False)


def _sweep_doc():
    cells = {"numpy": _cells(60e-6, 150e9), "numba-fused": _cells(10e-6, 90e9)}
    for cs in cells.values():
        for c in cs:
            c.update(gflops=c["flops"] / c["median_s"] / 1e9, traced_bytes=1 << 20,
                     rss_growth_bytes=0, minimum_bytes=sweep.minimum_bytes(c["batch"],
                                                                           c["hidden"]))
    models = {t: sweep.fit_cost_model(cs) for t, cs in cells.items()}
    return {"grid": {"batches": [1, 16, 256, 4096], "hidden": [32, 128]}, "date": "x",
            "wall_seconds": 1.0, "cells": cells, "cost_models": models,
            "crossovers": sweep.crossovers(models, cells)}


def test_scaling_section_and_accuracy_vs_width(tmp_path):
    md = "\n".join(scaling_report.scaling_section(_sweep_doc(), tmp_path, "box"))
    for png in ("time-per-sample", "winner-map", "rates", "memory"):
        assert (tmp_path / f"{png}-box.png").stat().st_size > 5000
    assert "| numba-fused | 10 | 90 | 1.000 | - |" in md
    assert "numba-fused vs numpy" in md
    win = scaling_report.winners(_sweep_doc())
    assert win[1, 32][0] == "numba-fused" and win[4096, 128][0] == "numpy"
    trainings = [{"tier": "numba-fused", "hidden": h, "epochs": 10, "batch_size": 64,
                  "activation": "relu", "test_accuracy": [0.9, acc]}
                 for h, acc in ((32, 0.96), (128, 0.976), (300, 0.978), (800, 0.98))]
    text = "\n".join(scaling_report.accuracy_vs_width(trainings))
    assert "| 300 | 2.20 (97.80) | 4.7 | LeCun" in text and "| 800 | 2.00 (98.00) | 1.6 |" in text
    assert "| 1000 | - | 4.5 |" in text and "distorted" in text
    assert np.isfinite(win[16, 32][1])


def test_sweep_in_another_format(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "MIN_SECONDS", 0.01)
    doc = json.loads(sweep.sweep(["numpy"], out_path=tmp_path / "s.json", batches=(4,),
                                 widths=(5,), progress=False, dtype="float64").read_text())
    assert doc["dtype"] == "float64" and "median_s" in doc["cells"]["numpy"][0]
    with pytest.raises(ValueError, match="does not compute in bfloat16"):
        sweep.sweep(["numpy"], out_path=tmp_path / "t.json", progress=False, dtype="bfloat16")


def test_the_cells_the_top_tier_loses_are_listed_with_the_reason():
    from bench.report.scaling import cells_lost
    from kernels.numba_fused import panel_width

    narrow = panel_width(np.float32)
    cell = lambda b, h, s: {"batch": b, "hidden": h, "median_s": s}  # noqa: E731
    sweep = {"grid": {"batches": [64, 1024], "hidden": [narrow, 512]},
             "machine": {"threads": 2}, "dtype": None,
             "cells": {"numba-fused": [cell(64, narrow, 1.0), cell(1024, narrow, 3.0),
                                       cell(64, 512, 1.0), cell(1024, 512, 2.0)],
                       "numpy": [cell(64, narrow, 2.0), cell(1024, narrow, 2.5),
                                 cell(64, 512, 2.0), cell(1024, 512, 4.0)]}}
    lines = cells_lost(sweep)
    assert lines[0] == "numba-fused is the fastest in 3 of 4 cells."
    assert lines[1] == (f"batch 1024, H = {narrow}: numpy by 1.20x: H = {narrow} is one panel "
                        f"of {narrow} units, so numba-fused runs on 1 thread of 2 there")
