"""The project's own files: quiet set-up, dependency floors the code really needs."""

import tomllib
import warnings
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from profiles import scalene_run

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def floors() -> dict[str, Version]:
    out = {}
    for spec in PYPROJECT["project"]["dependencies"]:
        req = Requirement(spec)
        for s in req.specifier:
            if s.operator in (">=", "=="):
                out[req.name] = Version(s.version)
    return out


def test_setuptools_reads_the_project_without_deprecation_warnings():
    """The editable install printed setuptools' `project.license` banner three times."""
    setuptools = pytest.importorskip("setuptools")
    if Version(setuptools.__version__) < Version("77"):
        pytest.skip(f"setuptools {setuptools.__version__} here; the build uses >= 77 (pip "
                    f"installs it in an isolated build environment)")
    from setuptools.config.pyprojecttoml import read_configuration

    assert isinstance(PYPROJECT["project"]["license"], str)  # SPDX expression
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_configuration(REPO / "pyproject.toml")
    backend = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    setuptools_floor = next(r for r in backend if r.name == "setuptools")
    assert Version("77") in setuptools_floor.specifier  # SPDX license strings: 77+
    assert not any(Version(v) in setuptools_floor.specifier for v in ("68", "76.1"))


# Floors found by installing them (Python 3.11, 2026-12-01): every floor below ran the
# kernel, data, training and benchmark-option tests; older versions failed as noted.
NEEDED = {
    "numpy": ("1.26", "ran"), "numba": ("0.60", "ran"), "scipy": ("1.11", "ran"),
    "threadpoolctl": ("3.1", "ran"), "matplotlib": ("3.8", "ran"), "tqdm": ("4.66", "ran"),
    # <= 5.2.3 opens --benchmark-json with argparse.FileType: a missing folder is an error
    # before any plugin can create it
    "pytest-benchmark": ("5.3", "5.2.3: can't open --benchmark-json in a new folder"),
    "pytest": ("8.1.1", "pytest-benchmark 5.3 requires pytest >= 8.1 (8.1.0 yanked)"),
    "scalene": (scalene_run.MIN_VERSION, "1.5.55: no run/view subcommands"),
    # the version on the GPU machine (the only one its kernels ran on); [cu13] carries NVVM
    "numba-cuda": ("0.30.4", "the GPU machine's numba-cuda; PTX and simulator tests ran"),
}


@pytest.mark.parametrize("name", sorted(NEEDED))
def test_floors_are_the_versions_the_code_needs(name):
    assert floors()[name] == Version(NEEDED[name][0]), NEEDED[name][1]


def test_scalene_floor_is_what_the_profiles_need():
    """pyproject allowed scalene>=1.5, whose command line has no run/view subcommands."""
    assert floors()["scalene"] == Version(scalene_run.MIN_VERSION)


def test_too_old_scalene_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(scalene_run, "installed_version", lambda: "1.5.55")
    with pytest.raises(scalene_run.ScaleneMissing,
                       match=r"scalene 1\.5\.55 is installed.*scalene>=2\.3"):
        scalene_run.scalene_cmd()
