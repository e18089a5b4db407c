"""The `mnist-tiers` command: list tiers, train one, profile, build the report."""

import argparse
import json
import math
import sys
import warnings

PRESETS = {
    # the seed's two configurations: its from-scratch net used sigmoid, its PyTorch net ReLU
    "seed-scratch": {"activation": "sigmoid"},
    "seed-pytorch": {"activation": "relu"},
}


def whole_number(minimum: int):
    """An argparse type: an int >= minimum, with a message that names the rule."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, "
                                             f"got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def batch_size_list(text: str) -> list[int]:
    """An argparse type: comma-separated whole numbers >= 1 (bench.suite.plugin's rule)."""
    from bench.suite.plugin import parse_batch_sizes

    try:
        return list(parse_batch_sizes(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class ProcsWarning(UserWarning):
    """More worker processes than cores."""


def _cmd_tiers(args) -> int:
    from implementations.registry import TIERS

    width = max(len(n) for n in TIERS)
    for tier in TIERS.values():
        reason = tier.unavailable_reason
        state = "available" if reason is None else f"unavailable: {reason}"
        note = tier.note() if reason is None else None
        if note:
            state += f" ({note})"
        print(f"{tier.name:<{width}}  [{tier.device}] {tier.description}")
        print(f"{'':<{width}}  {state}; formats: {', '.join(tier.formats)}")
    return 0


def _cmd_train(args) -> int:
    from tqdm import tqdm

    from implementations.registry import TIERS, get_tier
    from implementations.threads import available_cores
    from implementations.training import train

    tier = get_tier(args.tier)
    if tier.unavailable_reason:
        print(f"mnist-tiers: tier {tier.name!r} is unavailable here: "
              f"{tier.unavailable_reason}", file=sys.stderr)
        return 2
    settings = {"activation": "relu"}
    if args.preset:
        settings.update(PRESETS[args.preset])
    if args.activation:
        settings["activation"] = args.activation
    options = {}
    if args.loader not in tier.loaders:
        raise ValueError(f"tier {tier.name!r} takes batches only {' or '.join(tier.loaders)}"
                         f"; --loader {args.loader} applies to "
                         + ", ".join(t.name for t in TIERS.values() if args.loader in t.loaders))
    if args.loader != "resident":
        options["loader"] = args.loader
    dtype = args.dtype
    if args.tf32:
        if dtype not in (None, "tf32"):
            raise ValueError(f"--tf32 is --dtype tf32; it cannot be combined with --dtype {dtype}")
        dtype = "tf32"
    if args.procs is not None:
        if not tier.processes:
            multi = ", ".join(t.name for t in TIERS.values() if t.processes)
            raise ValueError(f"tier {tier.name!r} runs in one process; --procs applies to "
                             f"{multi}")
        cores = available_cores()
        if args.procs > cores:
            warnings.warn(f"--procs {args.procs} starts more processes than the {cores} "
                          f"cores; they time-share the cores", ProcsWarning, stacklevel=1)
        options["procs"] = args.procs
    bar = tqdm(total=args.epochs, desc=f"{tier.name} epochs", unit="epoch",
               file=sys.stderr, disable=args.no_progress)

    def on_epoch(result, epoch):
        bar.update(1)
        tqdm.write(
            f"epoch {epoch + 1:3d}  loss {result.train_loss[-1]:.4f}  "
            f"test acc {100 * result.test_accuracy[-1]:6.2f}%  "
            f"{result.epoch_seconds[-1]:8.3f} s  "
            f"{result.samples_per_second[-1]:11,.0f} samples/s", file=sys.stdout)

    result = train(args.tier, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                   activation=settings["activation"], seed=args.seed, limit=args.limit,
                   data_dir=args.data_dir, threads=args.threads, on_epoch=on_epoch,
                   model_options=options, dtype=dtype, hidden=args.hidden)
    bar.close()
    print(f"compile/warm-up: {result.compile_seconds:.2f} s (not in epoch times); "
          f"hidden {result.hidden}; format: {result.dtype}; threads: {result.threads} "
          f"(every library: {result.threads_by_library})")
    if args.json:
        print(json.dumps(result.to_json()))
    return 0


def _cmd_profile(args) -> int:
    from profiles.driver import profile

    profile(args.tier or None, steps=args.steps, scalene=not args.no_scalene,
            reference=args.reference)
    return 0


def _cmd_alternate(args) -> int:
    from bench.studies.alternating import alternate

    path = alternate(args.tier or ["numba-fused"], batch_sizes=args.batch_sizes,
                     runs=args.runs, limit=args.limit, reference=args.reference)
    doc = json.loads(path.read_text())
    print(f"alternate: {path} ({doc['wall_seconds']:.0f} s, {doc['runs']} rounds, sgemm "
          f"{doc['machine']['sgemm_gflops']} GFLOP/s)")
    for r in doc["results"]:
        print(f"  batch {r['batch']:>5} {r['tier']:<18} median {r['median_s']:.3f} s   "
              f"{r['x_floor']:.2f}x the FLOP floor   numpy / tier {r['numpy_over_this']:.2f}x")
    return 0


def _cmd_sweep(args) -> int:
    from bench.studies.sweep import sweep

    path = sweep(args.tier or None, quick=args.quick, reference=args.reference,
                 progress=not args.no_progress, dtype=args.dtype)
    doc = json.loads(path.read_text())
    print(f"sweep: {path} ({doc['wall_seconds']:.0f} s)")
    for tier, m in doc["cost_models"].items():
        if m:
            print(f"  {tier:<18} t_step = {m['t0_us']:.1f} us + FLOPs / "
                  f"{m['rate_gflops']:.3g} GFLOP/s   (R^2 of log t {m['r2_log']:.3f}, "
                  f"{len(m['misses'])} cells missed by > 30%)")
    return 0


def _cmd_report(args) -> int:
    from bench.report.build import build

    md = build(args.results, args.train, args.out, reference=args.reference)
    print(f"report: {md}\n        {md.with_suffix('.html')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from implementations.formats import FORMATS

    p = argparse.ArgumentParser(
        prog="mnist-tiers",
        description="One MNIST MLP (784-H-10) in tiers: loops, NumPy, Numba, PyTorch.")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("tiers", help="list every tier, its description and availability")

    t = sub.add_parser("train", help="train one tier from the shared init and data order")
    t.add_argument("--tier", required=True, help="tier name (see `mnist-tiers tiers`)")
    t.add_argument("--epochs", type=whole_number(1), default=10)
    t.add_argument("--batch-size", type=whole_number(1), default=64)
    t.add_argument("--activation", choices=["relu", "sigmoid"], default=None,
                   help="hidden activation (default relu, or the preset's)")
    t.add_argument("--preset", choices=sorted(PRESETS),
                   help="seed-scratch: sigmoid; seed-pytorch: relu")
    t.add_argument("--hidden", type=whole_number(1), default=128,
                   help="hidden units H of the 784 -> H -> 10 network (default 128)")
    t.add_argument("--lr", type=positive_number, default=0.1)
    t.add_argument("--seed", type=whole_number(0), default=0)
    t.add_argument("--limit", type=whole_number(1), default=None,
                   help="train on the first N training samples only")
    t.add_argument("--threads", type=whole_number(1), default=None,
                   help="threads for every CPU library (default: all cores; more than the "
                        "cores warns and runs the cores)")
    t.add_argument("--data-dir", default=None,
                   help="folder with the four MNIST IDX files (default: vendored copy)")
    t.add_argument("--loader", choices=["resident", "dataloader"], default="resident",
                   help="torch tiers: batches from resident tensors or a DataLoader")
    t.add_argument("--dtype", choices=list(FORMATS), default=None,
                   help="number format (default float32; loops: float64); `mnist-tiers "
                        "tiers` lists each tier's")
    t.add_argument("--tf32", action="store_true", help="CUDA tiers: the same as --dtype tf32")
    t.add_argument("--procs", type=whole_number(1), default=None,
                   help="torch-ddp: worker processes (default 2), each with cores // procs "
                        "threads")
    t.add_argument("--json", action="store_true", help="print a JSON summary as last line")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    pr = sub.add_parser("profile", help="phase breakdown, scalene and torch.profiler reports")
    pr.add_argument("--tier", action="append",
                    help="profile this tier (repeatable; default: every available tier)")
    pr.add_argument("--steps", type=whole_number(1), default=None,
                    help="train steps for the breakdown (default 200; loops 5)")
    pr.add_argument("--no-scalene", action="store_true", help="skip the scalene runs")
    pr.add_argument("--reference", action="store_true",
                    help="write the committed reference set (profiles/reports/<machine>) "
                         "instead of out/profiles/<machine>")

    sw = sub.add_parser("sweep", help="train step of every CPU tier over batch x hidden width, "
                                      "with a cost model per tier")
    sw.add_argument("--tier", action="append", help="sweep this tier (repeatable; default: "
                                                    "every available CPU tier)")
    sw.add_argument("--quick", action="store_true", help="a small grid (batch 1, 64, 1024 x "
                                                         "hidden 32, 512)")
    sw.add_argument("--reference", action="store_true",
                    help="write the committed bench/results/<machine>/sweep.json")
    sw.add_argument("--dtype", choices=list(FORMATS), default=None,
                    help="number format (default: each tier's own); tiers without it are "
                         "left out")
    sw.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    al = sub.add_parser("alternate", help="whole epochs of CPU tiers against numpy, "
                                          "alternating in one process (medians)")
    al.add_argument("--tier", action="append",
                    help="compare this CPU tier with numpy (repeatable; default numba-fused)")
    al.add_argument("--batch-sizes", type=batch_size_list, default=[1, 64, 1024],
                    help="comma-separated batch sizes (default 1,64,1024)")
    al.add_argument("--runs", type=whole_number(3), default=3,
                    help="rounds of one epoch per tier (at least 3; default 3)")
    al.add_argument("--limit", type=whole_number(1), default=None,
                    help="train on the first N samples (default all; 6000 below batch 16)")
    al.add_argument("--reference", action="store_true",
                    help="write the committed bench/results/<machine>/alternating.json")

    rp = sub.add_parser("report", help="tables, plots and claim verdicts from saved results")
    rp.add_argument("--results", action="append",
                    help="a pytest-benchmark JSON (repeatable; default: every "
                         "out/bench/*/latest.json, else bench/results/*/latest.json)")
    rp.add_argument("--train", action="append",
                    help="output of `mnist-tiers train --json` (repeatable; default: "
                         "out/bench/*/train-*.json, else bench/results/*/train-*.json)")
    rp.add_argument("--out", default=None, help="output folder (default: out/report)")
    rp.add_argument("--reference", action="store_true",
                    help="read and rewrite the committed reference set (bench/results)")
    return p


COMMANDS = {"tiers": _cmd_tiers, "train": _cmd_train, "profile": _cmd_profile,
            "sweep": _cmd_sweep, "alternate": _cmd_alternate, "report": _cmd_report}


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Our own warnings as one line each (`mnist-tiers: warning: ...`), others as usual."""
    if category.__module__.startswith(("implementations", "kernels", "bench", "profiles")):
        print(f"mnist-tiers: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    from implementations.data import DataError
    from implementations.training import DivergedError

    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # `mnist-tiers tiers | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except (DataError, DivergedError, ValueError, TypeError, RuntimeError,
            FileNotFoundError) as exc:
        print(f"mnist-tiers: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
