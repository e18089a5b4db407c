"""Numba settings shared by the compiled tiers: fastmath flag sets and a safe on-disk cache.

Numba keys a cached function by its own file only, so a caller cached before a kernel it
calls or inlines from another file changed would be loaded stale. The cache directory is
therefore keyed by the content of every kernels/*.py file: any edit starts a fresh cache.
NUMBA_CACHE_DIR, when set by the user, wins. Import this module before any @njit(cache=True).
"""

import hashlib
import os
from pathlib import Path

import numba

FMA = {"contract"}  # fused multiply-add only: rounding-level differences
FMA_REASSOC = {"contract", "reassoc"}  # also reassociate sums, so reductions vectorize


def cache_dir() -> Path:
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "mnist-tiers" / "numba" / h.hexdigest()[:16]


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = str(cache_dir())
