"""The hidden width is a parameter: every tier at irregular widths against the oracle."""

import numpy as np
import pytest

from implementations.checks import assert_close, random_batch
from implementations.experiment import init_params
from implementations.oracle import oracle_step
from implementations.registry import TIERS, build_model
from implementations.training import train
from mnist_tiers.cli import main

WIDTHS = (1, 5, 33, 300)
LR = 0.1


@pytest.mark.parametrize("h", WIDTHS, ids=lambda h: f"H={h}")
@pytest.mark.parametrize("tier", list(TIERS))
def test_one_train_step_at_irregular_widths(tier, h):
    """Widths that are no multiple of any tile (numba-fused's 4-row and 2-column tiles,
    the matmuls' 2 x 4 and 4 x 2 register tiles) and H = 1."""
    if not TIERS[tier].available:
        pytest.skip(TIERS[tier].unavailable_reason)
    params = init_params(3, h=h)
    x, y = random_batch(13, 784, 10, seed=h)
    ref = oracle_step(params, x, y, "relu", LR)
    m = build_model(tier, params, "relu")
    X, Y = m.prepare(x, y)
    xb, yb = m.take(X, Y, np.arange(13))
    assert_close(f"{tier} H={h} loss", float(m.forward(xb, yb)), ref["loss"])
    m.train_step(xb, yb, LR)
    for name, w in m.weights().items():
        assert w.shape == ref[name].shape
        assert_close(f"{tier} H={h} updated {name}", w, ref[name])


@pytest.mark.parametrize("tier", ["numba", "numba-fused", "torch-cpu"])
def test_one_epoch_at_width_300_matches_numpy(tier):
    """`train --tier T --hidden 300 --limit 2000 --epochs 1`: the loss of numpy to 1e-4."""
    got = train(tier, epochs=1, limit=2000, hidden=300)
    ref = train("numpy", epochs=1, limit=2000, hidden=300)
    assert got.hidden == 300
    assert abs(got.train_loss[0] - ref.train_loss[0]) / ref.train_loss[0] < 1e-4


@pytest.mark.parametrize("value, words", [("0", "must be a whole number >= 1, got '0'"),
                                          ("-5", "must be a whole number >= 1"),
                                          ("2.5", "must be a whole number >= 1, got '2.5'")])
def test_bad_widths_are_refused(capsys, value, words):
    with pytest.raises(SystemExit):
        main(["train", "--tier", "numpy", "--hidden", value])
    assert f"argument --hidden: {words}" in capsys.readouterr().err
