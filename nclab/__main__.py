"""Command line: train a run, sweep δ, or draw a run's figures.

    python -m nclab run --dataset digits --model mlp --delta 0.1
    python -m nclab sweep --deltas 0 0.05 0.1 --seeds 0 1 2
    python -m nclab report .nclab-cache --out figures

``python -m nclab COMMAND --help`` lists every option. Runs go to the result cache (see
:mod:`nclab.runs`) unless ``--run-dir`` is given, so repeating a command reuses the finished run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import runs
from .data import DATASETS
from .models import MODELS
from .train import RESULT, train

# Options shared by run and sweep: (flag, TrainConfig field, type, help).
_CONFIG_OPTIONS = [
    ("--dataset", "dataset", str, f"dataset: {', '.join(DATASETS)}"),
    ("--model", "model", str, f"network: {', '.join(MODELS)}"),
    ("--width", "width", int, "hidden units (mlp) or base channels (conv nets)"),
    ("--epochs", "epochs", int, "passes over the training set"),
    ("--batch-size", "batch_size", int, "mini-batch size"),
    ("--lr", "lr", float, "initial learning rate"),
    ("--weight-decay", "weight_decay", float, "SGD weight decay"),
    ("--log-every", "log_every", int, "measure every this many epochs"),
    ("--device", "device", str, "auto, cpu, cuda, cuda:1, ..."),
    ("--lambda-W", "lambda_W", float, "explicit penalty on the classifier, as in the UFM (turns weight decay off)"),
    ("--lambda-H", "lambda_H", float, "explicit penalty on the features, as in the UFM (turns weight decay off)"),
    ("--lambda-b", "lambda_b", float, "explicit penalty on the classifier bias, as in the UFM"),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nclab",
        description="Cross-entropy versus label smoothing through neural collapse: train networks, "
                    "measure NC1-NC4 and calibration every few epochs, and draw the figures.",
        epilog="Profiles: quick (digits + MLP on the CPU, seconds), standard (Fashion-MNIST + ResNet18 "
               "on a GPU), paper (CIFAR-10 + ResNet18, the paper's schedule). Default: $NCLAB_PROFILE, "
               "else standard with a GPU and quick without.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="train one network (or read it from the cache) and summarize it",
                              description="Train one network with label smoothing delta (0 = cross-entropy), "
                                          "measuring collapse and calibration as it trains; print a summary.")
    run.add_argument("--profile", choices=sorted(runs.PROFILES), help="scale preset the options below modify")
    run.add_argument("--delta", type=float, default=0.0, help="label smoothing in [0, 1); 0 is cross-entropy (default 0)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--augment", action="store_true", help="random crops and flips (off in the paper)")
    run.add_argument("--run-dir", type=Path,
                     help="train into this folder (resuming its checkpoint) instead of the result cache")
    _add_common(run)

    sweep = commands.add_parser("sweep", help="CE versus LS: every delta with several seeds, then a table",
                                description="Train (or read from the cache) one run per (delta, seed) pair "
                                            "and print the final measures averaged over seeds.")
    sweep.add_argument("--profile", choices=sorted(runs.PROFILES), help="scale preset the options below modify")
    sweep.add_argument("--deltas", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2],
                       help="label smoothing values (default: 0 0.05 0.1 0.2)")
    sweep.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    sweep.add_argument("--out", type=Path, help="also draw the sweep's figures into this folder (PNG files)")
    _add_common(sweep)

    report = commands.add_parser("report", help="draw the figures of a run or of a folder of runs into PNG files",
                                 description="Read finished runs (a run folder, or a folder of them such as "
                                             "the cache) and write training_curves.png, nc1_vs_nc2.png and, "
                                             "when several deltas are present, delta_summary.png.")
    report.add_argument("path", type=Path, help="a run folder, its result.json, or a folder of run folders")
    report.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    for flag, field, kind, text in _CONFIG_OPTIONS:
        parser.add_argument(flag, dest=field, type=kind, help=f"{text} (default: the profile's)")
    parser.add_argument("--milestones", type=int, nargs="*",
                        help="epochs after which the lr drops 10x; none for a constant lr (default: the profile's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _overrides(args: argparse.Namespace) -> dict:
    fields = [field for _, field, _, _ in _CONFIG_OPTIONS] + ["milestones"]
    return {field: getattr(args, field) for field in fields if getattr(args, field) is not None}


def _summary(result, seconds: float) -> str:
    c, first, last = result.config, result.history[0], result.final
    return "\n".join([
        f"{c.model} on {c.dataset}, {'cross-entropy' if c.delta == 0 else f'label smoothing δ={c.delta:g}'}, "
        f"seed {c.seed}, {c.epochs} epochs on {result.provenance['device']}",
        f"  final train error {last['train_error']:.4f}, test error {last['test_error']:.4f}",
        f"  NC1 {first['nc1']:.4g} (epoch {first['epoch']}) -> {last['nc1']:.4g} (epoch {last['epoch']}): "
        f"{first['nc1'] / last['nc1']:.1f}x lower",
        f"  NC2 (W M̃ᵀ) {last['nc2_wh']:.4f}, NC3 {last['nc3']:.4f}, NC4 {last['nc4']:.4f}",
        f"  test ECE {last['test_ece']:.4f}, after temperature scaling {last['test_ece_scaled']:.4f} "
        f"(T = {last['temperature']:.3g})",
        f"  run time {last['time_elapsed']:.1f} s (training, measurement, checkpoints); this command {seconds:.1f} s",
        f"  result: {result.run_dir / 'result.json' if result.run_dir else '(in memory)'}",
    ])


def _run(args: argparse.Namespace) -> None:
    cfg = runs.config(args.profile, delta=args.delta, seed=args.seed, augment=args.augment, **_overrides(args))
    start = time.perf_counter()
    if args.run_dir is not None:
        result = train(cfg, run_dir=args.run_dir, progress=not args.no_progress)
    else:
        if (runs.run_dir(cfg) / RESULT).exists():
            print("finished run found in the cache; delete its folder to train again")
        result = runs.get(cfg, progress=not args.no_progress)
    print(_summary(result, time.perf_counter() - start))


def _sweep(args: argparse.Namespace) -> None:
    configs = runs.grid(args.profile, deltas=args.deltas, seeds=args.seeds, **_overrides(args))
    results = runs.sweep(configs, progress=not args.no_progress)
    c = configs[0]
    print(f"{c.model} on {c.dataset}, {c.epochs} epochs, final epoch, mean over seeds {args.seeds}")
    keys = ["train_error", "test_error", "nc1", "nc2_wh", "nc3", "w_norm", "h_norm", "test_ece",
            "test_ece_scaled", "temperature"]
    print(f"{'delta':>6} " + " ".join(f"{k:>15}" for k in keys))
    for delta in args.deltas:
        finals = [r.final for r in results if r.config.delta == delta]
        cells = [sum(f[k] for f in finals) / len(finals) for k in keys]
        print(f"{delta:6g} " + " ".join(f"{v:15.4g}" for v in cells))
    print(f"runs in {runs.cache_dir()}")
    if args.out is not None:
        _draw(results, args.out)


def _report(args: argparse.Namespace) -> None:
    _draw(runs.load_results(args.path), args.out)


def _draw(results: list, out: Path) -> None:
    from . import plots

    out.mkdir(parents=True, exist_ok=True)
    figures = {"training_curves": plots.training_curves, "nc1_vs_nc2": plots.nc1_vs_nc2}
    if len({r.config.delta for r in results}) > 1:
        figures["delta_summary"] = plots.delta_summary
    for name, draw in figures.items():
        path = out / f"{name}.png"
        draw(results).savefig(path, dpi=120)
        print(path)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m nclab`` and of the ``nclab`` script."""
    args = _parser().parse_args(argv)
    try:
        {"run": _run, "sweep": _sweep, "report": _report}[args.command](args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
