"""The seed README's performance claims, each with a verdict computed from the results.

The seed is the README this study began from ("Neural Network Implementation Comparison:
From Scratch vs. PyTorch"): a from-scratch NumPy network (sigmoid) next to a PyTorch one
(ReLU); its Performance section makes the six claims judged here (SEED_SOURCE).

Every verdict is derived from the numbers passed in (benchmark runs, training runs), never
written by hand: change the data and the verdict changes.
"""

from implementations.registry import FRAMEWORK_PEER, TIERS, names, select

SIGNIFICANT = 1.5  # "significantly faster" taken as at least 1.5x
ACC_MARGIN = 0.003  # accuracy differences below 0.3 points are noise between tiers


def scratch_tiers() -> list[str]:
    """The seed's "scratch implementation": our own arithmetic on the CPU, as it wrote it."""
    return names(select(family="scratch", device="cpu"))


def _is_framework(tier: str) -> bool:
    """A tier of the seed's framework, PyTorch (FRAMEWORK_PEER's; the JAX tiers are a
    peer the seed did not write about), by the registry's facts."""
    return tier in TIERS and TIERS[tier].framework == TIERS[FRAMEWORK_PEER].framework


def _steps(run, batch):
    """Median train-step seconds per tier: verdicts use medians, which a few descheduled
    calls on a shared machine cannot flip (the tables show the means beside them)."""
    return {r["tier"]: r["median"] for r in run.select(f"train_step batch={batch}")}


def _batches(run):
    return sorted({r["batch"] for r in run.rows if r["group"].startswith("train_step")})


def scratch_slower(runs) -> dict:
    """'Scratch is generally slower due to Python loops' vs the seed's PyTorch network as
    written (FRAMEWORK_PEER: eager, CPU), per batch size."""
    holds, fails = [], []
    scratch = scratch_tiers()
    for run in runs:
        for b in _batches(run):
            t = _steps(run, b)
            if FRAMEWORK_PEER not in t:
                continue
            for tier in scratch:
                if tier in t:
                    ratio = t[tier] / t[FRAMEWORK_PEER]
                    times = f"{ratio:,.0f}" if ratio >= 100 else f"{ratio:.3g}"
                    item = f"{tier} at batch {b} ({times}x {FRAMEWORK_PEER}'s time, {run.name})"
                    (holds if ratio > 1 else fails).append(item)
    return _verdict("The scratch implementation is generally slower due to Python loops.",
                    holds, fails, f"slower than {FRAMEWORK_PEER}",
                    f"not slower than {FRAMEWORK_PEER}")


def pytorch_faster(runs) -> dict:
    """'PyTorch is significantly faster': best torch tier vs best scratch tier, per batch,
    each picked on any device (the seed credits PyTorch's GPU; our own CUDA kernels are
    scratch tiers too)."""
    holds, fails = [], []
    ours = set(names(select(family="scratch")))
    for run in runs:
        for b in _batches(run):
            t = _steps(run, b)
            torch = {k: v for k, v in t.items() if _is_framework(k)}
            scratch = {k: v for k, v in t.items() if k in ours}
            if not torch or not scratch:
                continue
            bt, bs = min(torch, key=torch.get), min(scratch, key=scratch.get)
            speedup = scratch[bs] / torch[bt]
            item = (f"batch {b} on {run.name}: best torch tier {bt} is {speedup:.3g}x "
                    f"the speed of the best scratch tier {bs}")
            (holds if speedup >= SIGNIFICANT else fails).append(item)
    return _verdict("PyTorch is significantly faster due to its optimized backend and "
                    "potential GPU acceleration.", holds, fails,
                    f">= {SIGNIFICANT}x faster", f"< {SIGNIFICANT}x faster",
                    untested_if=not any(r.machine.get("gpu") for r in runs),
                    untested_note="no GPU run among the results: the GPU half is untested")


def scratch_cpu_only(runs, tiers) -> dict:
    """'The scratch implementation is limited to CPU', judged from the data: it fails for
    each scratch GPU tier (our own kernels, not torch) with a checked benchmark result on
    a GPU; with no GPU run among the results it is untested, since registered GPU tiers
    that never ran prove nothing."""
    gpu_scratch = [t.name for t in tiers if t.device == "cuda" and t.family == "scratch"]
    fails = []
    for run in runs:
        ran = sorted({r["tier"] for r in run.rows if r["tier"] in gpu_scratch})
        fails += [f"{n} ran our own kernels on {run.machine.get('gpu') or run.name} "
                  f"({run.name}), checked against the oracle" for n in ran]
    gpu_runs = any(r.machine.get("gpu") for r in runs)
    holds = [] if gpu_scratch or not gpu_runs else [
        "no scratch tier runs on a GPU in this package"]
    note = (f"no GPU run among the results: {', '.join(gpu_scratch)} "
            f"{'is' if len(gpu_scratch) == 1 else 'are'} registered but never ran here"
            if gpu_scratch and not gpu_runs else "")
    return _verdict("The scratch implementation is limited to CPU.", holds, fails,
                    "true here", "not true here", untested_if=bool(note), untested_note=note)


def dataloader_efficient(runs) -> dict:
    """'DataLoader gives efficient loading and batching': DataLoader epoch vs resident."""
    holds, fails = [], []
    for run in runs:
        rows = run.select("epoch batch=64")
        res = {r["tier"]: r["median"] for r in rows if r["loader"] == "resident"}
        for r in rows:
            if r["loader"] == "dataloader" and r["tier"] in res:
                ratio = r["median"] / res[r["tier"]]
                item = f"{r['tier']} on {run.name}: DataLoader epoch {ratio:.2f}x the resident one"
                (holds if ratio <= 1.1 else fails).append(item)
    return _verdict("DataLoader gives efficient data loading and batching.", holds, fails,
                    "within 10% of resident tensors", "more than 10% slower than resident")


def epochs_to(acc, target=0.97):
    return next((i + 1 for i, a in enumerate(acc) if a >= target), None)


def accuracy_claims(trainings) -> list[dict]:
    """'PyTorch typically achieves better accuracy with fewer epochs' and 'scratch may need
    more epochs': per-epoch accuracy and epochs to 97%, torch tiers vs scratch tiers."""
    torch = [t for t in trainings if _is_framework(t["tier"]) and t.get("limit") is None]
    ours = set(scratch_tiers())
    scratch = [t for t in trainings if t["tier"] in ours and t.get("limit") is None]
    better, worse, fewer, more = [], [], [], []
    for tt in torch:
        for st in scratch:
            if (tt["activation"], tt["batch_size"], tt["lr"]) != (
                    st["activation"], st["batch_size"], st["lr"]):
                continue
            n = min(len(tt["test_accuracy"]), len(st["test_accuracy"]))
            gap = max(abs(a - b) for a, b in zip(tt["test_accuracy"][:n],
                                                 st["test_accuracy"][:n], strict=True))
            diff = tt["test_accuracy"][n - 1] - st["test_accuracy"][n - 1]
            item = (f"{tt['tier']} vs {st['tier']} ({tt['activation']}): after {n} epochs "
                    f"{100 * diff:+.2f} points, largest gap {100 * gap:.2f} points")
            (better if diff > ACC_MARGIN else worse).append(item)
            et, es = epochs_to(tt["test_accuracy"]), epochs_to(st["test_accuracy"])
            item = f"{tt['tier']} reaches 97% at epoch {et}, {st['tier']} at epoch {es}"
            (more if (es or 99) > (et or 99) else fewer).append(item)
    untested = not (torch and scratch)
    return [
        _verdict("PyTorch typically achieves better accuracy with fewer epochs.", better, worse,
                 "torch ahead by > 0.3 points", "within 0.3 points or behind",
                 untested_if=untested, untested_note="no torch + scratch training runs given"),
        _verdict("The scratch implementation may require more epochs to achieve comparable "
                 "accuracy.", more, fewer, "scratch needs more epochs to 97%",
                 "same or fewer epochs", untested_if=untested,
                 untested_note="no torch + scratch training runs given"),
    ]


SEED_SOURCE = ("the seed README (\"Neural Network Implementation Comparison: From Scratch "
               "vs. PyTorch\"), section Performance")
# which of the seed's two lists each claim is in
CLAIM_LIST = {"The scratch implementation is generally slower due to Python loops.":
              "From Scratch",
              "The scratch implementation is limited to CPU.": "From Scratch",
              "The scratch implementation may require more epochs to achieve comparable "
              "accuracy.": "From Scratch"}


def _verdict(claim, holds, fails, holds_label, fails_label, untested_if=False,
             untested_note="") -> dict:
    if not holds and not fails:
        verdict = "untested"
    elif holds and not fails:
        verdict = "holds"
    elif fails and not holds:
        verdict = "fails"
    else:
        verdict = "holds only in part"
    notes = [untested_note] if untested_if and untested_note else []
    return {"claim": claim, "verdict": verdict, "holds": holds, "fails": fails,
            "holds_label": holds_label, "fails_label": fails_label, "notes": notes,
            "source": f"{SEED_SOURCE}, list \"{CLAIM_LIST.get(claim, 'PyTorch')}\""}


def deciding_line(c: dict) -> str:
    """The one line that decides a claim's verdict: how many cases go each way, and the
    first case of the larger side (the rest is in the folded evidence)."""
    holds, fails = c["holds"], c["fails"]
    n = len(holds) + len(fails)
    if not n:
        return c["notes"][0] if c["notes"] else "no results bear on it"
    if not fails:
        count = f"{c['holds_label']} in all {n} case{'s' if n > 1 else ''}"
    elif not holds:
        count = f"{c['fails_label']} in all {n} case{'s' if n > 1 else ''}"
    else:
        count = (f"{c['holds_label']} in {len(holds)} of {n}, {c['fails_label']} in "
                 f"{len(fails)}")
    first = (holds if len(holds) >= len(fails) else fails)[0]
    note = f" ({c['notes'][0]})" if c["notes"] else ""
    return f"{count}; e.g. {first}{note}"


def all_claims(runs, trainings, tiers) -> list[dict]:
    return [scratch_slower(runs), scratch_cpu_only(runs, tiers), pytorch_faster(runs),
            dataloader_efficient(runs), *accuracy_claims(trainings)]
