"""PyTorch tiers: data loaders agree, CUDA tiers refuse cleanly where there is no GPU."""

import numpy as np
import pytest

from implementations.experiment import epoch_batches, init_params
from implementations.models.torch_nn import TorchModel
from implementations.registry import TIERS, TierError, build_model
from mnist_tiers.cli import main

CUDA_TIERS = [t.name for t in TIERS.values() if t.device == "cuda"]


def test_dataloader_epoch_matches_resident_epoch():
    rng = np.random.default_rng(0)
    x = rng.random((200, 784), dtype=np.float32)
    y = rng.integers(0, 10, 200)
    batches = epoch_batches(200, 64, seed=0, epoch=0)
    losses = {}
    for loader in ("resident", "dataloader"):
        m = TorchModel(init_params(0), loader=loader)
        losses[loader] = m.train_epoch(*m.prepare(x, y), batches, 0.1)
        losses[loader + " W1"] = m.weights()["W1"]
    np.testing.assert_allclose(losses["dataloader"], losses["resident"], rtol=1e-6)
    np.testing.assert_allclose(losses["dataloader W1"], losses["resident W1"], rtol=1e-6)


def test_torch_weights_round_trip_transposed():
    p = init_params(3)
    m = build_model("torch-cpu", p)
    assert m.module.fc1.weight.shape == (128, 784)  # nn.Linear stores (out, in)
    for name, w in m.weights().items():
        np.testing.assert_array_equal(w, p[name])


@pytest.mark.parametrize("tier", CUDA_TIERS)
def test_cuda_tier_refused_without_gpu(tier, capsys):
    reason = TIERS[tier].unavailable_reason
    if reason is None:
        pytest.skip("a CUDA GPU is present: the refusal path cannot be exercised here")
    assert main(["train", "--tier", tier, "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "unavailable" in err and "CUDA" in err and "Traceback" not in err
    with pytest.raises(TierError, match=f"tier '{tier}' is unavailable here: "):
        build_model(tier, init_params(0))


def test_tf32_flag_is_cuda_only():
    with pytest.raises(ValueError, match="CUDA tiers only"):
        TorchModel(init_params(0), tf32=True)
