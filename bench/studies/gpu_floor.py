"""`python -m bench.studies.gpu_floor` (run by bench/gpu_check.sh): the GPU tiers against what the
hardware allows, and the GPU targets, in one run on a machine with a CUDA GPU.

Measured in the same process:
- the launch floor: an empty Numba CUDA kernel launch, a small Numba device allocation,
  one grid-wide sync inside a cooperative kernel (one block per multiprocessor), an empty
  PyTorch kernel launch, and one node of a replayed CUDA graph (1000 tiny kernels captured);
- each GPU tier's epoch at batch 64 (data resident, TF32 off; median of 3, tiers
  alternating, after a warm-up epoch), next to numpy's on this machine's cores;
- each epoch's floor from its own launch count: numba-cuda-fused one launch + 2 grid syncs
  per step; numba-cuda LAUNCHES_PER_STEP kernels and ALLOCATIONS_PER_STEP allocations per
  step (implementations.models.numba_cuda, counted by a test); the torch tiers the CUDA kernels
  torch.profiler sees in one step, each at the eager launch cost, or at a graph node's cost
  for the graph tiers (torch-cuda-graph, and torch-cuda-compile in mode reduce-overhead,
  whose optimizer step is counted at the node cost too, so its floor is a lower bound);
- the agreement targets: one epoch on the first 2000 samples against numpy's mean loss
  (1e-4 relative), and the test accuracy after one full epoch against numpy's (0.3 points).

Writes <bench root>/<machine>/gpu-floor.json (atomically) and prints the verdicts. Exits 2
with one line where there is no usable CUDA GPU.
"""

import statistics
import sys
import time

import numpy as np

from implementations import data, paths, probes
from implementations.experiment import epoch_batches, init_params
from implementations.fileio import atomic_json, check_writable
from implementations.machine import describe, machine_name
from implementations.models.numba_cuda import ALLOCATIONS_PER_STEP, LAUNCHES_PER_STEP
from implementations.noise import NoiseGuard
from implementations.provenance import record
from implementations.registry import (
    GPU_FUSED,
    GPU_GRAPH,
    ORACLE,
    TIERS,
    build_model,
    select,
)
from implementations.threads import set_threads
from implementations.training import evaluate

BATCH, LR, RUNS = 64, 0.1, 3
LIMIT, LOSS_RTOL, ACCURACY_POINTS = 2000, 1e-4, 0.3
FUSED_MAX_MS, FUSED_OVER_TORCH, GRAPH_OVER_EAGER = 10.0, 6.0, 10.0  # the GPU targets


def _per_call(fn, calls: int, sync) -> float:
    """Seconds per call of fn over `calls` calls, best of 5 (after one warm-up round)."""
    fn()
    sync()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def launch_floor() -> dict:
    """Microseconds of the launch-level costs listed in the module docstring."""
    import torch

    from kernels._cuda import cuda

    @cuda.jit
    def empty(a):
        pass

    @cuda.jit
    def syncs(reps, a):
        g = cuda.cg.this_grid()
        for _ in range(reps):
            g.sync()

    a = cuda.device_array(1, np.float32)
    out = {"numba_launch_us": 1e6 * _per_call(lambda: empty[1, 32](a), 2000, cuda.synchronize),
           "numba_alloc_us": 1e6 * _per_call(lambda: cuda.device_array(256, np.float32), 2000,
                                             cuda.synchronize)}
    sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    reps = 2000
    t = _per_call(lambda: syncs[sms, 256](reps, a), 1, cuda.synchronize)
    out["grid_sync_us"] = 1e6 * (t - out["numba_launch_us"] * 1e-6) / reps
    out["multiprocessors"] = sms
    x = torch.zeros(1, device="cuda")
    out["torch_launch_us"] = 1e6 * _per_call(lambda: x.add_(0.0), 2000, torch.cuda.synchronize)
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        x.add_(0.0)
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(g):
        for _ in range(1000):
            x.add_(0.0)
    out["graph_node_us"] = 1e6 * _per_call(g.replay, 20, torch.cuda.synchronize) / 1000
    return out


def torch_kernels_per_step(model, x, y) -> int:
    """CUDA kernels (and copies) torch.profiler records in one train step."""
    from torch.profiler import ProfilerActivity, profile

    model.train_step(x, y, LR)
    model.sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        model.train_step(x, y, LR)
        model.sync()
    return sum(1 for e in prof.events() if e.device_type.name == "CUDA")


def floor_seconds(model: str, steps: int, floor: dict, kernels: int | None) -> float:
    """Seconds an epoch of `steps` steps spends at least in launches, by the tier's
    launch-floor model (implementations.registry.LAUNCH_FLOORS) and the costs in `floor`;
    kernels: CUDA kernels per step (the torch models, from torch.profiler)."""
    if model == "persistent-kernel":
        return 1e-6 * (floor["numba_launch_us"] + 2 * steps * floor["grid_sync_us"])
    if model == "kernel-per-op":
        return 1e-6 * steps * (LAUNCHES_PER_STEP * floor["numba_launch_us"]
                               + ALLOCATIONS_PER_STEP * floor["numba_alloc_us"])
    per = {"eager": floor["torch_launch_us"], "graph": floor["graph_node_us"]}[model]
    return steps * kernels * per * 1e-6


def measure(out_path=None) -> dict:
    out_path = check_writable(out_path or paths.bench_root() / machine_name() / "gpu-floor.json")
    set_threads()
    guard = NoiseGuard("gpu_floor").begin()
    arrays = data.training_arrays()
    X, Y, Xt, Yt = arrays.x_train, arrays.y_train, arrays.x_test, arrays.y_test
    params = init_params(0)
    batches = epoch_batches(len(X), BATCH, seed=0, epoch=0)
    small = epoch_batches(LIMIT, BATCH, seed=0, epoch=0)
    try:  # first, and on its own: a tier that fails below must not lose it
        floor = launch_floor()
    except Exception as exc:
        floor = {"error": f"{type(exc).__name__}: {exc}"}
    gpu_tiers = select(launch_floor=True)
    names_ = [ORACLE] + [t.name for t in gpu_tiers if t.available]
    skipped = {t.name: t.unavailable_reason for t in gpu_tiers if not t.available}
    models, checks = {}, {}
    for name in list(names_):
        try:  # each tier on its own: one that fails is reported, the others still measured
            m = build_model(name, params, "relu")
            Xp, Yp = m.prepare(X, Y)
            m.load_weights(params)
            small_loss = float(np.mean(m.train_epoch(*m.prepare(X[:LIMIT], Y[:LIMIT]), small,
                                                     LR)))
            m.load_weights(params)
            m.train_epoch(Xp, Yp, batches, LR)  # warm-up epoch (graph capture, compile),
            acc = evaluate(m.weights(), Xt, Yt, "relu")  # and the accuracy after it
        except Exception as exc:
            if name == ORACLE:
                raise
            skipped[name] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            names_.remove(name)
            continue
        models[name] = (m, Xp, Yp)
        checks[name] = {"loss_2000": small_loss, "test_accuracy_1_epoch": acc}
    times = {n: [] for n in names_}
    for _ in range(RUNS):
        for name in names_:
            m, Xp, Yp = models[name]
            m.load_weights(params)
            t0 = time.perf_counter()
            m.train_epoch(Xp, Yp, batches, LR)
            m.sync()
            times[name].append(time.perf_counter() - t0)
    base = checks[ORACLE]
    tiers = {}
    for name in names_:
        med = statistics.median(times[name])
        row = {"epoch_runs_s": times[name], "epoch_s": med, **checks[name],
               "loss_rel_diff": abs(checks[name]["loss_2000"] - base["loss_2000"])
               / base["loss_2000"],
               "accuracy_diff_points": 100 * (checks[name]["test_accuracy_1_epoch"]
                                              - base["test_accuracy_1_epoch"])}
        if name != ORACLE and "error" not in floor:
            m, Xp, Yp = models[name]
            kernels = None
            if TIERS[name].framework == "torch":
                kernels = torch_kernels_per_step(m, *m.take(Xp, Yp, batches[0]))
                row["kernels_per_step"] = kernels
            row["floor_s"] = floor_seconds(TIERS[name].launch_floor, len(batches), floor,
                                           kernels)
            row["x_floor"] = med / row["floor_s"]
        tiers[name] = row
    doc = {"machine": describe(), "date": time.strftime("%Y-%m-%d %H:%M"), "batch": BATCH,
           "runs": RUNS, "launch_floor": floor, "tiers": tiers, "skipped": skipped,
           "verdicts": verdicts(tiers), **record(guard)}
    atomic_json(out_path, doc)
    doc["path"] = str(out_path)
    return doc


def verdicts(tiers: dict) -> list[dict]:
    """The GPU targets (module docstring) as {target, value, met} rows; a target whose tier
    did not run is left out."""
    out = []
    torch_tiers = [t for t in tiers if t in TIERS and TIERS[t].device == "cuda"
                   and TIERS[t].framework == "torch"]
    if GPU_FUSED in tiers:
        ms = 1e3 * tiers[GPU_FUSED]["epoch_s"]
        out.append({"target": f"{GPU_FUSED} epoch <= {FUSED_MAX_MS:g} ms",
                    "value": f"{ms:.2f} ms", "met": ms <= FUSED_MAX_MS})
        if torch_tiers:
            fastest = min(torch_tiers, key=lambda t: tiers[t]["epoch_s"])
            r = tiers[fastest]["epoch_s"] / tiers[GPU_FUSED]["epoch_s"]
            out.append({"target": f"{GPU_FUSED} >= {FUSED_OVER_TORCH:g}x the fastest "
                                  f"PyTorch CUDA tier ({fastest})",
                        "value": f"{r:.2f}x", "met": r >= FUSED_OVER_TORCH})
    eager = TIERS[GPU_GRAPH].baseline
    if GPU_GRAPH in tiers and eager in tiers:
        r = tiers[eager]["epoch_s"] / tiers[GPU_GRAPH]["epoch_s"]
        out.append({"target": f"{GPU_GRAPH} >= {GRAPH_OVER_EAGER:g}x {eager} eager",
                    "value": f"{r:.2f}x", "met": r >= GRAPH_OVER_EAGER})
    for t, row in tiers.items():
        if t == ORACLE:
            continue
        out.append({"target": f"{t}: loss on {LIMIT} samples within {LOSS_RTOL:g} of "
                              f"{ORACLE}'s",
                    "value": f"{row['loss_rel_diff']:.2g}", "met": row["loss_rel_diff"]
                    <= LOSS_RTOL})
        out.append({"target": f"{t}: 1-epoch test accuracy within {ACCURACY_POINTS:g} points "
                              f"of {ORACLE}'s", "value": f"{row['accuracy_diff_points']:+.2f}",
                    "met": abs(row["accuracy_diff_points"]) <= ACCURACY_POINTS})
    return out


def main() -> int:
    reason = probes.cuda_gpu()
    if reason:
        print(f"gpu_floor: no usable CUDA GPU: {reason}")
        return 2
    doc = measure()
    print(f"gpu_floor: {doc['path']}")
    for v in doc["verdicts"]:
        print(f"  {'met' if v['met'] else 'NOT MET'}: {v['target']}: {v['value']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
