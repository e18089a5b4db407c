""""Available" means it runs: a tier that cannot run here says why, and is skipped."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(args, **env):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def test_no_cpp_compiler_makes_torch_compile_unavailable():
    """CXX=/nonexistent/g++: `tiers` used to say available, then `train` failed after 12 s
    with InvalidCxxCompiler."""
    bad = {"CXX": "/nonexistent/g++"}
    tiers = _run(["-m", "mnist_tiers.cli", "tiers"], **bad)
    assert tiers.returncode == 0
    lines = tiers.stdout.splitlines()
    state = lines[next(i for i, ln in enumerate(lines) if ln.startswith("torch-cpu-compile"))
                  + 1]
    assert "unavailable: torch.compile needs a working C++ compiler" in state
    assert "/nonexistent/g++" in state
    train = _run(["-m", "mnist_tiers.cli", "train", "--tier", "torch-cpu-compile",
                  "--epochs", "1", "--limit", "64"], **bad)
    assert train.returncode == 2
    assert "unavailable here: torch.compile needs a working C++ compiler" in train.stderr
    assert "Traceback" not in train.stderr
    bench = _run(["-m", "pytest", "bench", "--benchmark-only", "-q", "-rs", "-p",
                  "no:cacheprovider", "-k", "test_pass and torch-cpu-compile and train_step "
                  "and 64"], **bad)
    assert bench.returncode == 0, bench.stdout[-2000:]
    assert "SKIPPED" in bench.stdout and "C++ compiler" in bench.stdout


def test_compiler_that_cannot_build_is_unavailable(tmp_path):
    """A compiler that answers --version but cannot build a program is no compiler."""
    fake = tmp_path / "g++"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'g++ 12' && exit 0\n"
                    "echo 'fatal error: cmath: No such file' >&2; exit 1\n")
    fake.chmod(0o755)
    tiers = _run(["-c", "from implementations.registry import TIERS; "
                        "print(TIERS['torch-cpu-compile'].unavailable_reason)"], CXX=str(fake))
    assert "cannot build a test program: fatal error: cmath" in tiers.stdout, tiers.stderr


def test_an_unusable_inductor_cache_leaves_the_listing_whole():
    """TORCHINDUCTOR_CACHE_DIR=/proc/x: `tiers` stopped after torch-cpu with "No such file
    or directory" (rc 2). Now torch-cpu-compile says why and every tier is listed."""
    from implementations.registry import TIERS

    out = _run(["-m", "mnist_tiers.cli", "tiers"], TORCHINDUCTOR_CACHE_DIR="/proc/x")
    assert out.returncode == 0, out.stderr[-2000:]
    listed = [ln.split()[0] for ln in out.stdout.splitlines() if ln and not ln[0].isspace()]
    assert listed == list(TIERS)
    lines = out.stdout.splitlines()
    state = lines[lines.index(next(ln for ln in lines if ln.startswith("torch-cpu-compile")))
                  + 1]
    assert "unavailable" in state and "TORCHINDUCTOR_CACHE_DIR=/proc/x" in state, state
