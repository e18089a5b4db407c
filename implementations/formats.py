"""Number formats: what each means, how a tier computes in it, and the tolerance it earns.

    float64    IEEE double: storage and arithmetic (the oracle's format)
    float32    IEEE single: storage and arithmetic (the default)
    bfloat16   PyTorch autocast: weights, gradients and the optimizer stay float32 (master
               weights); matmuls round their operands to bfloat16 (8-bit significand) and
               accumulate in float32; the loss is computed in float32
    float16    the same with float16 (11-bit significand) on CUDA, with a gradient scaler
    tf32       float32 storage; CUDA matmuls round operands to TF32 (11-bit significand)

The tolerance of a check against the float64 oracle is derived from the format's unit
roundoff u (2^-53, 2^-24, 2^-8, 2^-11, 2^-11): one rounded product earns 8 sqrt(D) u in the
formats that accumulate in their own precision (float64, float32: the probabilistic bound of
a D-term sum, D = 784 the network's longest; Higham and Mary, SIAM J. Sci. Comput. 41(5),
2019) and 8 u in those that only round the operands and accumulate in float32 (bfloat16,
float16, tf32); a weight update passes through 4 such products (two forward, two backward),
so rtol = 4 x that. It is relative to the size of the quantity checked (its largest
magnitude), so it is as strict for a gradient of 1e-3 as for a logit of 3; float32 keeps
the elementwise F32 floor of implementations.checks as well, which checks near zero need.
bfloat16's tolerance comes out at 12.5% of the largest value: that is what 8 bits of
significand allow after four products, and the benchmarks record the actual deviation.
"""

from dataclasses import dataclass

import numpy as np

from implementations.experiment import D

DEFAULT = "float32"
PRODUCTS = 4  # rounded products between the weights and their update (2 forward, 2 backward)


@dataclass(frozen=True)
class Format:
    name: str
    unit_roundoff: float
    accumulates_in_format: bool  # False: operands rounded, sums in float32 (autocast)
    description: str

    @property
    def rtol(self) -> float:
        growth = np.sqrt(D) if self.accumulates_in_format else 1.0
        return float(PRODUCTS * 8 * growth * self.unit_roundoff)


FORMATS = {f.name: f for f in (
    Format("float64", 2.0**-53, True, "IEEE double precision throughout"),
    Format("float32", 2.0**-24, True, "IEEE single precision throughout"),
    Format("bfloat16", 2.0**-8, False, "autocast: bfloat16 matmul operands, float32 master "
           "weights, accumulation and loss"),
    Format("float16", 2.0**-11, False, "autocast: float16 matmul operands with a gradient "
           "scaler, float32 master weights"),
    Format("tf32", 2.0**-11, False, "float32 storage, TF32 matmul operands (CUDA)"),
)}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown number format {name!r}; known: {', '.join(FORMATS)}"
                         ) from None


def numpy_dtype(name: str):
    """The NumPy dtype that stores a format's values (float32 for the autocast formats)."""
    return np.float64 if name == "float64" else np.float32


def tolerance(name: str, want) -> dict:
    """{rtol, atol} for checking a result in format `name` against the float64 `want`:
    atol = rtol * max |want| (norm-wise, see the module docstring), with the elementwise
    F32 floor for float32 and every format coarser than it."""
    from implementations.checks import F32

    fmt = get_format(name)
    scale = float(np.max(np.abs(want))) if np.size(want) else 0.0
    rtol, atol = fmt.rtol, fmt.rtol * scale
    if fmt.unit_roundoff >= FORMATS["float32"].unit_roundoff:
        rtol, atol = max(rtol, F32["rtol"]), max(atol, F32["atol"])
    return {"rtol": rtol, "atol": atol}
