"""Command line: train a run, sweep δ, or draw a run's figures.

    python -m nclab run --dataset digits --model mlp --delta 0.1
    python -m nclab sweep --deltas 0 0.05 0.1 --seeds 0 1 2
    python -m nclab report .nclab-cache --out figures
    python -m nclab sweep --profile fashion --executor slurm --partition gpu --time 60
    python -m nclab bundle --profile fashion --deltas 0 0.05 0.1 0.3 --seeds 0 1 2 3 4 5 --name fashion --out results/fashion

``python -m nclab COMMAND --help`` lists every option. Runs go to the result cache (see
:mod:`nclab.runs`) unless ``--run-dir`` is given, so repeating a command reuses the finished run.

An expected failure (bad input, a file that is not writable, a full disk, a corrupt or foreign
result, divergence, running out of memory) prints one line ``error: ...`` on stderr and exits
non-zero (2 for bad input and unusable files, 1 otherwise); ``--debug`` also prints the traceback.
Ctrl-C exits with 130 and says where the finished epochs are kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import math
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

try:
    import torch

    from . import runs
    from .data import DATASETS
    from .models import MODELS
    from ._files import check_run_folder
    from .train import CHECKPOINT, RESULT, RunLocked, TrainConfig, train
except KeyboardInterrupt:
    # Ctrl-C while torch loads (seconds on a busy machine): nothing has started, nothing to lose.
    if __name__ != "__main__":
        raise
    print("interrupted before anything started", file=sys.stderr)
    sys.exit(130)

# The options that set TrainConfig fields are generated from its fields, so that they never drift
# from the config: every field is an option (δ and the seed of a sweep are --deltas and --seeds),
# with its type from the annotation and its help from the class docstring.
_SWEPT = ("delta", "seed")  # a sweep and a bundle take lists of these instead
_CHOICES = {"dataset": tuple(DATASETS), "model": tuple(MODELS), "schedule": ("step", "cosine")}


def _field_help() -> dict[str, str]:
    """Each TrainConfig field's description, from the Attributes section of its docstring."""
    text = (TrainConfig.__doc__ or "").split("Attributes", 1)[-1]
    helps: dict[str, str] = {}
    names: list[str] = []
    for line in text.splitlines()[2:]:
        entry = re.match(r"^    (\w[\w, ]*?) : (.*)$", line)
        if entry:
            names = [n.strip() for n in entry[1].split(",")]
            for name in names:
                helps[name] = entry[2].strip()
        elif line.startswith("        ") and names:
            for name in names:
                helps[name] += " " + line.strip()
    return helps


def _field_options() -> list[tuple[str, dict]]:
    """(flag, argparse keywords) for every TrainConfig field, from its annotation and docstring."""
    helps = _field_help()
    options = []
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = str(field.type)
        text = re.sub(r":\w+:`([^`]*)`", r"\1", helps[field.name]).replace("``", "").replace("%", "%%")
        keywords: dict = {"dest": field.name, "default": None, "help": f"{text} (default: the profile's)"}
        if kind == "bool":
            keywords["action"] = argparse.BooleanOptionalAction
        elif kind.startswith("tuple[int"):
            keywords.update(type=int, nargs="*", metavar="EPOCH")
        else:
            keywords["type"] = int if kind.startswith("int") else float if kind.startswith("float") else str
            if field.name in _CHOICES:
                keywords["choices"] = _CHOICES[field.name]
        options.append((flag, keywords))
    return options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nclab",
        description="Cross-entropy versus label smoothing through neural collapse: train networks, "
                    "measure NC1-NC4 and calibration every few epochs, and draw the figures.",
        epilog="Profiles: quick (digits + MLP on the CPU, seconds), fashion (a Fashion-MNIST subset + a "
               "narrow ResNet18 on the CPU, minutes), standard (Fashion-MNIST + ResNet18 on a GPU), paper "
               "(CIFAR-10 + ResNet18, the paper's schedule). Default: $NCLAB_PROFILE, else quick, on any "
               "hardware.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="train one network (or read it from the cache) and summarize it",
                              description="Train one network with label smoothing delta (0 = cross-entropy), "
                                          "measuring collapse and calibration as it trains; print a summary.")
    run.add_argument("--profile", choices=sorted(runs.PROFILES), help="scale preset the options below modify")
    run.add_argument("--run-dir", type=Path,
                     help="train into this folder (resuming its checkpoint) instead of the result cache")
    run.add_argument("--no-wait", action="store_true",
                     help="when another process is training this run, fail at once instead of waiting for "
                          "its result")
    _add_common(run, swept=False)

    sweep = commands.add_parser("sweep", help="CE versus LS: every delta with several seeds, then a table",
                                description="Train (or read from the cache) one run per (delta, seed) pair "
                                            "and print the final measures averaged over seeds.")
    sweep.add_argument("--profile", choices=sorted(runs.PROFILES), help="scale preset the options below modify")
    sweep.add_argument("--deltas", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2],
                       help="label smoothing values (default: 0 0.05 0.1 0.2)")
    sweep.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    sweep.add_argument("--out", type=Path, help="also draw the sweep's figures into this folder (PNG files): new, "
                                                "empty, or one nclab drew into before")
    sweep.add_argument("--workers", type=int,
                       help="worker processes, one thread each (default: $NCLAB_WORKERS, else one per core)")
    sweep.add_argument("--executor", choices=["processes", "slurm", "local"], default="processes",
                       help="where runs train: worker processes here (default), one Slurm job each "
                            "(through submitit; put NCLAB_CACHE on a shared filesystem), or submitit's local jobs")
    sweep.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    sweep.add_argument("--gpus", type=int, help="GPUs per Slurm job (default 0; Slurm only)")
    sweep.add_argument("--cpus", type=int, help="CPU cores per job (default 1; slurm or local)")
    sweep.add_argument("--time", type=int, dest="time_min", help="time limit per job in minutes (default 60; slurm or local)")
    sweep.add_argument("--mem", type=int, dest="mem_gb", help="memory per job in GB (default 8; slurm or local)")
    sweep.add_argument("--log-dir", type=Path, help="submitit's job scripts and logs (default: <cache>/submitit)")
    _add_common(sweep)

    bundle = commands.add_parser("bundle", help="publish a finished sweep as an evidence bundle (results/NAME)",
                                 description="Train (or read from the cache) the sweep's runs, then write their "
                                             "histories, float16 validation and test logits and a provenance "
                                             "manifest into a bundle folder that the book reads with "
                                             "nclab.bundle.load.")
    bundle.add_argument("--profile", choices=sorted(runs.PROFILES), help="scale preset the options below modify")
    bundle.add_argument("--deltas", type=float, nargs="+", required=True, help="label smoothing values")
    bundle.add_argument("--seeds", type=int, nargs="+", required=True, help="seeds")
    bundle.add_argument("--name", required=True, help="the bundle's name (nclab.bundle.load(NAME))")
    bundle.add_argument("--out", type=Path, required=True,
                        help="the bundle folder, e.g. results/NAME: new, empty, or holding a bundle and nothing "
                             "else (replaced by an atomic swap); a folder with other files is refused")
    bundle.add_argument("--workers", type=int, help="worker processes for runs still to train")
    bundle.add_argument("--wall-seconds", type=float,
                        help="the sweep's wall time to record, when it was trained before this command")
    _add_common(bundle)

    report = commands.add_parser("report", help="draw the figures of a run or of a folder of runs into PNG files",
                                 description="Read finished runs (a run folder, or a folder of them such as "
                                             "the cache) and write training_curves.png, nc_plane.png and, "
                                             "when several deltas are present, delta_summary.png. Runs are "
                                             "pooled over seeds only: runs that differ in any other setting "
                                             "(epochs, width, dataset, ...) form separate groups, each drawn "
                                             "into its own subfolder of --out.")
    report.add_argument("path", type=Path, help="a run folder, its result.json, or a folder of run folders")
    report.add_argument("--out", type=Path, required=True,
                        help="folder for the PNG files: new, empty, or one nclab drew into before (only the "
                             "figures it drew there, unchanged, are replaced)")
    _add_debug(report)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


def _add_debug(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: without the flag, the subcommand leaves the main parser's value in place.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")


def _add_common(parser: argparse.ArgumentParser, swept: bool = True) -> None:
    """The TrainConfig options (all fields; δ and seed only when ``swept`` is False), --no-progress, --debug."""
    for flag, keywords in _field_options():
        if not (swept and keywords["dest"] in _SWEPT):
            parser.add_argument(flag, **keywords)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_debug(parser)


def _overrides(args: argparse.Namespace) -> dict:
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    return {field: getattr(args, field) for field in fields if getattr(args, field, None) is not None}


def _summary(result, seconds: float) -> str:
    # result.json stores non-finite numbers as null: they print as nan.
    c, first, last = result.config, *({k: math.nan if v is None else v for k, v in record.items()}
                                      for record in (result.history[0], result.final))
    return "\n".join([
        f"{c.model} on {c.dataset}, {'cross-entropy' if c.delta == 0 else f'label smoothing δ={c.delta:g}'}, "
        f"seed {c.seed}, {c.epochs} epochs on {result.provenance.get('device', 'an unrecorded device')}",
        f"  final train error {last['train_error']:.4f}, test error {last['test_error']:.4f}",
        f"  NC1 {first['nc1']:.4g} (epoch {first['epoch']}) -> {last['nc1']:.4g} (epoch {last['epoch']}): "
        f"{first['nc1'] / last['nc1'] if last['nc1'] else math.inf:.1f}x lower",
        f"  NC2 (W M̃ᵀ) {last['nc2_wh']:.4f}, NC3 {last['nc3']:.4f}, NC4 {last['nc4']:.4f}",
        f"  test ECE {last['test_ece']:.4f}, after temperature scaling {last['test_ece_scaled']:.4f} "
        f"(T = {last['temperature']:.3g})",
        f"  run time {last['time_elapsed']:.1f} s (training, measurement, checkpoints); this command {seconds:.1f} s",
        f"  result: {result.run_dir / 'result.json' if result.run_dir else '(in memory)'}",
    ])


def _run(args: argparse.Namespace, context: dict) -> None:
    cfg = runs.config(args.profile, **_overrides(args))
    start = time.perf_counter()
    folder = args.run_dir if args.run_dir is not None else runs.run_dir(cfg)
    context["checkpoint"] = folder / CHECKPOINT
    if not (folder / RESULT).exists():  # a finished run is only read
        check_run_folder(folder)   # before anything is created: nclab trains only in a folder of its own
        _check_writable(folder)
    if args.run_dir is not None:
        result = train(cfg, run_dir=folder, progress=not args.no_progress, wait=not args.no_wait)
    else:
        cached = (folder / RESULT).exists()
        result = runs.get(cfg, progress=not args.no_progress, wait=not args.no_wait)
        if cached:
            print("finished run found in the cache; delete its folder to train again")
    print(_summary(result, time.perf_counter() - start))


def _sweep(args: argparse.Namespace, context: dict) -> None:
    configs = runs.grid(args.profile, deltas=args.deltas, seeds=args.seeds, **_overrides(args))
    context["cache"] = runs.cache_dir()
    if not all((runs.run_dir(c) / RESULT).exists() for c in configs):  # finished runs are only read
        _check_writable(runs.cache_dir())
    if args.out is not None:
        _check_figure_folder(args.out)   # before any training: --out must be new, empty, or nclab's figures
    cluster = {k: v for k in ("partition", "gpus", "cpus", "time_min", "mem_gb", "log_dir")
               if (v := getattr(args, k)) is not None}
    if args.executor == "processes" and cluster:
        flags = {"time_min": "--time", "mem_gb": "--mem", "log_dir": "--log-dir"}
        raise ValueError(f"{', '.join(flags.get(k, '--' + k) for k in cluster)}: options of --executor slurm or "
                         "local; the default executor trains in worker processes here")
    results = runs.sweep(configs, progress=not args.no_progress, workers=args.workers, executor=args.executor,
                         **cluster)
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


def _bundle(args: argparse.Namespace, context: dict) -> None:
    from . import bundle

    bundle.check_name(args.name)
    if args.wall_seconds is not None and not (math.isfinite(args.wall_seconds) and args.wall_seconds >= 0):
        raise ValueError(f"--wall-seconds must be a finite number of seconds >= 0, got {args.wall_seconds}")
    bundle.check_target(args.out)   # before any training: --out must be new, empty, or a bundle alone
    # ... and its folder must take the hidden folder the bundle is built in
    _check_writable(Path(args.out).expanduser().absolute().parent, "the folder of --out")
    configs = runs.grid(args.profile, deltas=args.deltas, seeds=args.seeds, **_overrides(args))
    context["cache"] = runs.cache_dir()
    start = time.perf_counter()
    results = runs.sweep(configs, progress=not args.no_progress, workers=args.workers)
    workers = args.workers or runs.default_workers()
    wall = args.wall_seconds if args.wall_seconds is not None else time.perf_counter() - start
    c = configs[0]
    with warnings.catch_warnings():   # a file kept from the old bundle's folder is reported in one line
        warnings.showwarning = lambda message, *rest, **kw: print(f"warning: {message}", file=sys.stderr)
        folder = bundle.export(results, args.out, name=args.name,
                               command="python -m nclab " + " ".join(sys.argv[1:]), wall_seconds=wall,
                               workers=workers, description=f"{c.dataset}, {c.model} (width {c.width or 'default'}), "
                                                            f"{c.train_size or 'all'} training images, {c.epochs} epochs")
    print(f"bundle of {len(results)} runs written to {folder}")


def _report(args: argparse.Namespace, context: dict) -> None:
    _check_figure_folder(args.out)
    _draw(runs.load_results(args.path), args.out)


def _check_figure_folder(out: Path) -> None:
    """Refuse an --out that nclab may not draw into (:func:`nclab.plots._figure_folder.check_folder`)."""
    from .plots._figure_folder import check_folder

    check_folder(out)


def _draw(results: list, out: Path) -> None:
    """The figures of finished runs into ``out``, one subfolder per group (:func:`nclab.plots.report.draw_report`)."""
    from .plots.report import draw_report

    draw_report(results, out)


def _check_writable(folder: Path, what: str = "the run folder") -> None:
    """Fail before any data is loaded or any epoch trained when ``folder`` cannot be created or written."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{what} is a file, not a folder", str(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot create or write the folder ({reason})", str(folder)) from None


# Errors ----------------------------------------------------------------------------------------

def _failure(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit status of an expected failure; None for anything else (a bug)."""
    if isinstance(exc, (RunLocked, runs.SweepIncomplete)):
        return str(exc), 1
    if isinstance(exc, FileNotFoundError) and exc.errno is None:
        return str(exc), 2  # nclab's own message (a missing data set or run)
    if isinstance(exc, OSError):
        paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
        reason = exc.strerror or str(exc)
        return (f"{reason}: {paths}" if paths else reason), 2 if isinstance(exc, FileNotFoundError) else 1
    if isinstance(exc, ValueError):
        return str(exc), 2
    if isinstance(exc, FloatingPointError):
        return str(exc), 1
    out_of_memory = getattr(torch, "OutOfMemoryError", ())
    if isinstance(exc, out_of_memory) or (isinstance(exc, RuntimeError) and re.search(
            r"out of memory|not enough memory|can't allocate memory|tried to allocate", str(exc), re.I)):
        tried = re.search(r"tried to allocate [^.;()]+", str(exc), re.I)
        detail = f" ({tried.group(0).strip()})" if tried else ""
        return f"out of memory{detail}; use a smaller --width or --batch-size", 1
    return None


def _interrupted(context: dict) -> str:
    checkpoint = context.get("checkpoint")
    if checkpoint is not None:
        if Path(checkpoint).exists():
            return (f"interrupted; the last finished epoch is saved in {checkpoint}, run the same command "
                    "to resume")
        return "interrupted before the first epoch finished; nothing was saved, run the same command to start"
    if context.get("cache") is not None:
        return (f"interrupted; the finished epochs are saved in the run folders under {context['cache']}, "
                "run the same command to resume")
    return "interrupted"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m nclab`` and of the ``nclab`` script."""
    args = _parser().parse_args(argv)
    context: dict = {}  # what the command has told about where its work is kept
    try:
        {"run": _run, "sweep": _sweep, "bundle": _bundle, "report": _report}[args.command](args, context)
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print(_interrupted(context), file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read the output has gone (`... | head`): nothing to report. Standard output is
        # pointed at /dev/null so that flushing it at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        failure = _failure(exc)
        if failure is None:
            raise
        if args.debug:
            traceback.print_exc()
        message, status = failure
        print(f"error: {message}", file=sys.stderr)
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
