"""The registry's facts and its one way to resolve a tier; every setting's one rule."""

import argparse
import re
import subprocess
from pathlib import Path

import pytest

from implementations import settings
from implementations.registry import (
    LAUNCH_FLOORS,
    TIERS,
    TierError,
    names,
    resolve,
    select,
)
from implementations.settings import SettingError

REPO = Path(__file__).resolve().parent.parent


def test_select_by_facts():
    assert names(select(family="scratch", device="cpu")) == ["loops", "numpy", "numba",
                                                              "numba-fused"]
    assert all(t.device == "cuda" for t in select(launch_floor=True))
    assert {t.framework for t in select(family="framework")} == {"torch", "jax"}
    assert names(select(device="cpu", processes=True)) == ["torch-ddp"]


def test_every_fact_is_consistent():
    for t in TIERS.values():
        assert t.device in ("cpu", "cuda") and t.family in ("scratch", "framework")
        assert t.baseline is None or t.baseline in TIERS, t.name
        assert t.launch_floor is None or t.launch_floor in LAUNCH_FLOORS, t.name
        assert t.default_format in t.formats
        assert t.fast or (t.max_batch and t.epoch_samples and t.flops_per_second), t.name


@pytest.mark.parametrize("kwargs, words", [
    ({"name": "nope"}, "unknown tier 'nope'; known tiers: loops, numpy"),
    ({"name": "loops", "dtype": "float32"}, "tier 'loops' does not compute in float32; it "
                                            "supports float64"),
    ({"name": "numpy", "loader": "dataloader"}, "tier 'numpy' takes batches only resident; "
                                                "the dataloader loader applies to torch-cpu"),
    ({"name": "numpy", "procs": 2}, "tier 'numpy' runs in one process; worker processes "
                                    "apply to torch-ddp"),
])
def test_resolve_refuses_with_one_error_type(kwargs, words):
    with pytest.raises(TierError, match=re.escape(words)):
        resolve(**kwargs)


def test_no_tier_name_is_tested_outside_the_registry():
    """The registry is the one place that knows a tier: no tier-name literal or prefix test
    in the package's code outside it (library names such as the numpy or numba packages
    and JSON keys are not tier names, and are listed here by what they are)."""
    tiers = "|".join(re.escape(n) for n in sorted(TIERS, key=len, reverse=True))
    pattern = re.compile(rf"""["']({tiers})["']|startswith\(["'](torch|numba|numpy|loops)""")
    library_names = re.compile(r"""(import|modules|mod in|for name in|out\["numba"\]|"numpy": np"""
                               r"""|/ "numba"|\("scipy|, "Numba"\))""")
    hits = []
    for folder in ("kernels", "implementations", "bench", "profiles", "mnist_tiers"):
        for path in (REPO / folder).rglob("*.py"):
            if path.name == "registry.py" or "results" in path.parts:
                continue
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and not library_names.search(line):
                    hits.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_import_graph_has_no_arrow_up():
    """kernels <- implementations <- bench, profiles <- mnist_tiers: no module imports from
    a higher floor (bench and profiles share a floor)."""
    floor = {"kernels": 0, "implementations": 1, "bench": 2, "profiles": 2, "mnist_tiers": 3}
    bad = []
    for top, level in floor.items():
        for path in (REPO / top).rglob("*.py"):
            for m in re.finditer(r"^\s*(?:from|import) (\w+)", path.read_text(), re.M):
                target = floor.get(m.group(1))
                if target is not None and target > level:
                    bad.append(f"{path.relative_to(REPO)} imports {m.group(1)}")
    assert not bad, bad


@pytest.mark.parametrize("setting, value, words", [
    ("batch_size", 0, "batch_size must be a whole number >= 1, got 0"),
    ("batch_size", True, "batch_size must be a whole number >= 1, got True"),
    ("lr", float("nan"), "lr must be a finite number > 0, got nan"),
    ("seed", -1, "seed must be a whole number >= 0, got -1"),
    ("runs", 2, "runs must be a whole number >= 3, got 2"),
    ("batch_sizes", [1, 0], "batch_sizes takes whole numbers >= 1 separated by commas"),
])
def test_the_library_names_the_setting(setting, value, words):
    with pytest.raises(SettingError, match=re.escape(words)) as err:
        settings.check(setting, value)
    assert err.value.for_flag().startswith(settings.flag(setting) + " ")


def test_command_lines_name_the_flag():
    convert = settings.argparse_type("batch_sizes")
    assert convert("1, 64,1024") == [1, 64, 1024]
    with pytest.raises(argparse.ArgumentTypeError, match="got '1,x'"):
        convert("1,x")
    with pytest.raises(SettingError) as err:
        settings.parse("hidden", "0")
    assert err.value.for_flag() == "--hidden must be a whole number >= 1, got '0'"
    assert settings.parse("limit", None) is None and settings.parse("epochs", None) == 10


def test_the_cli_names_the_flag_of_a_library_setting_error(capsys, monkeypatch):
    from mnist_tiers import cli

    def refuse(*args, **kwargs):
        raise SettingError("batch_size", "must be a whole number >= 1", 0)

    monkeypatch.setattr(cli, "train", refuse)
    assert cli.main(["train", "--tier", "numpy"]) == 2
    assert "mnist-tiers: --batch-size must be a whole number >= 1, got 0" in \
        capsys.readouterr().err


def test_the_makefile_reads_its_defaults_from_the_registry():
    text = (REPO / "Makefile").read_text()
    defaults = [line for line in text.splitlines()
                if re.match(r"(REF_TIERS|REF_FORMATS|WIDTH_TIER) \?=", line)]
    assert len(defaults) == 3 and all("REGISTRY" in line for line in defaults), defaults
    out = subprocess.run(["make", "-n", "train-reference"], cwd=REPO, capture_output=True,
                         text=True).stdout
    assert ("for t in numpy numba numba-fused torch-cpu torch-cpu-compile torch-ddp jax "
            "jax-scan;") in out


def test_a_probe_that_raises_makes_one_tier_unavailable(monkeypatch, capsys):
    """TORCHINDUCTOR_CACHE_DIR=/proc/x made torch-cpu-compile's probe raise, and `tiers`
    stopped listing there: a raising probe is that tier's reason, naming the variable."""
    from implementations.registry import Tier, register, scratch_model, unregister
    from mnist_tiers.cli import main

    def broken():
        raise FileNotFoundError(2, "No such file or directory", "/proc/x")

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/proc/x")
    register(Tier("probe-raises", "a tier whose probe raises", "cpu",
                  scratch_model("kernels.vectorized", "probe-raises"), check=broken))
    try:
        reason = TIERS["probe-raises"].unavailable_reason
        assert reason.startswith("its availability check failed: FileNotFoundError")
        assert "TORCHINDUCTOR_CACHE_DIR=/proc/x" in reason
        # the listing goes on past it (without the variable: under it the real
        # torch.compile probe would leave torch._dynamo half-imported in this test process)
        monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
        assert main(["tiers"]) == 0
        out = capsys.readouterr().out
        assert all(name in out for name in TIERS), out
    finally:
        unregister("probe-raises")
