"""Adding a tier is one registry entry plus its code: a throwaway tier (a second NumPy tier
under another name), registered at run time and never written into any file, appears in
`mnist-tiers tiers`, trains, is parametrized by the benchmark suite, is swept, and is judged
by the report like the tier it copies."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_report import EPOCHS, STEPS, bench_json

from bench.report import claims
from bench.report.build import build
from bench.report.inputs import load_run
from bench.studies.sweep import sweep
from implementations.registry import (
    TIERS,
    Tier,
    TierError,
    register,
    resolve,
    scratch_model,
    unregister,
)
from implementations.training import train
from mnist_tiers.cli import main

REPO = Path(__file__).resolve().parent.parent
NAME = "numpy-twin"
ENTRY = (f"Tier({NAME!r}, 'the numpy tier again, under another name', 'cpu', "
         f"scratch_model('kernels.vectorized', {NAME!r}), 'kernels.vectorized', "
         f"baseline='numpy', formats=('float32', 'float64'))")


@pytest.fixture
def twin():
    tier = register(eval(ENTRY, {"Tier": Tier, "scratch_model": scratch_model}))
    yield tier
    unregister(NAME)


def test_it_is_listed_and_resolved(twin, capsys):
    assert main(["tiers"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^{NAME} +\[cpu\] the numpy tier again", out, re.M), out
    assert resolve(NAME, dtype="float64") is twin
    with pytest.raises(TierError, match=f"tier '{NAME}' does not compute in bfloat16"):
        resolve(NAME, dtype="bfloat16")


def test_a_taken_name_is_refused(twin):
    with pytest.raises(TierError, match="already registered"):
        register(twin)


def test_it_trains_like_numpy(twin, capsys):
    mine = train(NAME, epochs=1, limit=640, threads=1)
    numpy = train("numpy", epochs=1, limit=640, threads=1)
    assert mine.tier == NAME and mine.train_loss == numpy.train_loss
    assert main(["train", "--tier", NAME, "--epochs", "1", "--limit", "320",
                 "--no-progress"]) == 0
    assert "epoch   1" in capsys.readouterr().out


def test_the_benchmark_suite_parametrizes_it():
    code = ("import sys, pytest\n"
            "from implementations.registry import Tier, register, scratch_model\n"
            f"register({ENTRY})\n"
            "sys.exit(pytest.main(['bench/suite/test_bench.py', '--collect-only', '-q',\n"
            "                      '--benchmark-only', '-p', 'no:cacheprovider']))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    ids = [line for line in proc.stdout.splitlines() if f"-{NAME}-" in line
           or f"[{NAME}-" in line or f"-{NAME}]" in line]
    for test in ("test_pass", "test_epoch", "test_kernel", "test_format"):
        assert any(f"::{test}[" in i for i in ids), (test, ids[:5])


def test_it_is_swept(twin, tmp_path):
    doc = json.loads(sweep([NAME], out_path=tmp_path / "s.json", batches=(1, 64),
                           widths=(32,), progress=False).read_text())
    assert [c["batch"] for c in doc["cells"][NAME]] == [1, 64]
    assert all("median_s" in c for c in doc["cells"][NAME])


def test_the_report_judges_it_as_a_scratch_tier(twin, tmp_path):
    steps = {**STEPS, NAME: {1: 0.3, 64: 0.5}}
    result = bench_json(tmp_path / "run.json", steps, EPOCHS)
    md = build([result], [], tmp_path / "report").read_text()
    assert f"| {NAME} |" in md
    assert NAME in claims.scratch_tiers()
    slower = claims.scratch_slower([load_run(result)])
    assert any(item.startswith(f"{NAME} at batch") for item in slower["fails"]
               + slower["holds"])


def test_no_other_file_names_it():
    hits = subprocess.run(["git", "grep", "--untracked", "-l", NAME], cwd=REPO, capture_output=True,
                          text=True).stdout.split()
    assert hits == ["tests/test_adding_a_tier.py"], hits
    assert NAME not in TIERS
