"""A GPU run rehearsed without a GPU: the result set a single-GPU machine would produce, fed
through everything downstream (report, summary, crossovers, claims, plots, roofline, the
launch-floor section), so that the first real GPU run makes a right report the first time.

The set is made from the committed CPU reference run: its CPU rows as measured, plus a row
for every CUDA tier the registry lists with a launch-floor model (those bench/gpu_check.sh
runs on one GPU), with invented but plausible GPU times: slower than the best CPU tier at
batch 1, faster at batch 1024. The figures are made up; what is checked is where each
lands and that every verdict is computed from them.
"""

import copy
import json
import re
from pathlib import Path

import pytest

from bench.report import claims, plots
from bench.report.build import build, crossovers
from bench.report.inputs import load_run
from bench.studies import gpu_floor
from implementations.paths import REFERENCE_BENCH
from implementations.registry import FRAMEWORK_PEER, ORACLE, TIERS, names, select

REFERENCE = REFERENCE_BENCH / "intel-xeon-2c"
GPU_MACHINE = "nvidia-h100-rehearsal"
GPU_INFO = {"machine": GPU_MACHINE, "gpu": "NVIDIA H100 80GB HBM3 (rehearsal)",
            "gpu_fp32_tflops": 51.0, "gpu_copy_gbs": 2900.0, "gpu_l2_copy_gbs": 7000.0,
            "gpu_l2_bytes": 52428800}
# seconds of a GPU train step: a fixed launch-bound cost, then nearly flat in the batch
STEP_S = {"torch-like": 2.0e-4, "graph-like": 4.0e-5, "fused": 1.0e-5}


def _gpu_tiers() -> list[str]:
    return names(select(device="cuda", launch_floor=True))


def _step_seconds(tier: str, batch: int) -> float:
    t = TIERS[tier]
    kind = ("fused" if t.launch_floor == "persistent-kernel" else
            "graph-like" if t.launch_floor == "graph" else "torch-like")
    return STEP_S[kind] * (1 + batch / 4096)


def _gpu_rows(cpu_rows: list[dict]) -> list[dict]:
    """A row per CUDA tier for each train_step/forward/backward/epoch group the peer
    (FRAMEWORK_PEER) has: the same shape, with GPU times and device "cuda"."""
    out = []
    peer_rows = [b for b in cpu_rows if b["extra_info"].get("tier") == FRAMEWORK_PEER
                 and b["group"].split(" batch=")[0] in ("forward", "backward", "train_step",
                                                        "epoch")
                 and b["extra_info"].get("loader", "resident") == "resident"]
    for tier in _gpu_tiers():
        for b in peer_rows:
            pass_ = b["group"].split(" batch=")[0]
            if pass_ == "backward" and TIERS[tier].launch_floor == "persistent-kernel":
                continue  # no separate backward: fused into the step
            row = copy.deepcopy(b)
            batch = row["extra_info"]["batch"]
            s = _step_seconds(tier, batch) * (938 if pass_ == "epoch" else
                                              0.4 if pass_ != "train_step" else 1)
            row["name"] = row["name"].replace(FRAMEWORK_PEER, tier)
            row["stats"].update(mean=s * 1.05, median=s, min=s * 0.95)
            e = row["extra_info"]
            e.update(tier=tier, device="cuda")
            if e.get("flops"):
                e["gflops"] = e["flops"] / s / 1e9
                e["fraction_of_peak"] = e["gflops"] / (GPU_INFO["gpu_fp32_tflops"] * 1e3)
            if e.get("samples_per_second"):
                e["samples_per_second"] = batch / s
            out.append(row)
    return out


def _gpu_floor_doc(machine: dict) -> dict:
    """gpu-floor.json as bench/studies/gpu_floor.py writes it, its floors and verdicts from
    the study's own functions."""
    floor = {"numba_launch_us": 3.1, "numba_alloc_us": 1.2, "grid_sync_us": 1.7,
             "torch_launch_us": 4.5, "graph_node_us": 0.9, "multiprocessors": 132}
    steps = 938
    tiers = {ORACLE: {"epoch_runs_s": [0.6] * 3, "epoch_s": 0.6, "loss_2000": 0.51,
                      "test_accuracy_1_epoch": 0.951, "loss_rel_diff": 0.0,
                      "accuracy_diff_points": 0.0}}
    for tier in _gpu_tiers():
        epoch = _step_seconds(tier, 64) * steps
        kernels = 14 if TIERS[tier].framework == "torch" else None
        row = {"epoch_runs_s": [epoch] * 3, "epoch_s": epoch, "loss_2000": 0.51 * (1 + 2e-6),
               "test_accuracy_1_epoch": 0.952, "loss_rel_diff": 2e-6,
               "accuracy_diff_points": 0.1,
               "floor_s": gpu_floor.floor_seconds(TIERS[tier].launch_floor, steps, floor,
                                                  kernels)}
        row["x_floor"] = epoch / row["floor_s"]
        if kernels:
            row["kernels_per_step"] = kernels
        tiers[tier] = row
    return {"machine": machine, "date": "2026-12-07 12:00", "batch": 64, "runs": 3,
            "launch_floor": floor, "tiers": tiers, "skipped": {},
            "verdicts": gpu_floor.verdicts(tiers)}


@pytest.fixture
def gpu_results(tmp_path, monkeypatch):
    """(benchmark JSON, training JSONs, out folder): the rehearsal's result set, laid out
    where a user's GPU run would be (out/bench/<machine>/ under MNIST_TIERS_OUT)."""
    monkeypatch.setenv("MNIST_TIERS_OUT", str(tmp_path / "out"))
    folder = tmp_path / "out" / "bench" / GPU_MACHINE
    folder.mkdir(parents=True)
    doc = json.loads((REFERENCE / "latest.json").read_text())
    machine = {**doc["machine_info"]["mnist_tiers"], **GPU_INFO}
    doc["machine_info"]["mnist_tiers"] = machine
    doc["benchmarks"] += _gpu_rows(doc["benchmarks"])
    (folder / "latest.json").write_text(json.dumps(doc))
    (folder / "gpu-floor.json").write_text(json.dumps(_gpu_floor_doc(machine)))
    trainings = []
    for src in sorted(REFERENCE.glob("train-*.json")):
        (folder / src.name).write_text(src.read_text())
        trainings.append(folder / src.name)
    peer = json.loads((REFERENCE / f"train-{FRAMEWORK_PEER}.json").read_text().splitlines()[-1])
    for tier in _gpu_tiers():
        t = {**peer, "tier": tier, "epoch_seconds": [_step_seconds(tier, 64) * 938] * 10}
        (folder / f"train-{tier}.json").write_text(json.dumps(t) + "\n")
        trainings.append(folder / f"train-{tier}.json")
    return folder / "latest.json", trainings, tmp_path / "report"


def test_the_set_has_every_single_gpu_tier():
    assert set(_gpu_tiers()) >= {"torch-cuda", "torch-cuda-graph", "torch-cuda-compile",
                                 "numba-cuda", "numba-cuda-fused"}


def test_every_cuda_tier_lands_on_the_gpu_side(gpu_results):
    run = load_run(gpu_results[0])
    lines = [text for text, _ in crossovers(run)]
    for tier in _gpu_tiers():
        assert any(re.fullmatch(rf"{re.escape(tier)} beats the best CPU tier from batch "
                                r"[0-9]+", text) for text in lines), (tier, lines)
    for text in lines:
        if "beats the best CPU tier" in text:
            assert TIERS[text.split(" ")[0]].device == "cuda", text
        else:  # a pair "(a vs b)": a tier and its baseline, on one device
            a, b = re.search(r"\((\S+) vs (\S+)\)$", text).groups()
            assert TIERS[a].device == TIERS[b].device, text


def test_the_seeds_gpu_claims_are_judged_from_the_data(gpu_results):
    run = load_run(gpu_results[0])
    cpu_only = claims.scratch_cpu_only([run], TIERS.values())
    assert cpu_only["verdict"] == "fails" and not cpu_only["notes"]
    assert any("numba-cuda-fused ran our own kernels" in item for item in cpu_only["fails"])
    faster = claims.pytorch_faster([run])
    assert faster["verdict"] != "untested" and not faster["notes"]
    best_torch = {item.split("best torch tier ")[1].split(" ")[0] for item in
                  faster["holds"] + faster["fails"]}
    assert best_torch & {"torch-cuda", "torch-cuda-graph", "torch-cuda-compile"}


def test_every_section_is_built_and_none_is_empty(gpu_results):
    result, trainings, out = gpu_results
    md_path = build([result], trainings, out)
    md = md_path.read_text()
    assert f"GPU {GPU_INFO['gpu']}" in md and "GPU fp32 51.0 TFLOP/s" in md
    summary = md.split("## At a glance", 1)[1].split("## Sources", 1)[0]
    assert re.search(r"\| 1024 \| cuda \| \*\*(numba-cuda-fused|torch-cuda-graph)\*\* ", summary)
    assert re.search(r"\| 1024 \| cpu \| \*\*", summary)  # CPU and GPU side by side
    assert (out / "ladder-all.png").stat().st_size > 10_000
    floor = md.split("### GPU epochs against the launch floor", 1)[1].split("\n### ", 1)[0]
    for tier in _gpu_tiers():
        assert f"| {tier} |" in floor, tier
        assert re.search(rf"\| {re.escape(tier)} \| [0-9.]+ \|", md.split("**train_step "
                                                                             "batch=64**")[1])
    assert "| numba-cuda-fused epoch <= 10 ms |" in floor
    assert "x torch-cuda eager |" in floor
    assert "untested" not in md.split("## Claims checked", 1)[1].split("##", 1)[0].split(
        "PyTorch is significantly faster")[1].split("\n")[0]
    pytorch = md.split("## Claims checked", 1)[1].split("PyTorch is significantly faster", 1)[1]
    assert re.search(r"best scratch tier numba-cuda", pytorch.split("</details>")[0])
    for heading in ("## At a glance", "## Sources", "## Claims checked",
                    f"## Results on {GPU_MACHINE}", "## Training", "## Data parallelism"):
        body = md.split(heading, 1)[1].split("\n## ", 1)[0]
        assert body.strip(), f"{heading} is empty"
    for png in ("step-times", "throughput", "roofline"):
        path = out / f"{png}-{GPU_MACHINE}.png"
        assert path.stat().st_size > 10_000, path
    assert (out / "accuracy.png").stat().st_size > 10_000
    assert (out / "report.html").stat().st_size > len(md)


def test_the_roofline_draws_the_gpus_ceilings(gpu_results):
    run = load_run(gpu_results[0])
    labels = [label for label, *_ in plots.ceilings(run.machine)]
    assert {"GPU HBM", "GPU L2", "CPU DRAM"} <= set(labels)


def test_the_gpu_check_script_takes_its_tiers_from_the_registry():
    """bench/gpu_check.sh names no tier: it asks the registry, so a new GPU tier is in the
    next GPU run without an edit."""
    script = (Path(__file__).resolve().parent.parent / "bench" / "gpu_check.sh").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    named = [n for n in names(select(device="cuda"))
             if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", code)]
    assert not named
    assert "select(device='cuda', launch_floor=True)" in script
