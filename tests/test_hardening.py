"""Runs as people really run them: an unwritable destination or a missing extra is refused
before anything is timed, a failing tier never throws away the others' timings, every JSON
says what machine and code it came from, a busy machine is flagged, a CPU quota counts as
fewer cores, Ctrl-C is one line, and a fork() after a Numba parallel kernel says why the
child dies."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.report.build import training_machine
from bench.studies.sweep import sweep
from implementations import noise, threads
from implementations.fileio import ResultFileError, check_writable
from implementations.provenance import code_version, describe_code
from implementations.training import train

REPO = Path(__file__).resolve().parent.parent
UNWRITABLE = "/proc/mnist-tiers-out"  # no one may create it, root included
QUICK_PASS = "64 and numpy and forward and test_pass"


def _run(args, env=None, timeout=600, **kw):
    return subprocess.run([sys.executable, *args], cwd=kw.pop("cwd", REPO), capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, **kw)


@pytest.fixture
def busy_core():
    """Another process keeping one core busy for the test's length: started through a shell
    that exits at once, so it is nobody's child here (the guard counts a run's own
    descendants, such as torch-ddp's workers, as the run's)."""
    out = subprocess.run(["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null "
                          "2>&1 & echo $!"], capture_output=True, text=True, check=True)
    pid = int(out.stdout.split()[0])
    time.sleep(0.5)
    yield pid
    os.kill(pid, signal.SIGKILL)


def test_the_runs_own_worker_processes_are_not_other_processes():
    """A live child's CPU time (torch-ddp's ranks are children) counts as the run's own:
    whatever else the machine runs, the own time grows by at least the child's."""
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])

    def child_ticks():
        fields = open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    try:
        time.sleep(0.3)
        own0, kid0 = noise._own_jiffies(), child_ticks()
        time.sleep(1.0)
        kid1, own1 = child_ticks(), noise._own_jiffies()
    finally:
        child.kill()
        child.wait()
    assert kid1 - kid0 > 0
    assert own1 - own0 >= kid1 - kid0


# -- an unwritable destination, a missing extra: refused before anything is timed -----------

def test_check_writable_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(ResultFileError, match=r"^/proc/mnist-tiers-out: cannot write there "
                                              r".*MNIST_TIERS_OUT"):
        check_writable(Path(UNWRITABLE) / "x.json")
    with pytest.raises(ResultFileError, match="is a folder"):
        check_writable(tmp_path)
    assert check_writable(tmp_path / "a" / "b.json") == tmp_path / "a" / "b.json"
    assert list((tmp_path / "a").iterdir()) == []  # no probe left behind


@pytest.mark.parametrize("command", [["sweep", "--quick", "--tier", "numpy"],
                                     ["alternate", "--tier", "numba", "--runs", "3"],
                                     ["profile", "--tier", "numpy", "--no-scalene"]])
def test_an_unwritable_out_folder_is_refused_before_timing(command):
    t0 = time.perf_counter()
    proc = _run(["-m", "mnist_tiers", *command, "--no-progress"] if command[0] == "sweep"
                else ["-m", "mnist_tiers", *command], env={"MNIST_TIERS_OUT": UNWRITABLE})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"mnist-tiers: {UNWRITABLE}/" in proc.stderr and "cannot write there" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "sweep:" not in proc.stdout and "[1/1]" not in proc.stdout  # nothing was timed
    assert time.perf_counter() - t0 < 60


def test_the_suite_refuses_an_unwritable_destination_and_a_missing_extra(tmp_path):
    proc = _run(["-m", "bench.suite.run", "-k", QUICK_PASS],
                env={"MNIST_TIERS_OUT": UNWRITABLE})
    assert proc.returncode == 2 and "benchmark run refused" in proc.stderr
    assert "cannot write there" in proc.stderr
    if subprocess.run([sys.executable, "-c", "import pygal"], capture_output=True).returncode:
        proc = _run(["-m", "bench.suite.run", "-k", QUICK_PASS,
                     f"--benchmark-histogram={tmp_path}/h"],
                    env={"MNIST_TIERS_OUT": str(tmp_path / "out")})
        text = proc.stdout + proc.stderr
        assert proc.returncode == 4, text  # a usage error: before collection and timing
        assert "--benchmark-histogram needs the package 'pygal'" in text
        assert "pip install 'pytest-benchmark[histogram]'" in text
        assert "Traceback" not in text and "passed" not in text
        assert not any(p.name.startswith(".") for p in tmp_path.rglob("*")), "hidden files"


# -- a failing tier never throws away the others' timings ------------------------------------

BROKEN = "numpy-broken"
BROKEN_KERNELS = ("from kernels.vectorized import *  # noqa\n"
                  "from kernels import vectorized as _v\n"
                  "def linear_forward(x, W, b):\n"
                  "    return 2 * _v.linear_forward(x, W, b)  # wrong on purpose\n")


def test_a_failing_tier_keeps_the_results_of_the_tiers_that_ran(tmp_path):
    (tmp_path / "broken_kernels.py").write_text(BROKEN_KERNELS)
    code = ("import sys\n"
            "from implementations.registry import Tier, register, scratch_model\n"
            f"register(Tier({BROKEN!r}, 'numpy with a wrong forward', 'cpu', "
            f"scratch_model('broken_kernels', {BROKEN!r}), 'broken_kernels'))\n"
            "from bench.suite.run import main\n"
            f"sys.exit(main(['-k', '64 and (numpy or {BROKEN}) and forward and test_pass', "
            "'-p', 'no:cacheprovider']))\n")
    out = tmp_path / "out"
    proc = _run(["-c", code], env={"MNIST_TIERS_OUT": str(out), "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    (saved,) = out.glob("bench/*/partial.json")
    doc = json.loads(saved.read_text())
    tiers = {b["extra_info"]["tier"] for b in doc["benchmarks"]}
    assert tiers == {"numpy"}  # the one that ran is kept
    (failure,) = doc["failures"]
    assert BROKEN in failure["test"] and "does not match the reference" in failure["message"]
    assert f"results: {saved}" in proc.stdout and "failed:  1" in proc.stdout
    assert not [p for p in saved.parent.iterdir() if p.name.endswith(".partial")]


def test_a_run_cut_short_is_kept_beside_never_over_a_whole_one(tmp_path):
    from bench.suite.results import kept_path

    final = tmp_path / "latest.json"
    assert kept_path(final, 0, time.time()) == final
    assert kept_path(final, 1, time.time()) == final  # completed, failures recorded inside
    assert kept_path(final, 2, time.time()).name == "latest-interrupted.json"
    started = time.time() - 5
    final.write_text("{}")  # another run finished after this one started
    other = kept_path(final, 0, started)
    assert other != final and other.name.startswith("latest-")


# -- every JSON records the machine and code version; the report labels by it ---------------

def test_code_version_is_the_checkout_commit():
    code = code_version()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
    assert code["commit"] == head and isinstance(code["dirty"], bool)
    assert describe_code(code).startswith(head[:7])
    assert describe_code({"commit": None, "package": "0.1.0"}) == "package 0.1.0"


def test_a_sweep_and_a_training_record_provenance_and_machine_state(tmp_path):
    doc = json.loads(sweep(["numpy"], out_path=tmp_path / "s.json", batches=(64,),
                           widths=(32,), progress=False).read_text())
    for record in (doc, train("numpy", epochs=1, limit=640, threads=1).to_json()):
        assert record["provenance"]["machine"] and record["provenance"]["code"]["commit"]
        assert record["provenance"]["recorded"].startswith("20")
        state = record["machine_state"]
        assert isinstance(state["quiet"], bool) and len(state["calibration_ms"]) == 2


def test_a_training_is_labelled_by_its_recorded_machine_not_its_folder():
    moved = {"source": "bench/results/amd-epyc-2c/train-x.json",
             "provenance": {"machine": "intel-xeon-2c"}}
    assert training_machine(moved) == "intel-xeon-2c"
    assert training_machine({"source": "x/amd-epyc-2c/t.json"}) == \
        "amd-epyc-2c? (not recorded)"
    busy = {**moved, "machine_state": {"quiet": False, "reasons": ["x"]}}
    assert training_machine(busy) == "intel-xeon-2c (busy)"


# -- cores: a cgroup CPU quota counts ----------------------------------------------------------

def _cgroup(tmp_path, lines, files):
    tmp_path.mkdir()
    proc = tmp_path / "cgroup"
    proc.write_text("\n".join(lines) + "\n")
    for rel, text in files.items():
        (tmp_path / "fs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fs" / rel).write_text(text)
    return threads.cgroup_cpu_limit(tmp_path / "fs", str(proc))


def test_a_cgroup_cpu_quota_is_read_v2_and_v1(tmp_path):
    assert _cgroup(tmp_path / "a", ["0::/job"], {"job/cpu.max": "150000 100000\n"}) == 1.5
    assert _cgroup(tmp_path / "b", ["0::/job"], {"job/cpu.max": "max 100000\n"}) is None
    assert _cgroup(tmp_path / "c", ["0::/a/b"], {"a/cpu.max": "100000 100000\n",
                                                 "a/b/cpu.max": "max 100000\n"}) == 1.0
    v1 = {"cpu,cpuacct/job/cpu.cfs_quota_us": "200000\n",
          "cpu,cpuacct/job/cpu.cfs_period_us": "100000\n"}
    assert _cgroup(tmp_path / "d", ["4:cpu,cpuacct:/job"], v1) == 2.0
    no_quota = {"cpu,cpuacct/job/cpu.cfs_quota_us": "-1\n",
                "cpu,cpuacct/job/cpu.cfs_period_us": "100000\n"}
    assert _cgroup(tmp_path / "e", ["4:cpu,cpuacct:/job"], no_quota) is None


def test_available_cores_is_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 0.5)
    assert threads.available_cores() == 1
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 1000.0)
    assert threads.available_cores() == len(os.sched_getaffinity(0))


# -- a busy machine is detected, recorded and said ---------------------------------------------

def test_the_guard_flags_another_process_using_a_core(busy_core):
    with pytest.warns(noise.BusyMachineWarning, match="other processes used"):
        with noise.NoiseGuard("test") as guard:
            time.sleep(1.0)
    assert guard.state["quiet"] is False and guard.state["others_cores"] > 0.5


def test_the_verdict_rules():
    quiet = {"wall": 0.0, "stat": (0, 0, 1000), "own": 0, "load_avg": 0.1,
             "calibration_ms": 1.0}
    hz = os.sysconf("SC_CLK_TCK")
    end = {**quiet, "wall": 10.0, "stat": (int(0.1 * hz * 10), 0, 2000), "own": 0}
    assert noise.judge(quiet, end)["quiet"] is True  # 0.1 core of others: noise
    drift = {**end, "calibration_ms": 2.5}
    assert "calibration" in noise.judge(quiet, drift)["reasons"][0]
    steal = {**end, "stat": (0, 200, 2000)}
    assert "stole 20%" in noise.judge(quiet, steal)["reasons"][0]
    assert noise.busy_note(None) is None and noise.busy_note({"quiet": True}) is None


def test_a_benchmark_run_on_a_busy_machine_is_flagged_in_its_json(busy_core, tmp_path):
    path = tmp_path / "r.json"
    proc = _run(["-m", "bench.suite.run", "-k", QUICK_PASS, f"--benchmark-json={path}",
                 "-p", "no:cacheprovider"], env={"MNIST_TIERS_OUT": str(tmp_path / "out")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(path.read_text())
    assert doc["machine_state"]["quiet"] is False and doc["failures"] == []
    assert doc["provenance"]["code"]["commit"]
    assert "machine state: BUSY" in proc.stdout


# -- Ctrl-C and fork ------------------------------------------------------------------------

def test_ctrl_c_during_a_ddp_training_is_one_line():
    proc = subprocess.Popen([sys.executable, "-m", "mnist_tiers", "train", "--tier", "torch-ddp",
                             "--limit", "4000", "--epochs", "500", "--no-progress"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    seen = []
    while not any("loss" in ln for ln in seen):  # the workers are up and training
        line = proc.stdout.readline()
        assert line, "".join(seen)
        seen.append(line)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
    said = [ln for ln in rest.splitlines() if ln.strip() and not ln.startswith("epoch ")]
    assert said == ["mnist-tiers train: interrupted; nothing more was written"], rest[-2000:]


def test_a_fork_after_a_numba_parallel_kernel_says_why_the_child_dies():
    code = ("import os, numpy as np, numba\n"
            "from kernels import numba_cpu as nc\n"
            "a = np.ones((256, 256), np.float32); nc.matmul(a, a)\n"
            "print(numba.threading_layer(), flush=True)\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)\n")
    proc = _run(["-c", code])
    assert proc.returncode == 0, proc.stderr
    if proc.stdout.strip() != "omp":
        pytest.skip(f"Numba's threading layer here is {proc.stdout.strip()}, not omp: no hazard")
    assert "mnist-tiers: fork() after a Numba parallel kernel ran" in proc.stderr
    assert "get_context('spawn')" in proc.stderr
