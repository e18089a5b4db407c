"""The report's precision section: speed and accuracy per (tier, number format).

From one benchmark run's "format train_step batch=B" and "format epoch batch=B" groups
(bench/suite/test_bench.py `test_format`): time per (tier, format), its speed-up over the same
tier in float32, and the deviation of one epoch's loss and weights from a float64 epoch;
from the trainings, the 10-epoch test accuracy per format; from machine_info, what the CPU
does with bfloat16 (its flags and a bfloat16 vs float32 matmul measured in the same run).
"""

BATCHES = (64, 1024)


def _rows(run) -> dict[tuple[str, str], dict]:
    """(tier, format) -> {(what, batch): row}."""
    out: dict = {}
    for g in run.groups("format "):
        what, batch = g.split()[1], int(g.split("=")[-1])
        for r in run.select(g):
            out.setdefault((r["tier"], r["extra"].get("dtype")), {})[what, batch] = r
    return out


def _speedup(rows, tier, fmt, key) -> str:
    mine, base = rows[tier, fmt].get(key), rows.get((tier, "float32"), {}).get(key)
    if not mine or not base:
        return "-"
    return f"{base['median'] / mine['median']:.2f}x"


def _accuracy(trainings, tier, fmt) -> str:
    accs = [t["test_accuracy"][-1] for t in trainings
            if t["tier"] == tier and t.get("dtype", "float32") == fmt]
    return f"{100 * accs[-1]:.2f}" if accs else "-"


def hardware_lines(machine: dict) -> list[str]:
    flags = machine.get("cpu_flags") or []
    rates = machine.get("torch_matmul_gflops") or {}
    bf16 = [f for f in flags if "bf16" in f]
    if bf16:
        what = (f"this CPU reports {', '.join(bf16)}: bfloat16 matmuls have hardware "
                "support (oneDNN uses it under torch.autocast)")
    elif flags:
        what = ("this CPU has no bfloat16 arithmetic (no avx512_bf16 or amx_bf16 among its "
                f"flags: {', '.join(flags)}), so bfloat16 work is converted to float32 and back")
    else:
        what = "this CPU's instruction-set flags were not recorded"
    lines = [f"- What the hardware does: {what}."]
    if rates.get("float32") and rates.get("bfloat16"):
        lines.append(f"- Measured in the same run, a 1024^3 torch matmul: "
                     f"{rates['bfloat16']:.0f} GFLOP/s in bfloat16 vs {rates['float32']:.0f} "
                     f"in float32 ({rates['bfloat16'] / rates['float32']:.2f}x); the network's "
                     "small matmuls gain less, as the table shows.")
    return lines


def section(run, trainings) -> list[str]:
    rows = _rows(run)
    if not rows:
        return []
    md = [f"## Precision: number formats ({run.name})", "",
          "Each (tier, format) timed in one run (medians); speed-up over the same tier in "
          "float32; deviation of one epoch (batch 64) from a float64 numpy epoch: "
          "|loss - oracle| / oracle and max |W - W_oracle| / max |W_oracle|; test accuracy "
          "after 10 epochs where a training in that format is in the results. bfloat16 is "
          "torch.autocast with float32 master weights (implementations/formats.py).", ""]
    md += hardware_lines(run.machine) + [""]
    md += ["| tier | format | step ms (64) | vs float32: step 64 | step 1024 | epoch 64 | "
           "epoch 1024 | loss deviation | weight deviation | 10-epoch test acc % |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (tier, fmt), by in sorted(rows.items()):
        step = by.get(("train_step", 64))
        epoch = by.get(("epoch", 64))
        e = epoch["extra"] if epoch else {}
        dev = (f"{e['loss_deviation']:.1e}" if "loss_deviation" in e else "-",
               f"{e['weight_deviation']:.1e}" if "weight_deviation" in e else "-")
        md.append(f"| {tier} | {fmt} | {1e3 * step['median']:.3g} | " if step else
                  f"| {tier} | {fmt} | - | ")
        md[-1] += " | ".join(_speedup(rows, tier, fmt, key) for key in (
            ("train_step", 64), ("train_step", 1024), ("epoch", 64), ("epoch", 1024)))
        md[-1] += f" | {dev[0]} | {dev[1]} | {_accuracy(trainings, tier, fmt)} |"
    return md + [""]
