"""The README's commands write a user's runs to an ignored folder, never the reference set."""

import os
import subprocess
import sys
from pathlib import Path

from implementations import paths
from implementations.machine import machine_name

REPO = Path(__file__).resolve().parent.parent


def _status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                          cwd=REPO, capture_output=True, text=True).stdout


def _run(args, out: Path):
    env = {**os.environ, paths.ENV_VAR: str(out)}
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def test_bench_profile_report_leave_the_checkout_clean(tmp_path, monkeypatch, capsys):
    """`make bench`, `make profile` and `mnist-tiers report` used to overwrite the committed
    bench/results/<machine>/latest.json and profiles/reports/<machine>/*. (The benchmark run
    in its own process, as `make bench` runs it; the CLI in this one.)"""
    from mnist_tiers.cli import main

    out = tmp_path / "runs"
    monkeypatch.setenv(paths.ENV_VAR, str(out))
    before = _status()
    machine = machine_name()
    _run(["-m", "bench.suite.run", "-k", "test_matmul and openblas and 64x784"], out)
    subset = out / "bench" / machine / "partial.json"  # a selection: never latest.json
    assert subset.is_file() and not (out / "bench" / machine / "latest.json").exists()
    subset.rename(subset.with_name("latest.json"))  # as a full run would leave it
    assert main(["profile", "--tier", "numpy", "--no-scalene", "--steps", "5"]) == 0
    assert (out / "profiles" / machine / "index.html").is_file()
    assert main(["report"]) == 0
    assert (out / "report" / "report.md").is_file()
    assert str(out / "report") in capsys.readouterr().out
    text = (out / "report" / "report.md").read_text()
    assert f"**{machine}**" in text  # the user's run, not the reference set, was read
    assert _status() == before


def test_out_folder_is_ignored_by_git():
    proc = subprocess.run(["git", "check-ignore", "-q", "out/bench/x/latest.json"], cwd=REPO)
    assert proc.returncode == 0


def test_readers_fall_back_to_the_reference_set(tmp_path, monkeypatch):
    from bench.report.inputs import default_result_paths

    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "empty"))
    assert default_result_paths() == default_result_paths(reference=True)
    mine = tmp_path / "empty" / "bench" / "box" / "latest.json"
    mine.parent.mkdir(parents=True)
    mine.write_text("{}")
    assert default_result_paths() == [mine]


def test_report_takes_only_its_runs_machines_trainings(tmp_path, monkeypatch):
    """The default report mixed both reference machines' trainings in one table."""
    from bench.report.inputs import default_training_paths

    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "empty"))
    machines = {p.parent.name for p in paths.REFERENCE_BENCH.glob("*/train-*.json")}
    for m in machines:
        assert {p.parent.name for p in default_training_paths(machines=[m])} == {m}
