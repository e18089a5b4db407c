"""scalene on a CPU tier: line-level CPU time (Python vs native) of the profile workload.

`scalene run --cpu-only` profiles `python -m profiles.workload` for one tier (its train
steps only: the set-up runs with profiling off), then
`scalene view --standalone` writes a self-contained HTML (opens offline); the text view is
ours, written from scalene's JSON (every line with at least MIN_SHARE % of the time, in full,
whatever the terminal's width). Memory profiling is opt-in (memory=True) and
runs fewer steps: scalene's memory mode slows a NumPy training loop by ~200x.
"""

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from implementations.fileio import atomic_write
from implementations.registry import TIERS

REPO = Path(__file__).resolve().parent.parent
# The oldest scalene with everything the command lines below use: the `run`/`view`
# subcommands (2.0), `view --standalone` (2.1) and `run --no-stacks` (2.3). pyproject's
# floor is this same version (a test keeps them equal).
MIN_VERSION = "2.3"
ATTRIBUTION_NOTE = (
    "scalene samples the Python line being executed; time spent inside a native call "
    "(a BLAS matmul, a compiled kernel) can be credited to the line after the call, so a "
    "cheap line right after a matmul may show the matmul's time. The phase breakdown (our "
    "own timers around each op) says which op took the time.")
MIN_SHARE = 0.5  # % of the CPU time: lines below it are left out of the text view


class ScaleneMissing(RuntimeError):
    pass


def installed_version() -> str | None:
    try:
        return metadata.version("scalene")
    except metadata.PackageNotFoundError:
        return None


def scalene_cmd() -> list[str]:
    """The scalene executable; ScaleneMissing (with the fix) if absent or too old."""
    from packaging.version import Version

    exe = shutil.which("scalene") or str(Path(sys.executable).with_name("scalene"))
    if not Path(exe).exists():
        raise ScaleneMissing(
            "scalene is not installed in this environment; install it with "
            f"`pip install 'scalene>={MIN_VERSION}'` (it is a dependency of this project: "
            "`make profile` installs it), or profile with --no-scalene.")
    version = installed_version()
    if version is not None and Version(version) < Version(MIN_VERSION):
        raise ScaleneMissing(
            f"scalene {version} is installed, but the profiles use scalene >= {MIN_VERSION}'s "
            f"command line (run/view, --standalone, --no-stacks); upgrade with "
            f"`pip install 'scalene>={MIN_VERSION}'`, or profile with --no-scalene.")
    return [exe]


def profile(tier: str, out_dir: Path, steps: int | None = None,
            memory: bool = False) -> dict[str, Path]:
    steps = steps or TIERS[tier].profile.scalene_steps
    if memory:
        steps = max(1, steps // 20)
    exe = scalene_cmd()
    work = out_dir / "scalene"
    work.mkdir(parents=True, exist_ok=True)
    stem = f"scalene-{tier}"
    json_path = work / f"{stem}.json"
    mode = ["--memory"] if memory else ["--cpu-only"]
    # --off + --scalene-window: set-up (data loading, compilation) is not profiled
    run = [*exe, "run", *mode, "--off", "--no-stacks", "--program-path", str(REPO),
           "-o", str(json_path), str(REPO / "profiles" / "workload.py"), "---",
           "--tier", tier, "--steps", str(steps), "--scalene-window"]
    _check(subprocess.run(run, cwd=REPO, capture_output=True, text=True), "scalene run")
    _check(subprocess.run([*exe, "view", "--standalone", json_path.name], cwd=work,
                          capture_output=True, text=True), "scalene view --standalone")
    html = work / f"{stem}.html"
    (work / "scalene-profile.html").replace(html)
    text = out_dir / f"{stem}.txt"
    atomic_write(text, text_view(json.loads(json_path.read_text()), tier, steps))
    return {"json": json_path, "html": html, "text": text}


def text_view(doc: dict, tier: str, steps: int) -> str:
    """scalene's JSON as plain text: per file (paths relative to the repository), every
    line with at least MIN_SHARE % of the CPU time: Python %, native %, system % and the
    whole source line; then the lines that took the most time, computed from this run."""
    rows = []
    for fname, f in doc.get("files", {}).items():
        for ln in f.get("lines", []):
            py, nat, sys_ = (ln.get("n_cpu_percent_python", 0.0), ln.get("n_cpu_percent_c", 0.0),
                             ln.get("n_sys_percent", 0.0))
            if py + nat + sys_ >= MIN_SHARE:
                rows.append((fname.replace(f"{REPO}/", ""), ln["lineno"], py, nat, sys_,
                             ln.get("line", "").rstrip()))
    out = [f"scalene --cpu-only, tier {tier}, {steps} train steps at batch 64 "
           f"({doc.get('elapsed_time_sec', 0):.1f} s profiled)", f"Note: {ATTRIBUTION_NOTE}", ""]
    for fname in dict.fromkeys(r[0] for r in rows):
        out += [fname, f"{'line':>6}  {'Python':>6}  {'native':>6}  {'system':>6}  code"]
        out += [f"{n:>6}  {py:>5.0f}%  {nat:>5.0f}%  {sy:>5.0f}%  {code}"
                for f, n, py, nat, sy, code in sorted(rows) if f == fname]
        out.append("")
    top = sorted(rows, key=lambda r: -(r[2] + r[3] + r[4]))[:3]
    if top:
        out.append("Most time in this run: " + "; ".join(
            f"{r[0]}:{r[1]} `{r[5].strip()}` {r[2] + r[3] + r[4]:.0f}%" for r in top))
    return "\n".join(out) + "\n"


def _check(proc, what):
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout)[-800:]}")
