"""One thread count for every CPU library: Numba, the BLAS under NumPy, OpenMP, torch and
XLA (the JAX tiers; it can be held to one thread or left on every core, nothing between).

`set_threads(n)` applies the count to every thread pool that is loaded (it loads NumPy,
SciPy's BLAS, torch and Numba first: threadpoolctl only reaches libraries already in the
process) and to the environment (for libraries loaded later and for child processes), then
reads back what each library really uses. `thread_counts()` is that read-back; results
record it, never the number that was asked for.
"""

import math
import os
import warnings
from pathlib import Path

from implementations import settings

# for pools loaded later and for child processes; not NUMBA_NUM_THREADS: read at Numba's
# import, it would cap this process's pool for good
_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class ThreadsWarning(UserWarning):
    """A thread request that was adjusted, or libraries that disagree on their count."""


def _cgroup_paths(proc_cgroup: str) -> dict[str, str]:
    """controller list -> cgroup path, from /proc/self/cgroup ("0::/x" is cgroup v2)."""
    out = {}
    try:
        for line in Path(proc_cgroup).read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            out[controllers] = path
    except (OSError, ValueError):
        pass
    return out


def _quota_in(folder: Path, v2: bool) -> float | None:
    """CPUs allowed by one cgroup folder's quota, or None (no quota, or not readable)."""
    try:
        if v2:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def cgroup_cpu_limit(root: str | os.PathLike = "/sys/fs/cgroup",
                     proc_cgroup: str = "/proc/self/cgroup") -> float | None:
    """The CPU quota of this process's cgroup in cores (quota / period), or None.

    cgroup v2: `cpu.max` ("max 100000" is no quota, "150000 100000" is 1.5 cores);
    cgroup v1: `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1 is no quota). The tightest quota
    of the process's cgroup and every folder above it counts (a container's limit is often
    set on a parent). Paths from /proc/self/cgroup are tried under `root`, and `root` itself
    (inside a container the process's own cgroup is usually mounted there).
    """
    root = Path(root)
    groups = _cgroup_paths(proc_cgroup)
    candidates = []  # (folder, is v2)
    if "" in groups:
        candidates.append((root, groups[""], True))
    for controllers, path in groups.items():
        if "cpu" in controllers.split(","):
            for sub in (controllers, "cpu", "cpu,cpuacct"):
                candidates.append((root / sub, path, False))
    if not groups:
        candidates = [(root, "/", True), (root / "cpu", "/", False)]
    limits = []
    for base, path, v2 in candidates:
        folder = base / path.lstrip("/")
        for f in (folder, *folder.parents):
            if f == base.parent or not str(f).startswith(str(base)):
                break
            q = _quota_in(f, v2)
            if q is not None:
                limits.append(q)
    return min(limits) if limits else None


def available_cores() -> int:
    """The cores this process may use, at least 1: its CPU affinity, capped by its cgroup's
    CPU quota rounded up (`cgroup_cpu_limit`; a container given 1.5 CPUs of 16 runs 2
    threads, not 16). os.process_cpu_count (Python 3.13) covers the affinity only."""
    try:
        cores = len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota - 1e-9)))
    return cores


def check_threads(n) -> int | None:
    """`n` as a thread request: None (all cores) or an int >= 1; a clear ValueError otherwise.

    Asking for more threads than cores warns (ThreadsWarning) and returns the core count:
    an oversubscribed OpenBLAS spins its workers against each other (16 threads on 2 cores
    made a NumPy epoch ~380x slower here), and Numba cannot exceed its start-up pool anyway,
    so only a clamped count keeps every library on the same number.
    """
    n = settings.check("threads", n)
    if n is None:
        return None
    cores = available_cores()
    if n > cores:
        warnings.warn(f"threads={n} asks for more threads than the {cores} cores this "
                      f"process may use; running {cores} threads (oversubscribed thread "
                      f"pools spin against each other and distort every timing)",
                      ThreadsWarning, stacklevel=2)
        return cores
    return n


def _load_libraries():
    """Import what brings a thread pool, so that threadpoolctl can see and limit it."""
    import numpy  # noqa: F401  (its OpenBLAS)

    for name in ("scipy.linalg", "torch", "numba"):
        try:
            __import__(name)
        except ImportError:
            pass


def set_threads(n: int | None = None) -> int:
    """Give every CPU library n threads (default: all cores); returns the count that runs.

    Raises ValueError for counts that make no sense; warns (ThreadsWarning) when n exceeds
    the cores, then uses the cores, and when a library ends on another count than asked.
    """
    n = check_threads(n) or available_cores()
    for var in _ENV_VARS:
        os.environ[var] = str(n)
    _load_libraries()
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    _set_xla_threads(n)
    counts = thread_counts()
    off = {lib: c for lib, c in counts.items() if c != n}
    if off:
        warnings.warn(f"asked every library for {n} threads, but these run another count: "
                      f"{off}", ThreadsWarning, stacklevel=2)
    return current_threads()


XLA_SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false"


def _xla_started() -> bool:
    """Whether JAX has started its XLA client (after which its thread pool is fixed)."""
    import sys

    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def _set_xla_threads(n: int) -> None:
    """XLA's CPU client (the JAX tiers) sizes its thread pool once, when it starts, from the
    cores it may use; the one count it can be given is 1, through XLA_FLAGS
    (--xla_cpu_multi_thread_eigen=false; JAX offers no other thread setting, jax-ml/jax
    issues 743 and 1539). So n = 1 adds that flag before the client starts and n > 1 removes
    it; once started, the pool stays as it is, and thread_counts() reports what it runs."""
    if _xla_started():
        return
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if f != XLA_SINGLE_THREAD]
    if n == 1:
        flags.append(XLA_SINGLE_THREAD)
    if flags:
        os.environ["XLA_FLAGS"] = " ".join(flags)
    else:
        os.environ.pop("XLA_FLAGS", None)


def thread_counts() -> dict[str, int]:
    """What each loaded library uses now: threadpoolctl's view of every BLAS/OpenMP pool
    ("<api>:<library file>"), plus Numba's and torch's own counts (if imported)."""
    import sys

    from threadpoolctl import threadpool_info

    out = {}
    for pool in threadpool_info():
        lib = os.path.basename(pool.get("filepath", "")) or pool.get("prefix", "?")
        out[f"{pool['internal_api']}:{lib}"] = int(pool["num_threads"])
    if "numba" in sys.modules:
        out["numba"] = int(sys.modules["numba"].get_num_threads())
    if "torch" in sys.modules:
        out["torch"] = int(sys.modules["torch"].get_num_threads())
    if _xla_started():  # XLA's pool: one thread with the flag, else every core it may use
        single = XLA_SINGLE_THREAD in os.environ.get("XLA_FLAGS", "").split()
        out["xla"] = 1 if single else available_cores()
    return out


LIBRARY_LABELS = (("openblas", "OpenBLAS"), ("mkl", "MKL"), ("blis", "BLIS"),
                  ("openmp", "OpenMP"), ("numba", "Numba"), ("torch", "torch"), ("xla", "XLA"))


def describe_threads(counts: dict[str, int]) -> str:
    """thread_counts() for a person: "OpenBLAS 2, OpenMP 2, Numba 2, torch 2" (one entry per
    library kind; two copies of one kind that disagree show both counts, "OpenBLAS 2/1")."""
    by_label: dict[str, list[int]] = {}
    for key, n in counts.items():
        api = key.split(":", 1)[0].lower()
        label = next((lab for k, lab in LIBRARY_LABELS if api == k), key.split(":")[-1])
        by_label.setdefault(label, [])
        if n not in by_label[label]:
            by_label[label].append(n)
    return ", ".join(f"{label} {'/'.join(map(str, ns))}" for label, ns in by_label.items())


def current_threads(library: str | None = None) -> int:
    """The thread count a tier runs with now: `library`'s own pool where the tier names
    one (the JAX tiers: "xla"), else the largest count of the other pools, XLA's left out
    (it serves only the JAX tiers and cannot be resized once started). They agree after
    set_threads; set_threads warns when one does not."""
    counts = thread_counts()
    if library is not None and library in counts:
        return counts[library]
    return max((c for lib, c in counts.items() if lib != "xla"), default=1)
