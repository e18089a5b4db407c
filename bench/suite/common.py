"""Helpers of the benchmark suite: verified timing, FLOP bookkeeping, the machine's peak."""

import pytest

from bench.suite.plugin import suite_hidden
from implementations.machine import cpu_peaks, gpu_peaks
from implementations.registry import TIERS
from implementations.threads import current_threads


def verify(name: str, check) -> None:
    """Run check() (which raises AssertionError on a wrong result); fail the benchmark with
    a message, before anything is timed, if it does."""
    try:
        check()
    except AssertionError as exc:
        pytest.fail(f"{name}: result does not match the reference, so it is not timed: {exc}",
                    pytrace=False)


def peak_gflops(device: str) -> float:
    if device == "cuda":
        return gpu_peaks()["gpu_fp32_tflops"] * 1e3
    return cpu_peaks()["sgemm_gflops"]


def mean_seconds(benchmark) -> float | None:
    """The timed mean of a benchmark, or None when nothing was timed (--benchmark-disable
    runs each benchmark once as a plain test). Only for sums over rounds (the all-reduce
    share: its time is a total over the rounds); every compared figure uses the median."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else stats.stats.mean


def median_seconds(benchmark) -> float | None:
    """The timed median of a benchmark (None when nothing was timed): the one statistic
    every table, ratio, % of peak and plot compares."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else stats.stats.median


def record(benchmark, *, tier: str, device: str, batch: int, flops: int | None,
           samples: int | None = None, **extra) -> None:
    """Fill extra_info after timing: what ran (tier, batch, the thread count every library
    really used), GFLOP/s from the measured median and the fraction of peak."""
    info = benchmark.extra_info
    info.update(tier=tier, device=device, batch=batch, correct=True, hidden=suite_hidden(),
                threads=current_threads(TIERS[tier].thread_pool if tier in TIERS else None),
                **extra)
    median = median_seconds(benchmark)
    if median is None:
        return
    if flops:
        gflops = flops / median / 1e9
        info.update(flops=flops, gflops=round(gflops, 3),
                    fraction_of_peak=round(gflops / peak_gflops(device), 4))
    if samples:
        info["samples"] = samples
        info["samples_per_second"] = round(samples / median, 1)


def timed(benchmark, fn, *, slow: bool, rounds: int = 3):
    """Time fn: pytest-benchmark's calibration for fast calls; for slow ones (seconds per
    call) pedantic mode with a few rounds after one untimed warm-up round."""
    if slow:
        return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    return benchmark(fn)
