"""Every tier against the float64 oracle on one full train step from the same init."""

import numpy as np
import pytest

from implementations.checks import assert_close, random_batch
from implementations.experiment import init_params
from implementations.oracle import oracle_step
from implementations.registry import TIERS, build_model

LR = 0.1


def built(tier_name, params, activation):
    tier = TIERS[tier_name]
    if not tier.available:
        pytest.skip(tier.unavailable_reason)
    return build_model(tier_name, params, activation)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("tier", list(TIERS))
def test_one_train_step_matches_oracle(tier, activation):
    params = init_params(0)
    x, y = random_batch(13, 784, 10, seed=5)
    ref = oracle_step(params, x, y, activation, LR)
    m = built(tier, params, activation)
    X, Y = m.prepare(x, y)
    xb, yb = m.take(X, Y, np.arange(13))
    loss = m.forward(xb, yb)
    assert_close(f"{tier} loss", float(loss), ref["loss"])
    assert_close(f"{tier} logits", m.logits(), ref["logits"])
    if m.has_backward:
        m.backward()
        for name, g in m.gradients().items():
            assert_close(f"{tier} {name}", g, ref[name])
        m.update(LR)
    else:
        m.train_step(xb, yb, LR)
    for name, w in m.weights().items():
        assert_close(f"{tier} updated {name}", w, ref[name])
    assert_close(f"{tier} predict", m.predict(x), oracle_step(
        {k: ref[k] for k in ("W1", "b1", "W2", "b2")}, x, y, activation, LR)["logits"],
        rtol=1e-3, atol=1e-4)
