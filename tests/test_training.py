"""The training loop on real MNIST: learning, agreement of loops and numpy, divergence."""

import json

import pytest

from implementations.experiment import epoch_batches
from implementations.training import DivergedError, train
from mnist_tiers.cli import main


def test_batch_order_is_shared_and_keeps_the_partial_batch():
    b = epoch_batches(60000, 64, seed=0, epoch=0)
    assert len(b) == 938 and len(b[-1]) == 32
    assert (b[5] == epoch_batches(60000, 64, 0, 0)[5]).all()
    assert not (b[0] == epoch_batches(60000, 64, 0, 1)[0]).all()


def test_numpy_one_epoch_reaches_90_percent():
    r = train("numpy", epochs=1)
    print(f"numpy 1 epoch: {r.test_accuracy[0]:.4f}, {r.epoch_seconds[0]:.3f} s")
    assert r.test_accuracy[0] >= 0.90


def test_loops_matches_numpy_on_a_small_run():
    kw = dict(epochs=1, limit=96, batch_size=32, activation="sigmoid")
    loops, numpy = train("loops", **kw), train("numpy", **kw)
    rel = abs(loops.train_loss[0] - numpy.train_loss[0]) / numpy.train_loss[0]
    print(f"loss loops {loops.train_loss[0]:.8f} numpy {numpy.train_loss[0]:.8f} rel {rel:.1e}")
    assert rel < 1e-4


def test_divergence_names_epoch_and_step():
    with pytest.raises(DivergedError, match=r"epoch 1, step \d+.*--lr"):
        train("numpy", epochs=1, lr=1e4, limit=6400)


def test_cli_train_json(capsys):
    assert main(["train", "--tier", "numpy", "--epochs", "1", "--limit", "640", "--json",
                 "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("tier", "activation", "batch_size", "epochs", "seed", "epoch_seconds",
                "test_accuracy", "train_loss", "samples_per_second", "compile_seconds",
                "threads"):
        assert key in out
    assert out["tier"] == "numpy" and len(out["test_accuracy"]) == 1


def test_cli_tiers_lists_descriptions(capsys):
    assert main(["tiers"]) == 0
    out = capsys.readouterr().out
    assert "loops" in out and "pure Python" in out and "numpy" in out


@pytest.mark.parametrize("tier", ["numba", "numba-fused", "torch-cpu"])
def test_one_epoch_accuracy_matches_numpy(tier):
    ref = train("numpy", epochs=1).test_accuracy[0]
    got = train(tier, epochs=1).test_accuracy[0]
    print(f"1 epoch: {tier} {got:.4f} vs numpy {ref:.4f}")
    assert abs(got - ref) <= 0.003
