"""Bad input gives a clear error naming the problem."""

import numpy as np
import pytest

from implementations.experiment import init_params
from implementations.registry import build_model, get_tier
from mnist_tiers.cli import main


@pytest.fixture(scope="module")
def model():
    return build_model("numpy", init_params(0))


def good():
    return np.zeros((4, 784), np.float32), np.array([0, 1, 2, 9])


@pytest.mark.parametrize("x, y, error, words", [
    (np.zeros((4, 783), np.float32), None, ValueError, "784 features"),
    (np.zeros(784, np.float32), None, ValueError, "2-D"),
    (np.zeros((4, 784), np.uint8), None, TypeError, "normalize"),
    (None, np.array([0, 1, 2, 10]), ValueError, "0..9"),
    (None, np.array([0, 1, -1, 2]), ValueError, "0..9"),
    (None, np.array([0, 1, 2]), ValueError, r"\(3,\) labels for a batch of 4"),
    (np.full((4, 784), np.nan, np.float32), None, ValueError, "NaN"),
    (np.zeros((0, 784), np.float32), np.zeros(0, np.int64), ValueError, "empty batch"),
    (None, np.array([0.0, 1.0, 2.0, 3.0]), TypeError, "integer"),
], ids=["width", "1-D", "uint8", "label 10", "label -1", "count", "NaN", "empty", "float labels"])
def test_bad_batch(model, x, y, error, words):
    gx, gy = good()
    x = gx if x is None else x
    y = gy if y is None else y
    with pytest.raises(error, match=words):
        model.checked_train_step(x, y, 0.1)


def test_bad_predict_input(model):
    with pytest.raises(ValueError, match="784 features"):
        model.checked_predict(np.zeros((2, 10), np.float32))


def test_good_batch_trains(model):
    assert np.isfinite(model.checked_train_step(*good(), 0.1))


def test_unknown_tier():
    with pytest.raises(ValueError, match="unknown tier 'nope'; known tiers: loops, numpy"):
        get_tier("nope")


def test_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        build_model("numpy", init_params(0), "tanh")


def test_cli_unknown_tier_is_one_line(capsys):
    assert main(["train", "--tier", "nope", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown tier 'nope'" in err and "Traceback" not in err


@pytest.mark.parametrize("args, words", [
    (["--batch-size", "0"], "argument --batch-size: must be a whole number >= 1, got '0'"),
    (["--batch-size", "-64"], "argument --batch-size: must be a whole number >= 1"),
    (["--batch-size", "6.4"], "argument --batch-size: must be a whole number >= 1, got '6.4'"),
    (["--epochs", "0"], "argument --epochs: must be a whole number >= 1"),
    (["--limit", "0"], "argument --limit: must be a whole number >= 1"),
    (["--lr", "0"], "argument --lr: must be a finite number > 0"),
    (["--lr", "nan"], "argument --lr: must be a finite number > 0"),
    (["--lr", "inf"], "argument --lr: must be a finite number > 0"),
    (["--seed", "-1"], "argument --seed: must be a whole number >= 0"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_cli_refuses_values_that_make_no_sense(capsys, args, words):
    """`train --batch-size 0` used to end in a ZeroDivisionError traceback."""
    with pytest.raises(SystemExit) as exc:
        main(["train", "--tier", "numpy", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_profile_refuses_zero_steps(capsys):
    with pytest.raises(SystemExit):
        main(["profile", "--steps", "0"])
    assert "argument --steps: must be a whole number >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, words", [
    ({"batch_size": 0}, "batch_size must be a whole number >= 1, got 0"),
    ({"batch_size": 2.0}, "batch_size must be a whole number"),
    ({"epochs": 0}, "epochs must be"), ({"limit": -5}, "limit must be"),
    ({"seed": -1}, "seed must be"), ({"lr": float("inf")}, "lr must be a finite number"),
    ({"threads": 0}, "threads must be a whole number >= 1"),
    ({"hidden": 0}, "hidden must be a whole number >= 1"),
])
def test_train_api_refuses_values_that_make_no_sense(kwargs, words):
    """The library names the setting as a keyword argument; the CLI names the flag."""
    from implementations.training import train

    with pytest.raises(ValueError, match=words):
        train("numpy", **{"epochs": 1, "limit": 64, **kwargs})
