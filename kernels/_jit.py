"""Numba settings shared by the compiled tiers: fastmath flag sets and a safe on-disk cache.

Numba keys a cached function by its own file only (path, size, mtime), so a caller cached
before a kernel it inlines from another file changed (numba_fused inlines
numba_cpu.nt_kernel) would be loaded stale. The cache folder is therefore keyed by
everything that can change the compiled code: the content of every kernels/*.py file, the
Numba, llvmlite and Python versions and the NUMBA_* settings that change code generation.
Its root is $NUMBA_CACHE_DIR when the user set one, else $XDG_CACHE_HOME (or ~/.cache)
/mnist-tiers/numba; the key is always a subfolder, so no setting reuses a stale entry.

A damaged entry heals: a truncated data file (.nbc) or an empty or cut index (.nbi), left
by a killed process or a full disk, would make every later run fail with an UnpicklingError
or EOFError inside Numba. At import the entries written since the last check are read as
pickle streams (without building them: ~0.2 ms per file); a damaged one is removed (an
index with its data files), so Numba compiles that kernel again and writes a whole entry,
and one CacheWarning names the folder.

Forking after a parallel kernel ran: with Numba's GNU OpenMP threading layer ("omp", the one
chosen here when present) a child created by fork() after any parallel kernel ran aborts
("fork() called from a process already using GNU OpenMP"): libgomp is not fork-safe.
subprocess is unaffected (it execs at once); multiprocessing must use the "spawn" or
"forkserver" context (torch-ddp does), or set NUMBA_THREADING_LAYER=workqueue before Python
starts. A fork() hook (`os.register_at_fork`) says so on stderr, naming the fix, before
such a child dies.

No cache is required: when that folder cannot be written (read-only HOME, say), CACHE is
False, every kernel compiles in each process, and one CacheWarning says so. Numba is never
left to fall back to `kernels/__pycache__`, which is keyed by file alone. Kernels pass
`cache=CACHE` instead of `cache=True`. Import this module before defining any kernel.
"""

import hashlib
import io
import os
import pickle
import pickletools
import platform
import sys
import warnings
from pathlib import Path

import llvmlite
import numba

FMA = {"contract"}  # fused multiply-add only: rounding-level differences
FMA_REASSOC = {"contract", "reassoc"}  # also reassociate sums, so reductions vectorize

# settings read at compile time that change the machine code (Numba's own index keys the
# signature and the target CPU, not these)
CODEGEN_SETTINGS = ("NUMBA_OPT", "NUMBA_BOUNDSCHECK", "NUMBA_DEBUGINFO", "NUMBA_FASTMATH",
                    "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "NUMBA_LOOP_VECTORIZE",
                    "NUMBA_SLP_VECTORIZE", "NUMBA_ENABLE_AVX", "NUMBA_THREADING_LAYER")


class CacheWarning(UserWarning):
    """The compile cache cannot be used; the kernels compile in every process."""


def cache_key(kernel_dir: Path = Path(__file__).parent) -> str:
    """16 hex digits over every input that can change the compiled kernels."""
    h = hashlib.sha256()
    for path in sorted(Path(kernel_dir).glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(f"numba {numba.__version__} llvmlite {llvmlite.__version__} "
             f"python {platform.python_version()} {platform.machine()}".encode())
    for name in CODEGEN_SETTINGS:
        h.update(f"{name}={os.environ.get(name, '')}".encode())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    """$NUMBA_CACHE_DIR if set, else $XDG_CACHE_HOME/mnist-tiers/numba (~/.cache/...)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(home) / "mnist-tiers" / "numba"


def cache_dir() -> Path:
    return cache_root() / cache_key()


def usable(folder: Path) -> str | None:
    """None when `folder` can be created and written, else the reason why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"{folder} is not writable ({exc.strerror or exc})"
    return None


CHECKED_MARK = ".checked"  # touched after each check: older entries were whole then


def _whole(path: Path) -> bool:
    """Whether a Numba cache file is a complete pickle stream (an index: a pickled version
    followed by a pickled (stamp, overloads); data: one pickle). Nothing is unpickled but the
    index's version string; the rest is only walked opcode by opcode."""
    try:
        data = path.read_bytes()
        if path.suffix == ".nbi":
            stream = io.BytesIO(data)
            pickle.load(stream)  # the Numba version string
            data = stream.read()
        if not data:
            return False
        for _ in pickletools.genops(data):
            pass
        return True
    except FileNotFoundError:
        return True  # removed by another process meanwhile: nothing to heal
    except Exception:  # EOFError, UnpicklingError, ValueError: a truncated or foreign file
        return False


def heal(folder: Path) -> list[Path]:
    """Remove damaged entries of the cache `folder` (see the module docstring); returns the
    files removed. Entries older than the last check are skipped (they were whole then, and
    Numba replaces files atomically)."""
    mark = folder / CHECKED_MARK
    try:
        since = mark.stat().st_mtime - 2.0
    except OSError:
        since = 0.0
    removed = []
    for path in sorted(folder.rglob("*.nb[ci]")):
        try:
            if path.stat().st_mtime < since or _whole(path):
                continue
        except OSError:
            continue
        doomed = [path]
        if path.suffix == ".nbi":  # its data files: <stem>.<n>.nbc beside it
            doomed += sorted(path.parent.glob(path.stem + ".*.nbc"))
        for f in doomed:
            try:
                f.unlink()
                removed.append(f)
            except FileNotFoundError:
                pass
    try:
        mark.touch()
    except OSError:
        pass
    return removed


def _configure() -> tuple[bool, str]:
    folder = cache_dir()
    reason = usable(folder)
    if reason is None:
        numba.config.CACHE_DIR = str(folder)
        removed = heal(folder)
        if removed:
            warnings.warn(f"the Numba compile cache in {folder} held {len(removed)} damaged "
                          f"file(s) (cut short or empty); removed them, so those kernels "
                          f"compile again once and are cached whole", CacheWarning,
                          stacklevel=3)
        return True, f"compile cache in {folder}"
    message = (f"no compile cache: {reason}; the Numba kernels compile in every process. "
               f"Set NUMBA_CACHE_DIR or XDG_CACHE_HOME to a writable folder to keep them.")
    warnings.warn(message, CacheWarning, stacklevel=3)
    return False, message


CACHE, CACHE_STATUS = _configure()


FORK_HAZARD = ("fork() after a Numba parallel kernel ran on the GNU OpenMP threading layer: "
               "the child process aborts (libgomp is not fork-safe). Start processes with "
               "multiprocessing.get_context('spawn') (or 'forkserver'), or set "
               "NUMBA_THREADING_LAYER=workqueue before Python starts.")


def fork_hazard() -> str | None:
    """FORK_HAZARD when a fork() now would kill the child (see the module docstring)."""
    try:
        from numba.np.ufunc import parallel

        if not parallel._is_initialized or numba.threading_layer() != "omp":
            return None
    except Exception:  # noqa: BLE001 - no threading layer started: no hazard
        return None
    return FORK_HAZARD


def _before_fork() -> None:
    message = fork_hazard()
    if message:
        sys.stderr.write(f"mnist-tiers: {message}\n")
        sys.stderr.flush()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork)
