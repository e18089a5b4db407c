"""`python -m bench.studies.compile_modes` (run by bench/gpu_check.sh): which torch.compile mode
makes the CUDA train step fastest, measured, for torch-cuda-compile's choice
(implementations.models.torch_nn.COMPILE_MODE_NOTE).

For eager and each mode in MODES: the compile time (the first steps at batch 64 and the
last partial batch of 32), then the train step at batch 64 (median of 5 rounds of 200
steps, synchronized), its loss checked against the float64 oracle first. The JSON is
rewritten after each mode, so a run stopped part-way keeps the modes already measured.
Writes <bench root>/<machine>/compile-modes.json. Exits 2 with one line without a GPU.
"""

import statistics
import sys
import time

from implementations import paths, probes
from implementations.checks import assert_close, random_batch
from implementations.experiment import init_params
from implementations.fileio import atomic_json, check_writable
from implementations.machine import machine_name
from implementations.models.torch_nn import TorchModel
from implementations.oracle import oracle_step
from implementations.provenance import stamp

# max-autotune is left out: its GEMM tuning alone outlasts gpu_check's budget, and the
# network's matmuls are too small for tuning to pay (COMPILE_MODE_NOTE)
MODES = ("default", "reduce-overhead")
BATCH, ROUNDS, STEPS = 64, 5, 200


def _time_step(model, x, y) -> float:
    rounds = []
    for _ in range(ROUNDS):
        model.sync()
        t0 = time.perf_counter()
        for _ in range(STEPS):
            model.train_step(x, y, 0.1)
        model.sync()
        rounds.append((time.perf_counter() - t0) / STEPS)
    return statistics.median(rounds)


def measure(out_path=None) -> dict:
    params = init_params(0)
    x, y = random_batch(BATCH, 784, 10, seed=1)
    want = oracle_step(params, x, y, "relu", 0.1)["loss"]
    out_path = check_writable(out_path or paths.bench_root() / machine_name()
                              / "compile-modes.json")
    doc = {"date": time.strftime("%Y-%m-%d %H:%M"), "batch": BATCH, "modes": {},
           "provenance": stamp()}
    for mode in ("eager", *MODES):
        t0 = time.perf_counter()
        m = TorchModel(params, device="cuda", compile=False if mode == "eager" else mode,
                       name=f"torch-cuda ({mode})")
        X, Y = m.prepare(x, y)
        loss = float(m.train_step(X, Y, 0.1))
        m.train_step(X[:32], Y[:32], 0.1)  # the last partial batch's shape
        m.sync()
        compile_s = time.perf_counter() - t0
        assert_close(f"{mode} step loss", loss, want, rtol=1e-4, atol=1e-5)
        doc["modes"][mode] = {"compile_s": compile_s, "step_us": 1e6 * _time_step(m, X, Y)}
        timed = {k: v for k, v in doc["modes"].items() if k != "eager"}
        doc["fastest"] = min(timed, key=lambda k: timed[k]["step_us"]) if timed else None
        atomic_json(out_path, doc)
        step_us = doc["modes"][mode]["step_us"]
        print(f"  {mode:<16} compile {compile_s:6.1f} s   step {step_us:8.1f} us", flush=True)
    doc["path"] = str(out_path)
    return doc


def main() -> int:
    reason = probes.torch_compile_cuda()
    if reason:
        print(f"compile_modes: torch.compile on CUDA cannot run here: {reason}")
        return 2
    doc = measure()
    print(f"compile_modes: fastest mode {doc['fastest']} ({doc['path']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
