"""torch-ddp: the same function as every tier, failures that surface, no orphan process."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from implementations.checks import assert_close, random_batch
from implementations.experiment import init_params
from implementations.models.torch_ddp import DDPModel
from implementations.oracle import oracle_step
from implementations.training import train
from mnist_tiers.cli import main

REPO = Path(__file__).resolve().parent.parent
LR = 0.1


def alive(pid: int) -> bool:
    """True while process `pid` exists and is no zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def model():
    busy = socket.socket()  # the default rendezvous port, taken: it must not matter
    with_busy = True
    try:
        busy.bind(("127.0.0.1", 29500))
        busy.listen()
    except OSError:
        with_busy = False  # someone else holds it already, which is the same test
    old = os.environ.get("MASTER_PORT")
    os.environ["MASTER_PORT"] = "29500"
    try:
        m = DDPModel(init_params(0), procs=2)
    finally:
        busy.close() if with_busy else None
        if old is None:
            os.environ.pop("MASTER_PORT")
        else:
            os.environ["MASTER_PORT"] = old
    yield m
    m.close()


@pytest.mark.parametrize("n", [12, 13, 1], ids=["even split", "uneven split", "fewer than W"])
@pytest.mark.parametrize("activation", ["relu"])
def test_one_step_equals_sgd_on_the_global_batch(model, n, activation):
    params = init_params(0)
    model.load_weights(params)
    x, y = random_batch(n, 784, 10, seed=n)
    ref = oracle_step(params, x, y, activation, LR)
    X, Y = model.prepare(x, y)
    idx, _ = model.take(X, Y, np.arange(n))
    assert_close("ddp loss", model.train_step(idx, None, LR), ref["loss"])
    for name, w in model.weights().items():
        assert_close(f"ddp updated {name}", w, ref[name])


def test_one_epoch_matches_numpy():
    """`train --tier torch-ddp --procs 2 --limit 2000 --epochs 1`: 2000 = 31 x 64 + 16."""
    ddp = train("torch-ddp", epochs=1, limit=2000, model_options={"procs": 2})
    ref = train("numpy", epochs=1, limit=2000)
    rel = abs(ddp.train_loss[0] - ref.train_loss[0]) / ref.train_loss[0]
    print(f"loss ddp {ddp.train_loss[0]:.8f} numpy {ref.train_loss[0]:.8f} rel {rel:.1e}")
    assert rel < 1e-4
    assert ddp.extra["procs"] == 2 and ddp.extra["threads_per_proc"] >= 1


def test_a_failing_rank_fails_the_parent_fast_and_leaves_no_process():
    m = DDPModel(init_params(0), procs=2, fault=(1, 2))
    pids = [p.pid for p in m._procs]
    X, Y = m.prepare(*random_batch(8, 784, 10))
    idx, _ = m.take(X, Y, np.arange(8))
    m.train_step(idx, None, LR)
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="DDPModel rank 1 of 2 failed: RuntimeError: "
                                           "injected fault at step 2"):
        m.train_step(idx, None, LR)
    assert time.perf_counter() - t0 < 10
    assert not any(alive(p) for p in pids)


def test_workers_die_with_their_parent(tmp_path):
    """A parent killed outright (no clean-up runs) leaves no worker behind."""
    code = ("import os, signal\n"
            "from implementations.models.torch_ddp import DDPModel\n"
            "from implementations.experiment import init_params\n"
            "if __name__ == '__main__':\n"
            "    m = DDPModel(init_params(0), procs=2)\n"
            "    print(*[p.pid for p in m._procs], flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    script = tmp_path / "parent.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 2, proc.stderr[-2000:]
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids)


def test_procs_that_make_no_sense(capsys):
    with pytest.raises(ValueError, match="procs must be a whole number >= 1, got 0"):
        DDPModel(init_params(0), procs=0)
    with pytest.raises(SystemExit):
        main(["train", "--tier", "torch-ddp", "--procs", "0"])
    assert "argument --procs: must be a whole number >= 1" in capsys.readouterr().err
    assert main(["train", "--tier", "numpy", "--procs", "2", "--epochs", "1"]) == 2
    assert "tier 'numpy' runs in one process; worker processes apply to torch-ddp" in \
        capsys.readouterr().err


def test_more_procs_than_cores_warns(capsys):
    from implementations.threads import available_cores

    n = available_cores() + 1
    assert main(["train", "--tier", "torch-ddp", "--procs", str(n), "--epochs", "1",
                 "--limit", "128", "--no-progress"]) == 0
    assert f"--procs {n} starts more processes than the" in capsys.readouterr().err


def test_alpha_beta_fit_and_ring_model():
    from implementations.allreduce import fit_alpha_beta, ring_allreduce_seconds

    alpha, bw = 50e-6, 2e9
    times = {n: alpha + n / bw for n in (4, 4096, 1 << 20, 4 << 20)}
    a, b = fit_alpha_beta(times)
    assert a == pytest.approx(alpha, rel=1e-6) and b == pytest.approx(bw, rel=1e-6)
    assert ring_allreduce_seconds(1000, 1, a, b) == 0.0
    assert ring_allreduce_seconds(1000, 4, a, b) == pytest.approx(6 * alpha + 1.5 * 1000 / bw)


def _ddp_run(tmp_path, w2_seconds):
    import json

    from bench.report.inputs import load_run
    from implementations.experiment import step_flops

    benches = []
    for batch, cpu, w1 in ((64, 0.5, 0.8), (1024, 0.16, 0.2)):
        for label, procs, s in (("torch-cpu", 1, cpu), ("torch-ddp W=1", 1, w1),
                                ("torch-ddp W=2", 2, w2_seconds[batch])):
            e = {"tier": "torch-cpu" if procs == 1 and label == "torch-cpu" else "torch-ddp",
                 "device": "cpu", "batch": batch, "flops": step_flops(60000)["train_step"],
                 "label": label, "procs": procs, "epoch_samples": 60000, "correct": True}
            if label != "torch-cpu":
                e.update(allreduce_seconds=0.1 * s, allreduce_share=0.1, threads_per_proc=1)
            if procs == 2:
                e["allreduce_times"] = {str(n): 2e-4 + n / 1e9 for n in (4, 65536, 1 << 20)}
            benches.append({"group": f"ddp epoch batch={batch}", "name": label,
                            "stats": {"mean": s, "median": s}, "extra_info": e})
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"machine_info": {"mnist_tiers": {
        "machine": "box", "cpu": "Test CPU", "threads": 2, "sgemm_gflops": 100.0,
        "versions": {}}},
                                "datetime": "2026-12-01", "benchmarks": benches}))
    return load_run(path)


@pytest.mark.parametrize("w2, verdict", [({64: 1.9, 1024: 0.37}, "does not pay"),
                                         ({64: 1.9, 1024: 0.1}, "pays")])
def test_report_section_verdict_follows_the_data(tmp_path, w2, verdict):
    from bench.report import ddp as ddp_report

    text = "\n".join(ddp_report.section(_ddp_run(tmp_path, w2)))
    assert f"data parallelism {verdict} for this network" in text
    assert "Projection (alpha-beta model, not a measurement)" in text
    assert "| 2048 |" in text  # where it would pay, by width
