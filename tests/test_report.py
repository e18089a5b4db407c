"""The comparison report: tables, claim verdicts computed from data, and a browser check."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.report import claims
from bench.report.build import build
from bench.report.inputs import load_run
from implementations.experiment import step_flops
from implementations.registry import TIERS

REPO = Path(__file__).resolve().parent.parent
MACHINE = {"machine": "test-box", "cpu": "Test CPU", "threads": 2, "gpu": None,
           "versions": {"numpy": "x"}, "sgemm_gflops": 100.0, "copy_gbs": 10.0}


def bench_json(path, step_ms: dict[str, dict[int, float]], epoch_s: dict[tuple, float],
               machine=None, extra=None):
    """A minimal pytest-benchmark JSON with mnist-tiers' extra_info (`machine` replaces the
    machine_info, `extra` adds top-level keys: provenance, machine_state, failures)."""
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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine_info": {"mnist_tiers": machine or MACHINE},
                                "datetime": "2026-11-26T00:00:00", "benchmarks": benches,
                                **(extra or {})}))
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


# -- one statistic, a first screen that answers, sources, busy runs, links ------------------

BUSY = {"quiet": False, "reasons": ["other processes used 0.99 cores during the run"],
        "others_cores": 0.99, "steal_fraction": 0.0, "calibration_ms": [1.0, 1.1],
        "load_avg": [1.0, 1.2], "seconds": 60.0}
QUIET = {**BUSY, "quiet": True, "reasons": [], "others_cores": 0.01}
PROVENANCE = {"machine": "box-a", "cpu": "Test CPU", "gpu": None, "recorded":
              "2026-12-07T08:00:00+00:00",
              "code": {"commit": "abcdef0123456789abcdef0123456789abcdef01", "dirty": False,
                       "package": "0.1.0"}}


def _two_machines(tmp_path):
    """box-a: a quiet run; box-b: a busy one, whose noisy numpy has a huge mean."""
    a = bench_json(tmp_path / "box-a" / "latest.json", STEPS, EPOCHS,
                   machine={**MACHINE, "machine": "box-a"},
                   extra={"provenance": PROVENANCE, "machine_state": QUIET, "failures": []})
    b = bench_json(tmp_path / "box-b" / "latest.json", STEPS, EPOCHS,
                   machine={**MACHINE, "machine": "box-b"},
                   extra={"provenance": {**PROVENANCE, "machine": "box-b"},
                          "machine_state": BUSY})
    return a, b


def _write(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_every_compared_figure_is_the_median(tmp_path):
    """A noisy tier (a few slow rounds: mean 5x its median) is ranked, rated and compared by
    its median everywhere: tables, ratios, % of peak, the summary and the claims."""
    path = bench_json(tmp_path / "r.json", STEPS, EPOCHS)
    doc = json.loads(path.read_text())
    for b in doc["benchmarks"]:
        if b["extra_info"]["tier"] == "numpy" and b["group"] == "train_step batch=64":
            b["stats"].update(mean=3.0e-3, q1=0.5e-3, q3=0.7e-3)  # median stays 0.6 ms
    path.write_text(json.dumps(doc))
    run = load_run(path)
    row = next(r for r in run.select("train_step batch=64"))
    assert row["tier"] == "numpy"  # fastest by median, though its mean is the slowest
    assert abs(row["gflops"] - step_flops(64)["train_step"] / 0.6e-3 / 1e9) < 1e-6
    md = build([path], [], tmp_path / "out").read_text()
    assert "| numpy | 0.6 | 0.2 | 106,667 |" in md  # median, IQR 0.2 ms, samples/s
    assert "mean ms" not in md
    assert "| 64 | cpu | **numpy** 0.6 ms (1x numpy" in md


def test_the_first_screen_names_sources_and_marks_the_busy_run(tmp_path):
    a, b = _two_machines(tmp_path)
    md = build([a, b], [], tmp_path / "out").read_text()
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads[:3] == ["## At a glance", "## Sources", "## Claims checked"]
    glance = md.split("## At a glance", 1)[1].split("## Sources", 1)[0]
    header = next(ln for ln in glance.splitlines() if ln.startswith("| batch |"))
    assert header.count("box-a") == 1 and header.count("box-b (busy run)") == 1
    assert "ladder-all.png" in glance and (tmp_path / "out" / "ladder-all.png").exists()
    assert "**Busy run on box-b**: other processes used 0.99 cores" in glance
    sources = md.split("## Sources", 1)[1].split("## Claims", 1)[0]
    assert "| benchmarks | [latest.json](../box-a/latest.json) | box-a | 2026-12-07 08:00 | " \
           "abcdef0 | quiet" in sources
    assert "| box-b |" in sources and "**BUSY**: other processes used 0.99 cores" in sources
    claims_part = md.split("## Claims checked", 1)[1].split("\n## ", 1)[0]
    assert "Busy runs left out of the verdicts: box-b." in claims_part
    assert "box-b" not in claims_part.split("Busy runs left out", 1)[1].split("\n", 1)[1]
    assert "**train_step batch=64** (box-b - busy run)" in md


def test_each_claim_has_one_deciding_line_and_its_evidence_folded_once(tmp_path):
    a, _ = _two_machines(tmp_path)
    md = build([a], [], tmp_path / "out").read_text()
    part = md.split("## Claims checked", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in part.splitlines() if ln.startswith('| "')]
    assert len(rows) == 6 and all(ln.count(" | ") == 3 for ln in rows)
    assert 'the seed README (\\"Neural Network Implementation Comparison' in part or \
        "Neural Network Implementation Comparison" in part
    evidence = [ln for ln in part.splitlines() if ln.startswith("  - ")]
    assert evidence and len(evidence) == len(set(evidence))
    assert part.count("<details>") == part.count("</details>") >= 1
    assert "**scratch tier**" in md and "**seed**" in md  # the terms, defined once
    assert md.count("**scratch tier**") == 1


def _dom(exe, url, tmp_path, name, size="1400,900"):
    proc = subprocess.run([*exe, f"--user-data-dir={tmp_path / name}", f"--window-size={size}",
                           "--virtual-time-budget=5000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]
    return proc.stdout


def _local_links(page: str) -> list[str]:
    import re

    return [h for h in re.findall(r'href="([^"]+)"', page)
            if not h.startswith(("http:", "https:", "#", "data:", "mailto:"))]


def test_the_first_screen_in_headless_chromium(tmp_path):
    """At 1400 x 900 px the summary and the ladder are on the first screen, every image
    decodes, the busy run is marked, and every local link resolves."""
    import html as html_mod

    exe = chromium()
    a, b = _two_machines(tmp_path)
    out = tmp_path / "out"
    build([a, b], [], out)
    page = (out / "report.html").read_text()
    dom = _dom(exe, (out / "report.html").as_uri(), tmp_path, "p1")
    assert 'data-images-ok="true"' in dom
    bottom = int(dom.split('data-glance-bottom="', 1)[1].split('"', 1)[0])
    assert 0 < bottom <= 900, f"the summary and ladder end at {bottom} px"
    assert dom.index('id="at-a-glance"') < dom.index('id="sources"') < dom.index(
        'id="claims-checked"')
    assert 'class="busy"' in dom and "box-b (busy run)" in dom
    items = [html_mod.unescape(x) for x in
             dom.split('id="claims-checked"', 1)[1].split("<h2", 1)[0].split("<li>")[1:]]
    items = [x.split("</li>", 1)[0] for x in items if not x.startswith("<")]
    assert len(items) == len(set(items)), "an evidence line repeats"
    for href in _local_links(page):
        assert (out / html_mod.unescape(href)).resolve().exists(), href


def test_the_reference_report_and_profile_index_in_headless_chromium(tmp_path):
    """The committed reference set as a new user meets it: the report built from it puts
    its summary and ladder on the first screen, and the committed profile index pages render
    with every local link resolving (no link to a file that is not committed)."""
    import html as html_mod

    from implementations.paths import REFERENCE_PROFILES

    exe = chromium()
    out = tmp_path / "out"
    build(None, None, out, reference=False)  # what `mnist-tiers report` does on a fresh clone
    dom = _dom(exe, (out / "report.html").as_uri(), tmp_path, "p1")
    bottom = int(dom.split('data-glance-bottom="', 1)[1].split('"', 1)[0])
    assert 0 < bottom <= 900 and 'data-images-ok="true"' in dom
    tracked = set(subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True,
                                 text=True).stdout.split())
    for index in sorted(REFERENCE_PROFILES.glob("*/index.html")):
        page = index.read_text()
        dom = _dom(exe, index.as_uri(), tmp_path, f"p-{index.parent.name}")
        assert "Where the time goes" in dom and "<table" in dom
        for href in _local_links(page):
            target = (index.parent / html_mod.unescape(href)).resolve()
            assert str(target.relative_to(REPO)) in tracked, (index, href)


def test_the_report_shows_a_users_newest_run_quick_included(tmp_path, monkeypatch):
    """`pytest --benchmark-only --quick` saves quick.json; the next `mnist-tiers report`
    reads that run (the newest of a machine's latest, quick and partial runs), not the
    reference set."""
    import os
    import time

    from bench.report.inputs import default_result_paths

    monkeypatch.setenv("MNIST_TIERS_OUT", str(tmp_path))
    old = bench_json(tmp_path / "bench" / "box" / "latest.json", STEPS, EPOCHS)
    quick = bench_json(tmp_path / "bench" / "box" / "quick.json", STEPS, EPOCHS)
    os.utime(old, (time.time() - 60, time.time() - 60))
    assert default_result_paths() == [quick]
    assert all("bench/results" in str(p) for p in default_result_paths(reference=True))


def test_one_colour_per_tier_in_every_plot(tmp_path, monkeypatch):
    """A tier's colour is a registry fact: every registered tier has its own, and the plots
    draw each tier in it."""
    from matplotlib.colors import to_hex

    from bench.report import plots
    from implementations.registry import tier_color

    colours = [tier_color(n) for n in TIERS]
    assert len(set(colours)) == len(colours)
    drawn = {}

    def keep(fig, path):
        for ax in fig.axes:
            for bars in ax.containers:
                drawn[bars.get_label()] = to_hex(bars.patches[0].get_facecolor())
            for line in ax.get_lines():
                drawn.setdefault(line.get_label(), to_hex(line.get_color()))
        return path

    monkeypatch.setattr(plots, "_save", keep)
    run = load_run(bench_json(tmp_path / "r.json", STEPS, EPOCHS))
    plots.step_times(run, tmp_path / "a.png")
    plots.throughput(run, tmp_path / "b.png", [])
    for tier in STEPS:
        assert drawn[tier] == to_hex(tier_color(tier)), tier


def test_thread_counts_read_as_words():
    from implementations.threads import describe_threads

    counts = {"openmp:libgomp.so.1": 2, "openblas:libscipy_openblas64_-32a4b2a6.so": 2,
              "openblas:libscipy_openblas-6cdc3b4a.so": 1, "numba": 2, "torch": 2}
    assert describe_threads(counts) == "OpenMP 2, OpenBLAS 2/1, Numba 2, torch 2"
