"""Numba settings shared by the compiled tiers: fastmath flag sets and a safe on-disk cache.

Numba keys a cached function by its own file only (path, size, mtime), so a caller cached
before a kernel it inlines from another file changed (numba_fused inlines
numba_cpu.nt_kernel) would be loaded stale. The cache folder is therefore keyed by
everything that can change the compiled code: the content of every kernels/*.py file, the
Numba, llvmlite and Python versions and the NUMBA_* settings that change code generation.
Its root is $NUMBA_CACHE_DIR when the user set one, else $XDG_CACHE_HOME (or ~/.cache)
/mnist-tiers/numba; the key is always a subfolder, so no setting reuses a stale entry.

No cache is required: when that folder cannot be written (read-only HOME, say), CACHE is
False, every kernel compiles in each process, and one CacheWarning says so. Numba is never
left to fall back to `kernels/__pycache__`, which is keyed by file alone. Kernels pass
`cache=CACHE` instead of `cache=True`. Import this module before defining any kernel.
"""

import hashlib
import os
import platform
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


def _configure() -> tuple[bool, str]:
    folder = cache_dir()
    reason = usable(folder)
    if reason is None:
        numba.config.CACHE_DIR = str(folder)
        return True, f"compile cache in {folder}"
    message = (f"no compile cache: {reason}; the Numba kernels compile in every process. "
               f"Set NUMBA_CACHE_DIR or XDG_CACHE_HOME to a writable folder to keep them.")
    warnings.warn(message, CacheWarning, stacklevel=3)
    return False, message


CACHE, CACHE_STATUS = _configure()
