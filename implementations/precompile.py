"""`python -m implementations.precompile FORMAT`: compile, and cache, every compiled CPU tier
in one number format now, before a test run needs it.

numba-fused's kernels take ~90 s to compile per format on the 2-core reference VM. Run
cold, `make test`'s parallel workers each compiled the same kernels at once (434 s for the
suite); `make test` therefore runs this once per format, the formats in parallel, and the
workers then load the kernels from the cache (kernels/_jit.py). Where the cache already
holds them this costs a cache load; where no cache can be written it compiles for nothing
and the suite compiles again, as it would have.
"""

import sys
import time

from implementations.experiment import init_params
from implementations.registry import build_model, select


def precompile(fmt: str) -> dict[str, float]:
    """Build (compile and warm) every available CPU scratch tier that computes in `fmt`;
    returns seconds per tier."""
    seconds = {}
    for tier in select(device="cpu", family="scratch", available=True):
        if fmt in tier.formats and tier.fast:
            t0 = time.perf_counter()
            build_model(tier, init_params(0), "relu", dtype=fmt)
            seconds[tier.name] = time.perf_counter() - t0
    return seconds


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for fmt in args or ["float32"]:
        took = precompile(fmt)
        print(f"precompile {fmt}: " + ", ".join(f"{t} {s:.1f} s" for t, s in took.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
