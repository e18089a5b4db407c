"""Every tier, pass and kernel, timed with pytest-benchmark after checking its result.

Groups put tiers side by side: "train_step batch=64", "forward batch=1024",
"kernel linear_forward batch=64", "epoch batch=64", "matmul 64x784x128". Each benchmark first
verifies its result against the float64 NumPy oracle (and records correct: true), warms up
outside the timed region, and synchronizes CUDA work inside the timed callable.
"""

import importlib

import numpy as np
import pytest

from bench.suite.common import mean_seconds, median_seconds, record, timed, verify
from bench.suite.plugin import batch_sizes, suite_format, suite_hidden
from implementations.checks import assert_close, product_atol, random_batch
from implementations.experiment import D, K, epoch_batches, init_params, step_flops
from implementations.formats import tolerance
from implementations.oracle import oracle_step
from implementations.registry import ORACLE, TIERS, build_model, select
from kernels import vectorized as oracle

ACT = "relu"


def params0():
    """The shared initial weights at the session's width (--hidden, default 128)."""
    return init_params(0, h=suite_hidden())


def flops_of(n):
    """Counted FLOPs per pass of a train step on n samples at the session's width."""
    return step_flops(n, h=suite_hidden())
LR = 0.1
PASSES = ("forward", "backward", "train_step")


def pytest_generate_tests(metafunc):
    if "batch" in metafunc.fixturenames:
        params = []
        for b in batch_sizes():
            quick = b == 64 and metafunc.function.__name__ == "test_pass"
            params.append(pytest.param(b, id=f"batch={b}",
                                       marks=[pytest.mark.quick] if quick else []))
        metafunc.parametrize("batch", params)


_models: dict = {}


def fmt_of(tier_name) -> str:
    """The main suite's number format for a tier (--dtype, else the tier's default); skips
    a tier that does not compute in the format asked for."""
    tier = TIERS[tier_name]
    fmt = suite_format() or tier.default_format
    if fmt not in tier.formats:
        pytest.skip(f"{tier_name} does not compute in {fmt} (it supports "
                    f"{', '.join(tier.formats)})")
    return fmt


def model_of(tier_name, fmt=None):
    """One built (compiled, warmed) model per (tier, format) for the session; reset to the
    init weights."""
    tier = TIERS[tier_name]
    if not tier.available:
        pytest.skip(f"{tier_name}: {tier.unavailable_reason}")
    fmt = fmt or tier.default_format
    if (tier_name, fmt) not in _models:
        _models[tier_name, fmt] = build_model(tier_name, params0(), ACT, dtype=fmt)
    m = _models[tier_name, fmt]
    m.load_weights(params0())
    return m


def batch_of(model, n):
    x, y = random_batch(n, D, K, seed=n)
    X, Y = model.prepare(x, y)
    xb, yb = model.take(X, Y, np.arange(n))
    return x, y, xb, yb


def synced(model, fn):
    def call():
        out = fn()
        model.sync()
        return out
    return call


@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("tier", list(TIERS))
def test_pass(benchmark, tier, pass_, batch):
    too_slow = TIERS[tier].too_slow_for(batch)
    if too_slow:
        pytest.skip(too_slow)
    fmt = fmt_of(tier)
    m = model_of(tier, fmt)
    if pass_ == "backward" and not m.has_backward:
        pytest.skip(f"{tier} has no separate backward: it is fused into the train step")
    benchmark.group = f"{pass_} batch={batch}"
    x, y, xb, yb = batch_of(m, batch)
    ref = oracle_step(params0(), x, y, ACT, LR)
    m.prepare_batches([batch], LR)
    slow = not TIERS[tier].fast

    if pass_ == "forward":
        def check():
            assert_close(f"{tier} loss", float(m.forward(xb, yb)), ref["loss"],
                         **tolerance(fmt, ref["loss"]))
            assert_close(f"{tier} logits", m.logits(), ref["logits"],
                         **tolerance(fmt, ref["logits"]))
        verify(tier, check)
        timed(benchmark, synced(m, lambda: m.forward(xb, yb)), slow=slow)
    elif pass_ == "backward":
        def check():
            m.forward(xb, yb)
            m.backward()
            for name, g in m.gradients().items():
                assert_close(f"{tier} {name}", g, ref[name], **tolerance(fmt, ref[name]))
        verify(tier, check)
        benchmark.pedantic(synced(m, m.backward), setup=lambda: (m.forward(xb, yb), m.sync(),
                                                                  None)[-1],
                           rounds=3 if slow else 200, iterations=1, warmup_rounds=1)
    else:
        def check():
            m.train_step(xb, yb, LR)
            for name, w in m.weights().items():
                assert_close(f"{tier} updated {name}", w, ref[name],
                             **tolerance(fmt, ref[name]))
        verify(tier, check)
        timed(benchmark, synced(m, lambda: m.train_step(xb, yb, LR)), slow=slow)
    record(benchmark, tier=tier, device=TIERS[tier].device, batch=batch,
           flops=flops_of(batch)[pass_], samples=batch, pass_=pass_, dtype=fmt)


EPOCH_CASES = [(t, "resident") for t in TIERS] + [
    (t, "dataloader") for t in TIERS if "dataloader" in TIERS[t].loaders]

_epoch_reference: dict = {}


def numpy_epoch(x, y, batches, batch_size=64, dtype="float32"):
    """Per-step losses and final weights of one numpy epoch over `batches`, computed once
    per (samples, batch size, format): the reference every timed epoch is checked against
    (float64: the oracle the precision benchmarks measure deviations from)."""
    key = (len(x), batch_size, dtype)
    if key not in _epoch_reference:
        m = build_model(ORACLE, params0(), ACT, dtype=dtype)
        losses = m.train_epoch(*m.prepare(x, y), batches, LR)
        _epoch_reference[key] = (losses, m.weights())
    return _epoch_reference[key]


@pytest.mark.parametrize("tier, loader", EPOCH_CASES, ids=[f"{t}-{ld}" for t, ld in EPOCH_CASES])
def test_epoch(benchmark, tier, loader, mnist_train):
    """One epoch at batch 64 (60,000 samples; a slow tier, loops: its registered
    epoch_samples, the time extrapolated)."""
    if not TIERS[tier].available:
        pytest.skip(f"{tier}: {TIERS[tier].unavailable_reason}")
    fmt = fmt_of(tier)
    slow = not TIERS[tier].fast
    x, y = mnist_train
    if slow:
        x, y = x[:TIERS[tier].epoch_samples], y[:TIERS[tier].epoch_samples]
    n = len(x)
    batches = epoch_batches(n, 64, seed=0, epoch=0)
    if loader == "resident":
        m = model_of(tier, fmt)
    else:
        m = build_model(tier, params0(), ACT, loader=loader, dtype=fmt)
    benchmark.group = "epoch batch=64"
    X, Y = m.prepare(x, y)
    m.prepare_batches({len(b) for b in batches}, LR)
    ref = numpy_epoch(x, y, batches)[0]

    def check():  # doubles as the untimed warm-up epoch
        got = m.train_epoch(X, Y, batches, LR)
        assert_close(f"{tier} epoch mean loss", np.mean(got), np.mean(ref),
                     rtol=max(2e-3, 2 * tolerance(fmt, 1.0)["rtol"]), atol=0)
    verify(tier, check)
    benchmark.pedantic(synced(m, lambda: m.train_epoch(X, Y, batches, LR)),
                       rounds=2, iterations=1)
    extra = {"loader": loader, "epoch_samples": n, "dtype": fmt}
    if slow and median_seconds(benchmark) is not None:
        extra["extrapolated_epoch_seconds"] = median_seconds(benchmark) * 60000 / n
        extra["note"] = f"measured on {n} samples; full-epoch time extrapolated"
    record(benchmark, tier=tier, device=TIERS[tier].device, batch=64,
           flops=flops_of(n)["train_step"], samples=n, **extra)


DDP_PROCS = (1, 2)
DDP_BATCHES = (64, 1024)
_ddp_models: dict = {}


# the CPU tier that runs in worker processes (torch-ddp), and the single-process tier it
# wraps (its baseline, torch-cpu)
DDP_TIER = next((t.name for t in select(device="cpu", processes=True)), None)
DDP_BASE = TIERS[DDP_TIER].baseline if DDP_TIER else None


def ddp_model(procs):
    """One DDP_TIER model per process count for the session, reset to the init weights."""
    if procs not in _ddp_models:
        _ddp_models[procs] = build_model(DDP_TIER, params0(), ACT, procs=procs)
    m = _ddp_models[procs]
    m.load_weights(params0())
    return m


@pytest.mark.parametrize("procs", (0, *DDP_PROCS), ids=lambda p: f"W={p}" if p else DDP_BASE)
@pytest.mark.parametrize("ddp_batch", DDP_BATCHES, ids=lambda b: f"batch={b}")
def test_ddp_epoch(benchmark, procs, ddp_batch, mnist_train):
    """An epoch of torch-ddp with W = 1 and 2 processes (cores // W threads each) next to
    torch-cpu with all the cores, at batch 64 and 1024; the all-reduce's share of the epoch
    (rank 0's hook timers) and, for W >= 2, the all-reduce's latency and bandwidth measured
    in the same run (alpha-beta fit) for the report's projection."""
    tier = DDP_BASE if procs == 0 else DDP_TIER
    if tier is None:
        pytest.skip("no multi-process CPU tier is registered")
    if not TIERS[tier].available:
        pytest.skip(f"{tier}: {TIERS[tier].unavailable_reason}")
    x, y = mnist_train
    batches = epoch_batches(len(x), ddp_batch, seed=0, epoch=0)
    m = model_of(tier) if procs == 0 else ddp_model(procs)
    benchmark.group = f"ddp epoch batch={ddp_batch}"
    X, Y = m.prepare(x, y)
    m.prepare_batches({len(b) for b in batches}, LR)
    ref = numpy_epoch(x, y, batches, ddp_batch)[0]

    def check():  # doubles as the untimed warm-up epoch
        got = m.train_epoch(X, Y, batches, LR)
        assert_close(f"{tier} W={procs} epoch mean loss", np.mean(got), np.mean(ref),
                     rtol=2e-3, atol=0)
    verify(tier, check)
    comm0 = getattr(m, "allreduce_seconds", 0.0)
    rounds = 2
    benchmark.pedantic(synced(m, lambda: m.train_epoch(X, Y, batches, LR)), rounds=rounds,
                       iterations=1)
    extra = {"procs": procs or 1, "label": f"{tier} W={procs}" if procs else tier,
             "epoch_samples": len(x)}
    mean = mean_seconds(benchmark)
    if procs:
        comm = (m.allreduce_seconds - comm0) / rounds
        extra.update(allreduce_seconds=comm, threads_per_proc=m.options["threads_per_proc"])
        if mean:
            extra["allreduce_share"] = comm / mean
        if procs >= 2:
            from implementations.allreduce import fit_alpha_beta

            times = m.allreduce_times()
            alpha, bandwidth = fit_alpha_beta(times)
            extra.update(allreduce_times={str(k): v for k, v in times.items()},
                         allreduce_alpha_s=alpha, allreduce_bandwidth_bps=bandwidth)
    record(benchmark, tier=tier, device="cpu", batch=ddp_batch,
           flops=flops_of(len(x))["train_step"], samples=len(x), **extra)


# every tier with a choice of format; not the multi-process tiers, whose ranks compute like
# the torch tier they wrap (their formats are checked by the tests)
FORMAT_CASES = [(t.name, f) for t in TIERS.values()
                if len(t.formats) > 1 and t.fast and not t.processes for f in t.formats]
FORMAT_BATCHES = (64, 1024)


@pytest.mark.parametrize("what", ["train_step", "epoch"])
@pytest.mark.parametrize("fmt_batch", FORMAT_BATCHES, ids=lambda b: f"batch={b}")
@pytest.mark.parametrize("tier, fmt", FORMAT_CASES, ids=[f"{t}-{f}" for t, f in FORMAT_CASES])
def test_format(benchmark, tier, fmt, fmt_batch, what, mnist_train):
    """A train step and an epoch per (tier, number format) at batch 64 and 1024. The step
    is checked against the float64 oracle with the format's tolerance; after the untimed
    epoch, the deviation of its mean loss and of its weights from a float64 epoch is
    recorded (relative: |loss - oracle| / oracle; max |W - W_oracle| / max |W_oracle|)."""
    m = model_of(tier, fmt)
    benchmark.group = f"format {what} batch={fmt_batch}"
    extra = {"dtype": fmt, "label": f"{tier} {fmt}"}
    if what == "train_step":
        x, y, xb, yb = batch_of(m, fmt_batch)
        ref = oracle_step(params0(), x, y, ACT, LR)
        m.prepare_batches([fmt_batch], LR)

        def check():
            m.train_step(xb, yb, LR)
            for name, w in m.weights().items():
                want = ref[name] - params0()[name]
                assert_close(f"{tier} {fmt} update of {name}", w - params0()[name], want,
                             **tolerance(fmt, want))
        verify(tier, check)
        timed(benchmark, synced(m, lambda: m.train_step(xb, yb, LR)), slow=False)
        flops, samples = flops_of(fmt_batch)["train_step"], fmt_batch
    else:
        x, y = mnist_train
        batches = epoch_batches(len(x), fmt_batch, seed=0, epoch=0)
        X, Y = m.prepare(x, y)
        m.prepare_batches({len(b) for b in batches}, LR)
        ref_losses, ref_w = numpy_epoch(x, y, batches, fmt_batch, "float64")
        sizes = np.array([len(b) for b in batches])
        ref_loss = float(np.sum(ref_losses * sizes) / len(x))

        def check():  # doubles as the untimed warm-up epoch
            got = float(np.sum(np.asarray(m.train_epoch(X, Y, batches, LR)) * sizes) / len(x))
            extra["loss_deviation"] = abs(got - ref_loss) / ref_loss
            extra["weight_deviation"] = max(
                float(np.max(np.abs(w - ref_w[k])) / np.max(np.abs(ref_w[k])))
                for k, w in m.weights().items())
            assert_close(f"{tier} {fmt} epoch loss", got, ref_loss,
                         rtol=max(2e-3, 2 * tolerance(fmt, 1.0)["rtol"]), atol=0)
        verify(tier, check)
        benchmark.pedantic(synced(m, lambda: m.train_epoch(X, Y, batches, LR)), rounds=2,
                           iterations=1)
        flops, samples = flops_of(len(x))["train_step"], len(x)
    record(benchmark, tier=tier, device=TIERS[tier].device, batch=fmt_batch, flops=flops,
           samples=samples, **extra)


@pytest.fixture(scope="session")
def mnist_train():
    from implementations import data

    arrays = data.training_arrays()
    return arrays.x_train, arrays.y_train


KERNELS = ("linear_forward", "linear_backward", "relu_forward", "relu_backward",
           "sigmoid_forward", "sigmoid_backward", "softmax_cross_entropy")
KERNEL_TIERS = [t.name for t in TIERS.values() if t.kernels]


def kernel_case(k, kernel, n, device="cpu"):
    """Arguments (tier form: on a GPU tier's device, labels included), float64 oracle
    result, FLOPs and per-output absolute tolerances (None: the default) of one kernel at
    batch n."""
    H = suite_hidden()
    rng = np.random.default_rng(n)
    x = rng.random((n, D))
    W = rng.standard_normal((D, H)) / np.sqrt(D)
    b = rng.standard_normal(H)
    z = rng.standard_normal((n, H))
    dz = rng.standard_normal((n, H))
    logits = rng.standard_normal((n, K))
    y = rng.integers(0, K, n)
    a_sig = oracle.sigmoid_forward(z)
    ones = np.ones((1, n))
    atols = {"linear_forward": [product_atol(x, W)],  # sums over D inputs
             "linear_backward": [product_atol(x.T, dz), product_atol(ones, dz)[0]]}  # over n
    cases = {
        "linear_forward": ((x, W, b), 2 * n * D * H),
        "linear_backward": ((dz, x, W, False), 2 * n * D * H),
        "relu_forward": ((z,), None), "relu_backward": ((dz, z), None),
        "sigmoid_forward": ((z,), None), "sigmoid_backward": ((dz, a_sig), None),
        "softmax_cross_entropy": ((logits, y), None),
    }
    args, flops = cases[kernel]
    ref = getattr(oracle, kernel)(*args)
    conv = tuple(k.from_numpy(np.asarray(a, np.float32)) if isinstance(a, np.ndarray)
                 and a.dtype.kind == "f" else k.from_numpy(a) if isinstance(a, np.ndarray)
                 and device == "cuda" else a for a in args)
    return conv, ref, flops, atols.get(kernel)


def kernel_outputs(k, out):
    """Comparable NumPy arrays from a kernel's result (tuples: skip None entries)."""
    items = out if isinstance(out, tuple) else (out,)
    return [np.asarray(k.to_numpy(o)) if not isinstance(o, float) else o
            for o in items if o is not None]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("tier", KERNEL_TIERS)
def test_kernel(benchmark, tier, kernel, batch):
    if not TIERS[tier].available:
        pytest.skip(f"{tier}: {TIERS[tier].unavailable_reason}")
    slow = not TIERS[tier].fast
    too_slow = TIERS[tier].too_slow_for(batch) if kernel.startswith("linear") else None
    if too_slow:
        pytest.skip(too_slow)
    k = importlib.import_module(TIERS[tier].kernels)
    device = TIERS[tier].device
    args, ref, flops, atols = kernel_case(k, kernel, batch, device)
    fn = getattr(k, kernel)
    call = (lambda: fn(*args)) if device == "cpu" else (lambda: (fn(*args), k.synchronize()))
    benchmark.group = f"kernel {kernel} batch={batch}"

    def check():
        for i, (got, want) in enumerate(zip(kernel_outputs(k, fn(*args)),
                                            kernel_outputs(oracle, ref), strict=True)):
            tol = {"atol": atols[i]} if atols else {}
            assert_close(f"{tier} {kernel}[{i}]", got, want, **tol)
    verify(tier, check)
    timed(benchmark, call, slow=slow)
    record(benchmark, tier=tier, device=device, batch=batch, flops=flops, kernel=kernel)


MATMUL_SHAPES = [(64, 784, 128), (256, 784, 128)]


@pytest.mark.quick
@pytest.mark.parametrize("impl", ["openblas", "numba matmul", "numba matmul_nt",
                                  "numba matmul_tn"])
@pytest.mark.parametrize("shape", MATMUL_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matmul(benchmark, shape, impl):
    """Our own Numba matmuls against the BLAS under NumPy, at the layer-1 shapes."""
    from kernels import numba_cpu as nc

    m, kk, n = shape
    rng = np.random.default_rng(0)
    A = rng.random((m, kk), dtype=np.float32)
    B = rng.random((kk, n), dtype=np.float32)
    Bt = np.ascontiguousarray(B.T)
    G = rng.random((m, n), dtype=np.float32)
    out_mn, out_kn = np.empty((m, n), np.float32), np.empty((kk, n), np.float32)
    calls = {
        "openblas": (lambda: np.matmul(A, B, out=out_mn), A.astype(np.float64) @ B),
        "numba matmul": (lambda: nc.matmul(A, B, out_mn), A.astype(np.float64) @ B),
        "numba matmul_nt": (lambda: nc.matmul_nt(A, Bt, out_mn), A.astype(np.float64) @ B),
        "numba matmul_tn": (lambda: nc.matmul_tn(A, G, out_kn), A.T.astype(np.float64) @ G),
    }
    fn, ref = calls[impl]
    benchmark.group = f"matmul {m}x{kk}x{n}"
    verify(impl, lambda: assert_close(impl, fn(), ref, rtol=1e-4, atol=1e-3))
    benchmark(fn)
    record(benchmark, tier=impl, device="cpu", batch=m, flops=2 * m * kk * n,
           shape="x".join(map(str, shape)))
