"""Is the machine quiet? A guard around every timing run (suite, sweep, alternate, profile,
train) that measures the machine's state before and after and flags a busy run.

Three signals, read from Linux's /proc (absent elsewhere: the signal is left out):
- others_cores: CPU time used by every other process during the run, in cores, from the
  system's busy time in /proc/stat minus this process's own and its descendants' (worker
  processes included) from /proc/<pid>/stat. A second process spinning on one core reads ~1.0.
- steal_fraction: the share of CPU time the hypervisor gave to other guests (the "steal"
  column of /proc/stat), over the run.
- calibration_ms: a fixed float32 matmul loop timed at the start and at the end (median of
  7); a drift between the two means the machine changed under the run.
The load average (os.getloadavg) at both ends is recorded too, for a person to read; it
lags by a minute, so it decides nothing.

A run is busy when others_cores > OTHERS_CORES_MAX, steal > STEAL_MAX or the calibration
drifts by more than CALIBRATION_DRIFT_MAX either way (more than a boost clock's own drop
under sustained load). A busy run is still saved (the user
decides), flagged in its JSON ("machine_state": {"quiet": false, "reasons": [...]}),
warned on the console (BusyMachineWarning) and marked in the report.
"""

import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

OTHERS_CORES_MAX = 0.3  # cores used by other processes over the run (a busy loop: ~1.0)
STEAL_MAX = 0.05  # share of CPU time stolen by the hypervisor
# end / start (or start / end) calibration time: a CPU's boost clock alone drops by up to
# ~1.8x over minutes of load on every core (seen here: 0.7 ms before a 2-minute
# alternating run, 1.1-1.3 ms after it, with no other process running), so only a larger
# drift says the machine changed under the run
CALIBRATION_DRIFT_MAX = 2.0
CALIBRATION_N = 192  # matmul size: ~0.5 ms per product at ~30 GFLOP/s, in cache
CALIBRATION_REPEATS = 7
SETTLE_SECONDS = 0.3  # before the end calibration (see NoiseGuard.finish)


class BusyMachineWarning(UserWarning):
    """The machine was busy during a timing run: its figures may be inflated."""


def _proc_stat(path: str = "/proc/stat") -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies of all CPUs since boot, or None off Linux."""
    try:
        with open(path) as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal guest guest_nice (guest is in user)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    steal = fields[7] if len(fields) > 7 else 0
    total = sum(fields[:8])
    return total - idle - steal, steal, total


def _stat_fields(path: str) -> list[str] | None:
    try:
        text = open(path).read()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # the command name may hold spaces


def _own_jiffies(path: str = "/proc/self/stat") -> int | None:
    """CPU time of this process and every live process under it (torch-ddp's workers, a
    profiler's child), in jiffies, or None off Linux: its utime + stime + cutime + cstime
    (cutime: the children already waited for) plus each live descendant's utime + stime,
    from /proc/<pid>/stat."""
    fields = _stat_fields(path)
    if fields is None:
        return None
    own = sum(int(v) for v in fields[11:15])
    parents, times = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        f = _stat_fields(str(stat))
        if f is None:
            continue
        pid = int(stat.parent.name)
        parents[pid], times[pid] = int(f[1]), int(f[11]) + int(f[12])
    me, found = os.getpid(), set()
    frontier = [me]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent and p not in found]
        found.update(kids)
        frontier += kids
    return own + sum(times[p] for p in found)


def calibration_ms() -> float:
    """Median milliseconds of a fixed float32 matmul loop (8 products of CALIBRATION_N^2)."""
    a = np.random.default_rng(0).random((CALIBRATION_N, CALIBRATION_N), dtype=np.float32)
    a @ a
    times = []
    for _ in range(CALIBRATION_REPEATS):
        t0 = time.perf_counter()
        for _ in range(8):
            a @ a
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def snapshot() -> dict:
    """The machine's state now: counters, load average and a calibration time."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"wall": time.monotonic(), "stat": _proc_stat(), "own": _own_jiffies(),
            "load_avg": round(load[0], 2) if load else None, "calibration_ms": calibration_ms()}


def judge(start: dict, end: dict) -> dict:
    """The machine state between two snapshots, with the verdict:
    {"quiet", "reasons", "others_cores", "steal_fraction", "calibration_ms": [start, end],
    "load_avg": [start, end], "seconds"}. Signals that could not be read are None."""
    seconds = max(end["wall"] - start["wall"], 1e-9)
    others = steal = None
    if start["stat"] and end["stat"] and start["own"] is not None and end["own"] is not None:
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        busy = end["stat"][0] - start["stat"][0]
        own = end["own"] - start["own"]
        others = max(0.0, (busy - own) / hz / seconds)
        total = end["stat"][2] - start["stat"][2]
        steal = (end["stat"][1] - start["stat"][1]) / total if total > 0 else 0.0
    cal = [start["calibration_ms"], end["calibration_ms"]]
    reasons = []
    if others is not None and others > OTHERS_CORES_MAX:
        reasons.append(f"other processes used {others:.2f} cores during the run")
    if steal is not None and steal > STEAL_MAX:
        reasons.append(f"the hypervisor stole {100 * steal:.0f}% of the CPU time")
    drift = max(cal) / max(min(cal), 1e-9)
    if drift > CALIBRATION_DRIFT_MAX:
        reasons.append(f"a calibration kernel took {cal[0]:.2f} ms at the start and "
                       f"{cal[1]:.2f} ms at the end")
    return {"quiet": not reasons, "reasons": reasons,
            "others_cores": None if others is None else round(others, 3),
            "steal_fraction": None if steal is None else round(steal, 4),
            "calibration_ms": [round(c, 3) for c in cal],
            "load_avg": [start["load_avg"], end["load_avg"]], "seconds": round(seconds, 1)}


def busy_note(state: dict | None) -> str | None:
    """One line for a person when `state` says busy, else None (quiet, or not recorded)."""
    if not state or state.get("quiet", True):
        return None
    return "busy machine: " + "; ".join(state.get("reasons") or ["flagged busy"])


class NoiseGuard:
    """`with NoiseGuard("sweep") as guard: ...` then `guard.state` (see judge()); or
    `guard = NoiseGuard("sweep").begin()` ... `guard.finish()`.

    Warns BusyMachineWarning on leaving when the run was busy, naming `label` and the
    reasons, and saying the figures were kept and flagged (rerun on a quiet machine)."""

    def __init__(self, label: str):
        self.label = label
        self.start = None
        self.state = None

    def begin(self) -> "NoiseGuard":
        """Take the start snapshot now; returns the guard (for runs shaped as no block)."""
        self.start = snapshot()
        return self

    def __enter__(self):
        return self.begin()

    def finish(self) -> dict:
        """Take the end snapshot now (once) and return the state. It first waits a moment
        (SETTLE_SECONDS, at most a tenth of the run) so that the run's own idle thread
        pools (OpenMP, OpenBLAS) stop spinning: their spin would slow the calibration and
        flag a quiet machine busy."""
        if self.state is None:
            time.sleep(min(SETTLE_SECONDS, 0.1 * (time.monotonic() - self.start["wall"])))
            self.state = judge(self.start, snapshot())
            note = busy_note(self.state)
            if note:
                warnings.warn(f"{self.label}: {note}; the figures are saved but flagged "
                              f"busy: rerun on a quiet machine to trust them",
                              BusyMachineWarning, stacklevel=3)
        return self.state

    def __exit__(self, *exc):
        if exc[0] is None:
            self.finish()
        return False
