"""The oracle: the float64 NumPy train step every tier and fused kernel is checked against."""

import numpy as np

from implementations.models.scratch import ScratchMLP
from kernels import vectorized


def oracle_step(params, x, y, activation, lr):
    """The float64 NumPy train step: logits, loss, gradients and updated weights."""
    m = ScratchMLP(vectorized, params, activation, dtype=np.float64, name="oracle")
    x64 = np.asarray(x, dtype=np.float64)
    loss = m.forward(x64, y)
    logits = m.logits()
    m.backward()
    grads = m.gradients()
    m.update(lr)
    return {"loss": loss, "logits": logits, **grads, **m.weights()}
