"""The report's section on the GPU tiers against the launch floor, and the GPU targets
(bench/studies/gpu_floor.py's gpu-floor.json)."""

from bench.report.inputs import load_optional


def load(path) -> dict | None:
    """A gpu-floor.json (None if there is none; None and a warning if it is damaged)."""
    return load_optional(path, ("date", "batch", "launch_floor", "tiers", "verdicts"),
                         "`python -m bench.studies.gpu_floor`")


def section(path) -> list[str]:
    """The report's lines for a gpu-floor.json (none if there is no such file, or a warning
    if it is damaged)."""
    doc = load(path)
    if doc is None:
        return []
    f = doc["launch_floor"]
    if "error" in f:
        f = {k: float("nan") for k in ("numba_launch_us", "numba_alloc_us", "grid_sync_us",
                                       "torch_launch_us", "graph_node_us")} | {
            "multiprocessors": "?"}
    lines = [f"### GPU epochs against the launch floor ({doc['date']})", "",
             f"Measured in the same run (bench/studies/gpu_floor.py): an empty Numba launch "
             f"{f['numba_launch_us']:.2f} us, a Numba allocation {f['numba_alloc_us']:.2f} us, "
             f"one grid sync {f['grid_sync_us']:.2f} us ({f['multiprocessors']} blocks), an "
             f"empty torch launch {f['torch_launch_us']:.2f} us, a CUDA-graph node "
             f"{f['graph_node_us']:.3f} us. Epoch at batch {doc['batch']}, median of "
             f"{doc.get('runs', '?')}, TF32 off.", "",
             "| tier | epoch ms | floor ms | x floor | kernels/step | loss vs numpy "
             "(2000 samples) | accuracy vs numpy (1 epoch) |", "|---|---|---|---|---|---|---|"]
    for t, r in doc["tiers"].items():
        lines.append(f"| {t} | {1e3 * r['epoch_s']:.2f} | "
                     + (f"{1e3 * r['floor_s']:.2f} | {r['x_floor']:.1f}" if "floor_s" in r
                        else "- | -")
                     + f" | {r.get('kernels_per_step', '-')} | {r['loss_rel_diff']:.1e} | "
                     f"{r['accuracy_diff_points']:+.2f} |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {v['target']} | {v['value']} | {'yes' if v['met'] else 'NO'} |"
              for v in doc["verdicts"]]
    for t, why in doc.get("skipped", {}).items():
        lines.append(f"\n{t} did not run: {why}")
    return lines + [""]
