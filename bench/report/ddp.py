"""The report's data-parallel section: does DDP pay here, where would it, on N machines.

Everything comes from one benchmark run's "ddp epoch batch=B" groups (bench/suite/test_bench.py
`test_ddp_epoch`): torch-cpu with all cores, torch-ddp with W = 1 and W = 2 processes, rank
0's all-reduce seconds, and the all-reduce times of W = 2 for the alpha-beta model
(implementations.allreduce.fit_alpha_beta, ring_allreduce_seconds).

The projection (labelled as such in the report): a step of global batch B on N machines,
each as fast as one process here, takes
    t(N) = t0 + F(B) / (N R) + t_allreduce(N, gradient bytes)
where t0 (s per step) and R (FLOP/s) come from the W = 1 epochs at two batch sizes (their
all-reduce time taken out) and F(B) = 0.41 MFLOP per sample (implementations.experiment.
step_flops). DDP on N machines pays when F(B) / R (1 - 1/N) > t_allreduce(N), i.e. from
B* = N / (N - 1) * R * t_allreduce(N) / (F per sample).
"""

from implementations.allreduce import fit_alpha_beta, gradient_bytes, ring_allreduce_seconds
from implementations.experiment import D, H, K, step_flops
from implementations.registry import TIERS

MACHINES = (1, 2, 4, 8, 16)
WIDTHS = (128, 512, 2048, 8192)


def _rows(run) -> dict[int, dict[str, dict]]:
    """batch -> label -> row of the ddp epoch groups."""
    out: dict = {}
    for g in run.groups("ddp epoch"):
        for r in run.select(g):
            out.setdefault(r["batch"], {})[r["extra"].get("label", r["tier"])] = r
    return out


def _multi(row) -> bool:
    """A row of a tier that runs in several worker processes (the registry's `processes`)."""
    return row["tier"] in TIERS and TIERS[row["tier"]].processes


def _workers(rows: dict, procs: int) -> dict | None:
    """The multi-process row with `procs` workers, if the run has one."""
    return next((r for r in rows.values() if _multi(r) and r["extra"].get("procs") == procs),
                None)


def _single(rows: dict) -> dict | None:
    """The single-process row every multi-process epoch is compared with."""
    return next((r for r in rows.values() if not _multi(r)), None)


def _per_step(row) -> float:
    """Seconds per step of an epoch row, its all-reduce time taken out: the mean epoch less
    the mean all-reduce time (the suite records the all-reduce as a mean over the rounds,
    so this one difference is taken between means)."""
    steps = -(-row["epoch_samples"] // row["batch"])
    return (row["mean"] - (row["extra"].get("allreduce_seconds") or 0.0)) / steps


def compute_model(by_batch) -> tuple[float, float] | None:
    """(t0 s per step, R FLOP/s) from the W = 1 epochs at the two largest-apart batches."""
    pts = sorted((b, _workers(rows, 1)) for b, rows in by_batch.items()
                 if _workers(rows, 1))
    if len(pts) < 2:
        return None
    (b1, r1), (b2, r2) = pts[0], pts[-1]
    f1, f2 = step_flops(b1)["train_step"], step_flops(b2)["train_step"]
    t1, t2 = _per_step(r1), _per_step(r2)
    if t2 <= t1:
        return None
    rate = (f2 - f1) / (t2 - t1)
    return max(0.0, t1 - f1 / rate), rate


def section(run) -> list[str]:
    by_batch = _rows(run)
    if not by_batch:
        return []
    rows_all = [r for rows in by_batch.values() for r in rows.values()]
    multi = next((r["tier"] for r in rows_all if _multi(r)), "?")
    single = next((r["tier"] for r in rows_all if not _multi(r)), "?")
    md = [f"## Data parallelism: {multi} ({run.name})", "",
          f"Epochs at each batch size: {single} with every core, {multi} with W worker "
          "processes (gloo; cores // W threads each). The all-reduce share is rank 0's time "
          "from each gradient bucket's hand-off to its all-reduce's completion.", ""]
    verdicts = []
    for batch in sorted(by_batch):
        rows = by_batch[batch]
        base = _single(rows)
        md += [f"**ddp epoch batch={batch}**", "",
               "| tier | processes x threads | median epoch s | samples/s | all-reduce s (share "
               "of the mean epoch) | "
               f"vs {single} |", "|---|---|---:|---:|---:|---:|"]
        for label, r in sorted(rows.items(), key=lambda kv: kv[1]["median"]):
            e = r["extra"]
            threads = e.get("threads_per_proc") or e.get("threads") or "-"
            comm = e.get("allreduce_seconds")
            comm_s = f"{comm:.3g} ({100 * e.get('allreduce_share', 0):.0f}%)" if comm else "-"
            vs = f"{base['median'] / r['median']:.3g}x" if base else "-"
            md.append(f"| {label} | {e.get('procs', 1)} x {threads} | {r['median']:.3g} | "
                      f"{r['epoch_samples'] / r['median']:,.0f} | {comm_s} | {vs} |")
        md.append("")
        two = _workers(rows, 2)
        best_single = min((r["median"] for r in rows.values() if r is not two), default=None)
        if two and best_single:
            verdicts.append((batch, best_single / two["median"], two))
    if verdicts:
        pays = [b for b, ratio, _ in verdicts if ratio > 1]
        text = ", ".join(f"batch {b}: W=2 runs at {ratio:.2f}x the best single-process "
                         f"epoch, all-reduce {100 * r['extra'].get('allreduce_share', 0):.0f}% "
                         f"of it" for b, ratio, r in verdicts)
        verdict = "pays" if pays else "does not pay"
        md += [f"**Verdict: data parallelism {verdict} for this network on this machine** "
               f"({text}). Two ranks on one machine share its cores, so DDP adds no "
               "arithmetic here; it only adds the all-reduce and the per-rank overhead.", ""]
    md += _projection(by_batch)
    return md


def _projection(by_batch) -> list[str]:
    two = next((r for r in (_workers(rows, 2) for rows in by_batch.values())
                if r and r["extra"].get("allreduce_times")), None)
    model = compute_model(by_batch)
    if two is None or model is None:
        return ["No all-reduce timings or too few W=1 epochs in this run: no projection.", ""]
    times = {int(k): v for k, v in two["extra"]["allreduce_times"].items()}
    alpha, bandwidth = fit_alpha_beta(times)
    t0, rate = model
    grad = gradient_bytes(D, H, K)
    measured = times.get(grad)
    md = ["**Projection (alpha-beta model, not a measurement)**: the all-reduce of this run "
          f"(W=2, loopback) fits alpha = {alpha * 1e6:.0f} us and bandwidth = "
          f"{bandwidth / 1e9:.2f} GB/s"
          + (f"; at this network's {grad / 1024:.0f} KiB of gradients the model says "
             f"{1e3 * (alpha + grad / bandwidth):.2f} ms, measured {1e3 * measured:.2f} ms"
             if measured else "")
          + f". One process here: t0 = {t0 * 1e6:.0f} us per step plus the FLOPs at "
          f"R = {rate / 1e9:.1f} GFLOP/s (from the W=1 epochs). A ring all-reduce over N "
          "machines takes 2(N-1) alpha + 2(N-1)/N bytes/bandwidth (Thakur et al. 2005); a "
          "real network has a larger alpha and a lower bandwidth than loopback.", "",
          "| global batch | " + " | ".join(f"N={n} epoch s" for n in MACHINES) + " |",
          "|---:|" + "---:|" * len(MACHINES)]
    for batch in sorted(by_batch):
        steps = -(-60000 // batch)
        cells = []
        for n in MACHINES:
            t = t0 + step_flops(batch)["train_step"] / (n * rate) + ring_allreduce_seconds(
                grad, n, alpha, bandwidth)
            cells.append(f"{steps * t:.3g}")
        md.append(f"| {batch} | " + " | ".join(cells) + " |")
    md += ["", "Where two machines would pay (B* = 2 R t_allreduce(2) / FLOPs per sample, "
           "the same projection), by hidden width:", "",
           "| hidden width H | gradient MiB | all-reduce ms (N=2) | pays from global batch |",
           "|---:|---:|---:|---:|"]
    for h in WIDTHS:
        nbytes = gradient_bytes(D, h, K)
        t_ar = ring_allreduce_seconds(nbytes, 2, alpha, bandwidth)
        per_sample = step_flops(1, D, h, K)["train_step"]
        md.append(f"| {h} | {nbytes / 2**20:.2f} | {t_ar * 1e3:.2f} | "
                  f"{2 * rate * t_ar / per_sample:,.0f} |")
    return md + [""]
