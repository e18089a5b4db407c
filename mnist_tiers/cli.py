"""The `mnist-tiers` command: list tiers, train one, profile, sweep, alternate, report.

The roof of the house: it imports bench/, profiles/ and implementations/, and nothing
imports it. Settings and their rules come from implementations.settings (the library names
a setting, this command names its flag); tiers are resolved once, by the registry.
"""

import argparse
import json
import sys
import warnings

from tqdm import tqdm

from bench.report.build import build as build_report
from bench.studies.alternating import alternate
from bench.studies.sweep import sweep
from implementations import settings
from implementations.data import DataError
from implementations.formats import FORMATS
from implementations.registry import ALTERNATE, ORACLE, TIERS, TierError
from implementations.settings import SettingError, argparse_type, help_text
from implementations.threads import available_cores, describe_threads
from implementations.training import DivergedError, train
from profiles.driver import profile

PRESETS = {
    # the seed's two configurations: its from-scratch net used sigmoid, its PyTorch net ReLU
    "seed-scratch": {"activation": "sigmoid"},
    "seed-pytorch": {"activation": "relu"},
}


class ProcsWarning(UserWarning):
    """More worker processes than cores."""


def _cmd_tiers(args) -> int:
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


def _train_options(args) -> tuple[str | None, dict]:
    """The number format and the model options that train's flags ask for."""
    dtype = args.dtype
    if args.tf32:
        if dtype not in (None, "tf32"):
            raise ValueError(f"--tf32 is --dtype tf32; it cannot be combined with --dtype {dtype}")
        dtype = "tf32"
    options = {}
    if args.loader != "resident":
        options["loader"] = args.loader
    if args.procs is not None:
        options["procs"] = args.procs
    return dtype, options


def _cmd_train(args) -> int:
    dtype, options = _train_options(args)
    cores = available_cores()
    if args.procs is not None and args.procs > cores:
        warnings.warn(f"--procs {args.procs} starts more processes than the {cores} "
                      f"cores; they time-share the cores", ProcsWarning, stacklevel=1)
    activation = args.activation or PRESETS.get(args.preset, {}).get("activation", "relu")
    bars = []  # opened at the first epoch: a refused tier or setting shows no bar

    def on_epoch(result, epoch):
        if not bars:
            bars.append(tqdm(total=args.epochs, desc=f"{args.tier} epochs", unit="epoch",
                             file=sys.stderr, disable=args.no_progress, initial=epoch))
        bars[0].update(1)
        tqdm.write(
            f"epoch {epoch + 1:3d}  loss {result.train_loss[-1]:.4f}  "
            f"test acc {100 * result.test_accuracy[-1]:6.2f}%  "
            f"{result.epoch_seconds[-1]:8.3f} s  "
            f"{result.samples_per_second[-1]:11,.0f} samples/s", file=sys.stdout)

    result = train(args.tier, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                   activation=activation, seed=args.seed, limit=args.limit,
                   data_dir=args.data_dir, threads=args.threads, on_epoch=on_epoch,
                   model_options=options, dtype=dtype, hidden=args.hidden)
    for bar in bars:
        bar.close()
    print(f"compile/warm-up: {result.compile_seconds:.2f} s (not in epoch times); "
          f"hidden {result.hidden}; format: {result.dtype}; threads: {result.threads} "
          f"({describe_threads(result.threads_by_library)})")
    if args.json:
        print(json.dumps(result.to_json()))
    return 0


def _cmd_profile(args) -> int:
    profile(args.tier or None, steps=args.steps, scalene=not args.no_scalene,
            reference=args.reference)
    return 0


def _cmd_alternate(args) -> int:
    path = alternate(args.tier or list(ALTERNATE), batch_sizes=args.batch_sizes,
                     runs=args.runs, limit=args.limit, reference=args.reference)
    doc = json.loads(path.read_text())
    print(f"alternate: {path} ({doc['wall_seconds']:.0f} s, {doc['runs']} rounds, sgemm "
          f"{doc['machine']['sgemm_gflops']} GFLOP/s)")
    for r in doc["results"]:
        print(f"  batch {r['batch']:>5} {r['tier']:<18} median {r['median_s']:.3f} s   "
              f"{r['x_floor']:.2f}x the FLOP floor   {ORACLE} / tier "
              f"{r['numpy_over_this']:.2f}x")
    return 0


def _cmd_sweep(args) -> int:
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
    md = build_report(args.results, args.train, args.out, reference=args.reference)
    print(f"report: {md}\n        {md.with_suffix('.html')}")
    return 0


def _setting(parser, setting: str, **kw) -> None:
    """An option for `setting` with its rule, default and help from implementations.settings."""
    kw.setdefault("default", settings.default(setting))
    parser.add_argument(settings.flag(setting), type=argparse_type(setting),
                        help=help_text(setting), **kw)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mnist-tiers",
        description="One MNIST MLP (784-H-10) in tiers: loops, NumPy, Numba, PyTorch.")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("tiers", help="list every tier, its description and availability")

    t = sub.add_parser("train", help="train one tier from the shared init and data order")
    t.add_argument("--tier", required=True, help="tier name (see `mnist-tiers tiers`)")
    _setting(t, "epochs")
    _setting(t, "batch_size")
    t.add_argument("--activation", choices=["relu", "sigmoid"], default=None,
                   help="hidden activation (default relu, or the preset's)")
    t.add_argument("--preset", choices=sorted(PRESETS),
                   help="seed-scratch: sigmoid; seed-pytorch: relu")
    _setting(t, "hidden")
    _setting(t, "lr")
    _setting(t, "seed")
    _setting(t, "limit")
    _setting(t, "threads")
    t.add_argument("--data-dir", default=None,
                   help="folder with the four MNIST IDX files (default: vendored copy)")
    loaders = sorted({name for t in TIERS.values() for name in t.loaders})
    t.add_argument("--loader", choices=loaders, default="resident",
                   help="how batches reach the tier: resident tensors (default) or a "
                        "DataLoader (the tiers whose `loaders` list it)")
    t.add_argument("--dtype", choices=list(FORMATS), default=None,
                   help="number format (default: the tier's own, float32 where it has it); "
                        "`mnist-tiers tiers` lists each tier's")
    t.add_argument("--tf32", action="store_true", help="CUDA tiers: the same as --dtype tf32")
    _setting(t, "procs")
    t.add_argument("--json", action="store_true", help="print a JSON summary as last line")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    pr = sub.add_parser("profile", help="phase breakdown, scalene and torch.profiler reports")
    pr.add_argument("--tier", action="append",
                    help="profile this tier (repeatable; default: every available tier)")
    _setting(pr, "steps")
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

    al = sub.add_parser("alternate", help=f"whole epochs of CPU tiers against {ORACLE}, "
                                          "alternating in one process (medians)")
    al.add_argument("--tier", action="append",
                    help=f"compare this CPU tier with {ORACLE} (repeatable; default "
                         f"{', '.join(ALTERNATE)})")
    _setting(al, "batch_sizes", default=list(settings.default("batch_sizes")))
    _setting(al, "runs")
    al.add_argument("--limit", type=argparse_type("limit"), default=None,
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
    if category.__module__.startswith(("implementations", "kernels", "bench", "profiles",
                                       "mnist_tiers")):
        print(f"mnist-tiers: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; workers were stopped
        print(f"\nmnist-tiers {args.command}: interrupted; nothing more was written",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mnist-tiers tiers | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except SettingError as exc:  # the library names the setting; a person typed the flag
        print(f"mnist-tiers: {exc.for_flag()}", file=sys.stderr)
        return 2
    except (DataError, DivergedError, TierError, ValueError, TypeError, RuntimeError,
            FileNotFoundError) as exc:
        print(f"mnist-tiers: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
