"""Precision as a dimension: every (tier, format) against the float64 oracle, with a
tolerance from the format's unit roundoff; bfloat16 really computes in bfloat16."""

import numpy as np
import pytest

from implementations.checks import assert_close, random_batch
from implementations.experiment import init_params
from implementations.formats import FORMATS, get_format, tolerance
from implementations.oracle import oracle_step
from implementations.registry import TIERS, build_model
from mnist_tiers.cli import main

LR = 0.1
CASES = [(t.name, f) for t in TIERS.values() for f in t.formats]


@pytest.mark.parametrize("tier, fmt", CASES, ids=[f"{t}-{f}" for t, f in CASES])
def test_one_train_step_in_every_format_matches_the_oracle(tier, fmt):
    if not TIERS[tier].available:
        pytest.skip(TIERS[tier].unavailable_reason)
    params = init_params(0)
    x, y = random_batch(13, 784, 10, seed=5)
    ref = oracle_step(params, x, y, "relu", LR)
    m = build_model(tier, params, "relu", dtype=fmt)
    X, Y = m.prepare(x, y)
    xb, yb = m.take(X, Y, np.arange(13))
    loss = m.forward(xb, yb)
    computed = m.compute_dtype()
    logits = m.logits()
    assert_close(f"{tier} {fmt} loss", float(loss), ref["loss"], **tolerance(fmt, ref["loss"]))
    assert_close(f"{tier} {fmt} logits", logits, ref["logits"], **tolerance(fmt, ref["logits"]))
    m.train_step(xb, yb, LR)
    for name, w in m.weights().items():
        # the update is what changed: the tolerance scales with its size, not the weight's
        step = w.astype(np.float64) - params[name]
        want = ref[name] - params[name]
        assert_close(f"{tier} {fmt} update of {name}", step, want, **tolerance(fmt, want))
    if fmt in ("bfloat16", "float16"):
        assert computed == fmt, f"{tier} asked for {fmt} but computed in {computed}"
        # and it shows: rounding far above float32's
        err = np.max(np.abs(logits - ref["logits"])) / np.max(np.abs(ref["logits"]))
        assert err > 10 * get_format("float32").rtol, f"{tier} {fmt} is as exact as float32"
    elif fmt == "float64" and tier != "loops":
        assert computed == "float64"
        assert_close(f"{tier} float64 logits, tight", logits, ref["logits"], rtol=1e-9,
                     atol=1e-10)


def test_tolerances_follow_the_unit_roundoff():
    assert get_format("float64").rtol < 1e-12 < get_format("float32").rtol < 1e-4
    assert get_format("bfloat16").rtol == pytest.approx(4 * 8 * 2**-8)
    assert tolerance("bfloat16", np.array([2.0, -4.0]))["atol"] == pytest.approx(128 * 2**-8)
    assert set(FORMATS) == {"float64", "float32", "bfloat16", "float16", "tf32"}


@pytest.mark.parametrize("tier, fmt, words", [
    ("loops", "float32", "tier 'loops' does not compute in float32; it supports float64 "
                         r"\(it computes with Python floats"),
    ("numpy", "bfloat16", "it supports float32, float64"),
    ("torch-cpu", "tf32", "it supports float32, float64, bfloat16"),
])
def test_unsupported_formats_are_refused(tier, fmt, words):
    with pytest.raises(ValueError, match=words):
        build_model(tier, init_params(0), dtype=fmt)


def test_cli_refuses_loops_float32(capsys):
    assert main(["train", "--tier", "loops", "--dtype", "float32", "--epochs", "1"]) == 2
    assert "supports float64" in capsys.readouterr().err


def test_hardware_lines_say_what_the_cpu_does():
    from bench.report.precision import hardware_lines

    amx = hardware_lines({"cpu_flags": ["avx2", "avx512_bf16", "amx_bf16"],
                          "torch_matmul_gflops": {"float32": 400.0, "bfloat16": 1600.0}})
    assert "reports avx512_bf16, amx_bf16" in amx[0] and "(4.00x)" in amx[1]
    avx2 = hardware_lines({"cpu_flags": ["avx2", "fma"]})
    assert "no bfloat16 arithmetic" in avx2[0] and "converted" in avx2[0]


def test_precision_section_from_a_run(tmp_path):
    import json

    from bench.report.inputs import load_run
    from bench.report.precision import section

    benches = []
    for tier, fmt, ms in (("numpy", "float32", 1.0), ("numpy", "float64", 2.0),
                          ("torch-cpu", "float32", 1.0), ("torch-cpu", "bfloat16", 0.5)):
        for what in ("train_step", "epoch"):
            for batch in (64, 1024):
                e = {"tier": tier, "dtype": fmt, "batch": batch, "device": "cpu"}
                if what == "epoch":
                    e.update(loss_deviation=1e-3, weight_deviation=2e-2)
                benches.append({"group": f"format {what} batch={batch}", "name": tier,
                                "stats": {"mean": ms, "median": ms}, "extra_info": e})
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"machine_info": {"mnist_tiers": {
        "machine": "box", "cpu": "Test CPU", "threads": 2, "sgemm_gflops": 100.0,
        "versions": {}}},
                                "datetime": "2026-12-01", "benchmarks": benches}))
    trainings = [{"tier": "torch-cpu", "dtype": "bfloat16", "test_accuracy": [0.97, 0.975]}]
    text = "\n".join(section(load_run(path), trainings))
    assert "| torch-cpu | bfloat16 | 500 | 2.00x | 2.00x | 2.00x | 2.00x | 1.0e-03 | " \
           "2.0e-02 | 97.50 |" in text
    assert "| numpy | float64 | 2e+03 | 0.50x |" in text
