"""Result files read as people really have them: empty, torn, foreign or damaged. Every
error names the file, what is wrong and how to fix it; a damaged optional input (sweep,
alternating, gpu-floor) is left out with a warning and the rest of the report is built."""

import json
import math
import shutil

import pytest

from bench.report.build import build
from bench.report.inputs import ReportInputWarning
from implementations.paths import REFERENCE_BENCH
from mnist_tiers.cli import main

REFERENCE = REFERENCE_BENCH / "intel-xeon-2c"


def _doc():
    return json.loads((REFERENCE / "latest.json").read_text())


def _damaged(tmp_path, name, change):
    path = tmp_path / name
    if callable(change):
        doc = _doc()
        change(doc)
        path.write_text(json.dumps(doc))
    else:
        path.write_text(change)
    return path


CASES = {
    "empty": ("", "the file is empty"),
    "torn": ((REFERENCE / "latest.json").read_text()[:3000], "not valid JSON at line"),
    "a list": ("[]", "a pytest-benchmark JSON is an object, this holds a list"),
    "no sgemm": (lambda d: d["machine_info"]["mnist_tiers"].pop("sgemm_gflops"),
                 "machine_info.mnist_tiers lacks sgemm_gflops"),
    "group null": (lambda d: d["benchmarks"][0].update(group=None), "benchmarks[0] "),
    "NaN mean": (lambda d: d["benchmarks"][3]["stats"].update(mean=math.nan),
                 "has mean nan: a time must be a finite number of seconds > 0"),
    "zero median": (lambda d: d["benchmarks"][3]["stats"].update(median=0.0),
                    "has median 0.0"),
    "foreign": ('{"benchmarks": []}', "not a mnist-tiers benchmark JSON"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_results_file_is_one_line_naming_it(case, tmp_path, capsys):
    change, words = CASES[case]
    path = _damaged(tmp_path, "x.json", change)
    assert main(["report", "--results", str(path), "--train", str(REFERENCE /
                 "train-numpy.json"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mnist-tiers: {path}: ") and words in err, err
    assert "make bench" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "report.md").exists()


def test_a_bad_training_file_names_it(tmp_path, capsys):
    bad = tmp_path / "train.json"
    bad.write_text("epoch 1 ...\n{\"tier\": \"numpy\"}\n")
    assert main(["report", "--results", str(REFERENCE / "latest.json"), "--train", str(bad),
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: a training summary needs" in err and "--json" in err


@pytest.mark.parametrize("name", ["sweep.json", "alternating.json"])
def test_a_torn_optional_input_is_left_out_with_a_warning(name, tmp_path, monkeypatch):
    """A sweep or alternating file cut short: the report warns, naming it, and is built."""
    monkeypatch.setenv("MNIST_TIERS_OUT", str(tmp_path / "out"))
    mine = tmp_path / "out" / "bench" / "intel-xeon-2c"
    mine.mkdir(parents=True)
    shutil.copy(REFERENCE / "latest.json", mine / "latest.json")
    (mine / name).write_text((REFERENCE / name).read_text()[:2000])
    with pytest.warns(ReportInputWarning, match=rf"{mine / name}: not valid JSON .*cut "
                                                 rf"short.*the report is built without it"):
        md = build([mine / "latest.json"], [], tmp_path / "r").read_text()
    assert "## Results on intel-xeon-2c" in md
