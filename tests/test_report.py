"""The comparison report: tables, claim verdicts computed from data, and a browser check."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from bench.report import claims
from bench.report.build import build
from bench.report.inputs import load_run
from implementations.experiment import step_flops
from implementations.registry import TIERS

MACHINE = {"machine": "test-box", "cpu": "Test CPU", "threads": 2, "gpu": None,
           "versions": {"numpy": "x"}, "sgemm_gflops": 100.0, "copy_gbs": 10.0}


def bench_json(path, step_ms: dict[str, dict[int, float]], epoch_s: dict[tuple, float]):
    """A minimal pytest-benchmark JSON with mnist-tiers' extra_info."""
    benches = []
    for tier, by_batch in step_ms.items():
        for batch, ms in by_batch.items():
            s = ms / 1e3
            fl = step_flops(batch)["train_step"]
            benches.append({"group": f"train_step batch={batch}", "name": f"{tier}-{batch}",
                            "stats": {"mean": s, "median": s},
                            "extra_info": {"tier": tier, "device": "cpu", "batch": batch,
                                           "flops": fl, "gflops": fl / s / 1e9,
                                           "fraction_of_peak": fl / s / 1e11,
                                           "samples_per_second": batch / s, "correct": True}})
    for (tier, loader), s in epoch_s.items():
        benches.append({"group": "epoch batch=64", "name": f"{tier}-{loader}",
                        "stats": {"mean": s, "median": s},
                        "extra_info": {"tier": tier, "loader": loader, "device": "cpu",
                                       "batch": 64, "flops": 24_500_000_000,
                                       "gflops": 24.5 / s, "fraction_of_peak": 0.245 / s,
                                       "correct": True}})
    path.write_text(json.dumps({"machine_info": {"mnist_tiers": MACHINE},
                                "datetime": "2026-11-26T00:00:00", "benchmarks": benches}))
    return path


def training(tier, acc):
    return {"tier": tier, "activation": "relu", "batch_size": 64, "lr": 0.1, "limit": None,
            "test_accuracy": acc, "epoch_seconds": [1.0] * len(acc), "compile_seconds": 0.0}


STEPS = {"loops": {1: 10.0, 64: 800.0}, "numpy": {1: 0.4, 64: 0.6},
         "torch-cpu": {1: 0.5, 64: 1.5}}
EPOCHS = {("numpy", "resident"): 0.6, ("torch-cpu", "resident"): 1.0,
          ("torch-cpu", "dataloader"): 2.0}


def test_verdicts_follow_the_data(tmp_path):
    run = load_run(bench_json(tmp_path / "a.json", STEPS, EPOCHS))
    assert claims.pytorch_faster([run])["verdict"] == "fails"
    faster_torch = {**STEPS, "torch-cpu": {1: 0.1, 64: 0.2}}
    run2 = load_run(bench_json(tmp_path / "b.json", faster_torch, EPOCHS))
    assert claims.pytorch_faster([run2])["verdict"] == "holds"
    assert claims.dataloader_efficient([run])["verdict"] == "fails"
    cheap = {**EPOCHS, ("torch-cpu", "dataloader"): 1.05}
    assert claims.dataloader_efficient([load_run(bench_json(tmp_path / "c.json", STEPS,
                                                            cheap))])["verdict"] == "holds"
    slower = claims.scratch_slower([run])
    assert slower["verdict"] == "holds only in part"
    assert any(s.startswith("loops at batch 64") for s in slower["holds"])
    same = [training("numpy", [0.95, 0.971]), training("torch-cpu", [0.95, 0.9705])]
    better = [training("numpy", [0.93, 0.95]), training("torch-cpu", [0.96, 0.975])]
    assert claims.accuracy_claims(same)[0]["verdict"] == "fails"
    assert claims.accuracy_claims(better)[0]["verdict"] == "holds"
    assert claims.accuracy_claims(better)[1]["verdict"] == "holds"
    cpu_only = claims.scratch_cpu_only([run], TIERS.values())
    assert cpu_only["verdict"] == "untested" and "never ran" in cpu_only["notes"][0]
    gpu_rows = {**STEPS, "numba-cuda": {64: 0.1}}
    gpu_run = load_run(bench_json(tmp_path / "g.json", gpu_rows, EPOCHS))
    gpu_run.machine["gpu"] = "NVIDIA H200"
    ran = claims.scratch_cpu_only([gpu_run], TIERS.values())
    assert ran["verdict"] == "fails" and "numba-cuda ran our own kernels on NVIDIA H200" in \
        ran["fails"][0]


def test_report_files_and_tables(tmp_path):
    path = bench_json(tmp_path / "latest.json", STEPS, EPOCHS)
    train = tmp_path / "train-numpy.json"
    train.write_text("epoch 1 ...\n" + json.dumps(training("numpy", [0.95, 0.971])) + "\n")
    md = build([path], [train], tmp_path / "out")
    text = md.read_text()
    assert "**train_step batch=64** (test-box)" in text
    assert "| numpy | 0.6 | - | 106,667 |" in text  # median, IQR (none recorded), samples/s
    assert "time to 97% s" in text and "DataLoader epoch 2.00x" in text
    for png in ("step-times-test-box.png", "throughput-test-box.png", "roofline-test-box.png",
                "accuracy.png"):
        assert (tmp_path / "out" / png).stat().st_size > 5000
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "src=\"step" not in html


def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("headless Chromium is not installed (Debian package `chromium`; "
                    ".ci/run installs it)")
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"]


def test_report_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    exe = chromium()
    path = bench_json(tmp_path / "latest.json", STEPS, EPOCHS)
    build([path], [], tmp_path / "out")
    url = (tmp_path / "out" / "report.html").as_uri()
    dom = subprocess.run([*exe, f"--user-data-dir={tmp_path / 'p1'}",
                          "--virtual-time-budget=5000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-500:]
    assert 'data-images-ok="true"' in dom.stdout, "an image failed to load"
    n_images = (tmp_path / "out" / "report.html").read_text().count("<img ")
    assert n_images >= 3 and f'data-images="{n_images}"' in dom.stdout
    shot = tmp_path / "shot.png"
    proc = subprocess.run([*exe, f"--user-data-dir={tmp_path / 'p2'}", f"--screenshot={shot}",
                           "--window-size=1200,2400", url],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-500:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10, "the screenshot is blank"


def test_the_seeds_pytorch_claims_are_judged_on_pytorch_tiers_only():
    """The JAX tiers are frameworks too, but the seed wrote about PyTorch: its accuracy
    claims compare the torch tiers with the scratch tiers, never JAX."""
    runs = [training(t, [0.95, 0.97]) for t in ("jax-scan", "numpy")]
    verdicts = claims.accuracy_claims(runs)
    assert all(v["verdict"] == "untested" for v in verdicts)
    verdicts = claims.accuracy_claims(runs + [training("torch-cpu", [0.96, 0.975])])
    assert all("jax" not in item for v in verdicts for item in v["holds"] + v["fails"])
