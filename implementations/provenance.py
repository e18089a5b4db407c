"""What a result came from: the machine and the code version, recorded in every JSON.

`code_version()` reads the checkout's git commit and whether tracked files differ from it
(dirty); outside a git checkout (an installed package) it records the package version
instead. `stamp()` is the block every result file carries under "provenance": machine name,
CPU, GPU, code version and the UTC time it was recorded. Readers label a result by its
recorded machine, never by the folder it was found in.
"""

import datetime
import subprocess
from functools import cache
from importlib import metadata

from implementations.paths import REPO

RESULT_FOLDERS = ("bench/results", "profiles/reports")  # committed results, not code
GIT_SECONDS = 10  # a git call on a huge or network checkout: give up rather than hang


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                              text=True, timeout=GIT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@cache
def code_version() -> dict:
    """{"commit": 40 hex digits or None, "dirty": bool or None, "package": version}.

    dirty: True when a tracked file outside RESULT_FOLDERS differs from the commit
    (untracked files such as out/ are not counted); None (and commit None) outside a git
    checkout or without git.
    """
    try:
        package = metadata.version("mnist-tiers")
    except metadata.PackageNotFoundError:
        package = None
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return {"commit": None, "dirty": None, "package": package}
    # the results this checkout commits are data, not code: writing them does not make
    # the code that wrote the next one "dirty"
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  *(f":(exclude){p}" for p in RESULT_FOLDERS))
    return {"commit": commit, "dirty": None if status is None else bool(status),
            "package": package}


def describe_code(code: dict | None) -> str:
    """A short label: "1a2b3c4", "1a2b3c4 (dirty)", "package 0.1.0" or "unknown"."""
    if not code:
        return "unknown"
    if code.get("commit"):
        return code["commit"][:7] + (" (dirty)" if code.get("dirty") else "")
    return f"package {code['package']}" if code.get("package") else "unknown"


def stamp() -> dict:
    """The provenance block of a result file: machine, cpu, gpu, code, recorded (UTC)."""
    from implementations.machine import cpu_model, gpu_name, machine_name

    return {"machine": machine_name(), "cpu": cpu_model(), "gpu": gpu_name(),
            "code": code_version(),
            "recorded": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


def record(guard=None) -> dict:
    """The keys every result JSON carries: {"provenance": stamp(), "machine_state": the
    NoiseGuard's state (None when the run was not guarded)}."""
    return {"provenance": stamp(), "machine_state": guard.finish() if guard else None}
