"""Run configurations, scale profiles and a result cache keyed by the config (chapters 3-5 and 9).

A chapter asks for a result, not for a training run::

    import nclab as nc
    ce = nc.runs.get(nc.runs.config(delta=0.0, seed=0))
    ls = nc.runs.get(nc.runs.config(delta=0.05, seed=0))

:func:`get` trains only when the cache holds no finished run of exactly that config (and nclab
version); otherwise it reads the stored result. A run stopped half-way resumes from its checkpoint.
Chapters 2-5 share one set of runs, :func:`book_sweep` (δ ∈ {0, 0.05, 0.1, 0.2, 0.3, 0.4}, eight
seeds), and read what the final networks compute with :func:`outputs`. :func:`sweep` trains the
runs a list of configs still needs in worker processes, one per core.

:class:`Outputs`, :func:`outputs` and :func:`outputs_by_delta` live in :mod:`nclab.evaluate`, with
everything else that evaluates a network; they are imported here, where the chapters ask for them.

Profiles
--------
One switch picks the scale, so the chapter text stays the same:

- ``quick``: scikit-learn's digits and a small MLP on the CPU, seconds per run (the book build
  and CI); weight decay 2e-2, far above the paper's 5e-4, so that this small network reaches the
  terminal phase of training within 60 epochs.
- ``fashion``: real images on the CPU: a fixed balanced subset of 2000 Fashion-MNIST training
  images, a narrow ResNet18 (width 8), and the paper's optimizer (SGD, momentum 0.9, lr 0.05,
  weight decay 5e-4, batch 128, no augmentation), lr times 0.1 after epoch 30 of 50: minutes per
  run on one core. The book reads its evidence from a committed results bundle
  (:mod:`nclab.bundle`) instead of training it.
- ``standard``: Fashion-MNIST and ResNet18 on one GPU, a short schedule (minutes per run).
- ``paper``: the paper's setting: CIFAR-10, ResNet18, SGD (momentum 0.9, lr 0.05, weight decay
  5e-4, batch 128), lr times 0.1 after epoch 150, 350 epochs.

The profile is the ``profile`` argument, else ``$NCLAB_PROFILE``, else ``quick``: the scale never
changes by itself with the hardware (a GPU runtime in Colab runs the same quick sweep); larger
profiles run only when asked for. Before training, :func:`sweep` prints its plan: how many runs,
of what, and about how long they take (from the runs already finished, else from
:data:`RUN_SECONDS`).

Cache
-----
``$NCLAB_CACHE`` if set; else, when the package is imported from a source checkout of the book
(:func:`nclab.settings.checkout`), ``.nclab-cache/`` in that checkout (so ``make book``, the
chapters and the tests share the repository's cache); else ``~/.cache/nclab``. The working
directory plays no part. Each run is a folder ``<dataset>-<model>-delta<δ>-seed<s>-<key>``
holding ``result.json`` (config, history, provenance; plain JSON), ``checkpoint.pt`` and ``.lock``.
One process at a time owns a run folder (a file lock): a second process asking for the same run
waits for the first to finish and reads its result, and every read checks that the stored config
is the requested one.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import settings
from ._checks import check_known_fields, check_positive_int, check_str
from ._deltas import SWEEP_DELTAS  # the paper's first δ sweep
from .evaluate import Outputs, outputs, outputs_by_delta
from .train import RESULT, RunResult, TrainConfig, _cpu_threads, cache_key, cache_name, train

__all__ = ["PROFILES", "default_profile", "config", "grid", "cache_dir", "run_dir", "get", "sweep", "default_workers",
           "load_results", "SWEEP_DELTAS", "SWEEP_SEEDS", "book_sweep", "select", "Outputs", "outputs",
           "outputs_by_delta", "plan", "profile_of", "RUN_SECONDS", "SweepIncomplete"]

PROFILES: dict[str, dict] = {
    "quick": dict(dataset="digits", model="mlp", epochs=60, batch_size=64, lr=0.02, momentum=0.9,
                  weight_decay=2e-2, schedule="step", milestones=[30, 50], log_every=2, device="cpu",
                  threads=1),
    "fashion": dict(dataset="fashion-mnist", model="resnet18", width=8, train_size=2000, epochs=50,
                    batch_size=128, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="step",
                    milestones=[30], log_every=5, light_every=None, eval_subset=None, device="cpu", threads=1),
    # The pre-registered study (results/fashion-study/PREREGISTRATION.md and its amendment): fashion
    # unchanged, plus a light record (training loss, error, NC1) every epoch, and the full records
    # before the last measured on a fixed balanced subset of 1000 images (100 per class) of the
    # validation and of the test split (the last, with the primary endpoints, on the whole splits).
    "fashion-study": dict(dataset="fashion-mnist", model="resnet18", width=8, train_size=2000, epochs=50,
                          batch_size=128, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="step",
                          milestones=[30], log_every=5, light_every=1, eval_subset=1000, device="cpu",
                          threads=1),
    "standard": dict(dataset="fashion-mnist", model="resnet18", epochs=30, batch_size=128, lr=0.05,
                     momentum=0.9, weight_decay=5e-4, schedule="step", milestones=[20], log_every=2,
                     device="auto"),
    "paper": dict(dataset="cifar10", model="resnet18", epochs=350, batch_size=128, lr=0.05,
                  momentum=0.9, weight_decay=5e-4, schedule="step", milestones=[150], log_every=5,
                  device="auto"),
}


# Seconds one run of a profile takes on one core of the book's build machine (a 2-core AMD EPYC),
# measured: the quick sweep's 48 runs took 241 s in all (time_elapsed summed); the fashion runs'
# median is in results/fashion/manifest.json. None: a GPU profile, not measured here.
# fashion-study: 50 training epochs (3.24 s), 39 light passes (0.81 s), 10 full measurements on the
# 1000-image evaluation subsets (about 1.3 s) and the final one on the whole splits (5.6 s), at the
# per-epoch costs of benchmarks/bench_measurement.py (one thread).
RUN_SECONDS: dict[str, float | None] = {"quick": 5.0, "fashion": 483.0, "fashion-study": 215.0, "standard": None,
                                        "paper": None}


def default_profile() -> str:
    """``$NCLAB_PROFILE`` if set, else "quick" (whatever the hardware: larger profiles only on request)."""
    return settings.profile(PROFILES)


def profile_of(cfg: TrainConfig) -> str | None:
    """The profile whose settings ``cfg`` has (δ, seed, device and threads aside), or None."""
    values = cfg.to_dict()
    for name, settings in PROFILES.items():
        if all(values.get(k) == v for k, v in settings.items() if k not in ("device", "threads")):
            return name
    return None


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def plan(configs: list[TrainConfig], workers: int) -> str:
    """What a sweep will train, and an estimate of how long: the text :func:`sweep` prints first.

    The time per run is the median of the runs of the same setting already in the cache, else the
    profile's :data:`RUN_SECONDS` (measured on one CPU core of the book's build machine).
    """
    todo = [c for c in configs if not (run_dir(c) / RESULT).exists()]
    if not todo:
        return f"all {len(configs)} runs are in the cache ({cache_dir()}): nothing to train"
    first = todo[0]
    profile = profile_of(first)
    setting = (f"{first.model} on {first.dataset}, {first.epochs} epochs"
               + (f", {profile} profile" if profile else ""))
    deltas = sorted({c.delta for c in todo})
    seeds = sorted({c.seed for c in todo})
    lines = [f"plan: train {len(todo)} of {len(configs)} runs ({setting}; δ in {', '.join(f'{d:g}' for d in deltas)}; "
             f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}), {min(workers, len(todo))} at a time"]
    same = [c for c in configs if (run_dir(c) / RESULT).exists() and profile_of(c) == profile]
    if same:
        seconds = float(np.median([RunResult.load(run_dir(c) / RESULT).final["time_elapsed"] for c in same]))
        source = f"the median of the {len(same)} finished runs"
    else:
        seconds = RUN_SECONDS.get(profile) if profile else None
        source = "measured on one core of a 2-core AMD EPYC"
    if seconds is None:
        lines.append("estimate: unknown for this setting on this hardware; the bar below shows the time left "
                     "once the first runs finish")
    else:
        rounds = -(-len(todo) // max(1, min(workers, len(todo))))
        lines.append(f"estimate: about {_duration(seconds * rounds)} ({_duration(seconds)} a run, {source}; "
                     "slower on a busy or slower CPU)")
    return "\n".join(lines)


def config(profile: str | None = None, **overrides) -> TrainConfig:
    """The :class:`~nclab.train.TrainConfig` of a profile, with some fields changed.

    Passing any of the explicit penalties ``lambda_W``, ``lambda_H``, ``lambda_b`` without a
    ``weight_decay`` sets weight decay to 0 (the penalties replace it, as in the paper's
    unconstrained-feature-model run).

    Parameters
    ----------
    profile : "quick", "standard" or "paper"; None uses :func:`default_profile`
    **overrides : TrainConfig fields, e.g. ``delta=0.05, seed=1, epochs=100``; a field of the
        wrong type (``augment="no"``) is a TypeError naming it, and numbers are stored as plain
        Python numbers (``np.float32(0.05)`` as 0.05, with the same cache key)

    Returns
    -------
    TrainConfig (validated)

    Example
    -------
    >>> config("quick", delta=0.1).dataset
    'digits'
    """
    profile = default_profile() if profile is None else check_str(profile, "profile")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    values = {**PROFILES[profile], **overrides}
    if any(overrides.get(k) for k in ("lambda_W", "lambda_H", "lambda_b")) and "weight_decay" not in overrides:
        values["weight_decay"] = 0.0
    check_known_fields(values, TrainConfig.__dataclass_fields__, "config")
    return TrainConfig(**values)


def grid(profile: str | None = None, deltas=(0.0, 0.05, 0.1), *, seeds=(0, 1, 2), **overrides) -> list[TrainConfig]:
    """Configs for every (δ, seed) pair of a profile: the usual CE-versus-LS sweep (chapter 3, 4, 5)."""
    return [config(profile, delta=d, seed=s, **overrides) for d in deltas for s in seeds]


def cache_dir() -> Path:
    """Where finished runs are kept: ``$NCLAB_CACHE``, else ``<checkout>/.nclab-cache`` when the package is
    imported from a source checkout of the book, else ``~/.cache/nclab`` (:func:`nclab.settings.cache_dir`)."""
    return settings.cache_dir()


# The key and the folder name are defined next to RunResult, which checks a cached result's folder.
_key = cache_key


def run_dir(cfg: TrainConfig, version: str | None = None) -> Path:
    """The cache folder of a config (whether or not it has been trained).

    ``version`` is the nclab version the run is trained with (None: this one); each version keeps
    its own runs. :meth:`nclab.train.RunResult.load` recomputes this name from the config and
    version stored in a cached ``result.json``, so a result copied into another run's folder is
    found out.
    """
    return cache_dir() / cache_name(cfg, version)


def get(cfg: TrainConfig, *, progress: bool = True, wait: bool = True) -> RunResult:
    """The result of a config: read from the cache, or trained (and cached) when absent.

    A cached result is checked before it is returned: its stored config must be ``cfg`` and its
    history finished, else a ValueError names what differs. When another process is training the
    same config, this one waits for its result instead of training it again.

    Parameters
    ----------
    cfg : the run's config (e.g. from :func:`config`)
    progress : show progress bars when training
    wait : when another process is training this config, wait for its result (True) or raise
        :class:`nclab.train.RunLocked` at once (False)

    Returns
    -------
    RunResult
    """
    folder = run_dir(cfg)
    if (folder / RESULT).exists():
        return RunResult.load(folder / RESULT, config=cfg)
    return train(cfg, run_dir=folder, resume=True, progress=progress, wait=wait)


def default_workers() -> int:
    """Worker processes of a sweep: ``$NCLAB_WORKERS`` if set, else one per CPU core available to this process."""
    return settings.workers()


def _train_in_worker(values: dict, folder: str) -> str | None:
    """Train one config in a worker process (top level, so that a spawned process can import it).

    A config that leaves ``threads`` unset trains on one thread here: the workers share the cores.
    """
    cfg = TrainConfig.from_dict(values)
    try:
        with _cpu_threads(1 if cfg.threads is None else cfg.threads):
            train(cfg, run_dir=folder, resume=True, progress=False)
    except KeyboardInterrupt:
        # Ctrl-C reaches every worker; the main process reports it once. The last finished epoch
        # is in the run's checkpoint, so the next sweep resumes from there.
        return None
    return folder


def sweep(configs: list[TrainConfig], progress: bool = True, *, workers: int | None = None,
          executor: str = "processes", **cluster) -> list[RunResult]:
    """Results of several configs, in order; finished runs come from the cache, the rest are trained.

    Runs still to train, seed by seed (every δ of a seed before the next seed, so a stopped sweep
    leaves whole pairs), go to ``workers`` worker processes (default :func:`default_workers`, one
    per core), each with one CPU thread unless the config sets ``threads``. One progress bar
    counts the finished runs over the whole sweep. Every run is seeded by its config alone, so a
    parallel sweep gives the same results as a sequential one; ``workers=1`` trains in this
    process, one run after another. With ``executor="slurm"`` every run is a Slurm job instead
    (:func:`nclab.cluster.submit`, which takes the ``cluster`` options). Before training, the
    sweep prints its :func:`plan` (unless progress is off).

    Parameters
    ----------
    configs : the runs' configs (e.g. from :func:`grid`); a config may appear more than once
    progress : print the plan and show the sweep's progress bar (also silenced by ``NCLAB_PROGRESS=0``)
    workers : number of worker processes; None uses :func:`default_workers`
    executor : "processes" (this machine), "slurm" or "local" (submitit's jobs, see :mod:`nclab.cluster`)
    **cluster : options of :func:`nclab.cluster.submit` (partition, gpus, time_min, mem_gb, ...)

    Returns
    -------
    list of RunResult, one per config, in the given order
    """
    configs = list(configs)
    if not all(isinstance(c, TrainConfig) for c in configs):
        raise ValueError("configs must be a list of TrainConfig (see nclab.runs.config and grid)")
    if executor != "processes":
        from .cluster import submit
        cluster.setdefault("log_dir", None)
        cluster["log_dir"] = cluster["log_dir"] or cache_dir() / "submitit"
        return submit(configs, [run_dir(c) for c in configs], executor=executor, progress=progress, **cluster)
    if cluster:
        raise ValueError(f"options {sorted(cluster)} are for executor='slurm' or 'local' only")
    workers = default_workers() if workers is None else workers
    workers = check_positive_int(workers, "workers")
    folders = [run_dir(c) for c in configs]
    # Seed-major order: a sweep stopped half-way leaves whole pairs (every δ of the first seeds).
    todo = {str(f): c for f, c in sorted(zip(folders, configs), key=lambda fc: (fc[1].seed, fc[1].delta))
            if not (f / RESULT).exists()}
    show = settings.progress() and progress
    if show and todo:
        print(plan(configs, workers), flush=True)
    bar = tqdm(total=len(configs), initial=len(configs) - len(todo), desc="sweep", unit="run", disable=not show)
    try:
        if len(todo) <= 1 or workers == 1:
            for folder, cfg in todo.items():
                train(cfg, run_dir=folder, resume=True, progress=False)
                bar.update()
        else:
            _in_workers(todo, workers, bar)
    finally:
        bar.close()
    return [RunResult.load(f / RESULT) for f in folders]


class SweepIncomplete(RuntimeError):
    """Some runs of a sweep did not finish because their worker process was stopped; the finished ones are kept."""


def _start_worker(parent: int) -> None:
    """Worker initializer: die with the sweep's main process, and finish every import before a run can be interrupted.

    On Linux the worker is sent SIGTERM when the main process dies (even by SIGKILL). Ctrl-C is
    ignored while the worker imports what training needs (torch imports some modules lazily, on
    the first optimizer): an import cut by KeyboardInterrupt leaves a half-initialised module that
    would break the worker's next run. Once warmed up, a SIGINT stops the current run only.
    """
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: a worker outlives a killed main process only until its current run ends
    if os.getppid() != parent:   # the main process died before the line above took effect
        os._exit(1)
    import torch
    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)   # imports torch._dynamo, as training will
    weight.sum().backward()
    optimizer.step()
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _in_workers(todo: dict[str, TrainConfig], workers: int, bar) -> None:
    """Train ``todo`` (folder -> config) in worker processes; a stopped worker is reported, finished runs kept."""
    context = multiprocessing.get_context("spawn")
    stopped: list[str] = []
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context,
                             initializer=_start_worker, initargs=(os.getpid(),)) as pool:
        jobs = {pool.submit(_train_in_worker, cfg.to_dict(), folder): folder for folder, cfg in todo.items()}
        try:
            for job in as_completed(jobs):
                try:
                    finished = job.result()
                except BrokenProcessPool:
                    finished = None
                if finished is None:
                    stopped.append(Path(jobs[job]).name)
                else:
                    bar.update()
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)   # start no further run
            raise
    if stopped:
        done = len(todo) - len(stopped)
        script = getattr(sys.modules.get("__main__"), "__file__", None)
        advice = ("" if script is None or Path(script).parent == Path(__file__).parent else
                  " If every worker stops at once, call the sweep under `if __name__ == \"__main__\":` in a script "
                  "(workers import it again), or pass workers=1.")
        raise SweepIncomplete(
            f"{len(stopped)} of {len(todo)} runs stopped with their worker process (a signal, or the out-of-memory "
            f"killer): {', '.join(sorted(stopped)[:3])}{', ...' if len(stopped) > 3 else ''}; the {done} finished "
            f"runs are kept in {cache_dir()}; repeat the same call to resume the rest from their last finished "
            f"epoch.{advice}")


def load_results(path: str | os.PathLike) -> list[RunResult]:
    """Finished runs under ``path``: a run folder (or its ``result.json``) or a folder of run folders.

    Every result is checked as :meth:`~nclab.train.RunResult.load` does: one that is not a
    finished run, or that lies in a cache folder named for another config, is a ValueError
    naming it. Folders without a ``result.json`` (runs still training) are passed over.
    """
    path = Path(path)
    if path.is_file() or (path / RESULT).exists():
        return [RunResult.load(path)]
    if not path.is_dir():
        raise FileNotFoundError(f"no run or cache folder at {path}")
    results = [RunResult.load(p) for p in sorted(path.glob(f"*/{RESULT}"))]
    if not results:
        raise FileNotFoundError(f"no finished runs (*/{RESULT}) in {path}")
    return results


# The runs of chapters 2-5 ----------------------------------------------------------------------

SWEEP_SEEDS = tuple(range(8))  # eight pairs: enough for an exact sign test to reach p < 0.05


def book_sweep(profile: str | None = None, progress: bool = True) -> list[RunResult]:
    """The runs behind chapters 2-5: every δ of :data:`SWEEP_DELTAS` with every seed of :data:`SWEEP_SEEDS`.

    All four chapters ask for their runs through this one call, so they share one set of cache
    entries: the first chapter of a build trains them, the others read them.

    Parameters
    ----------
    profile : "quick", "standard" or "paper"; None uses :func:`default_profile`
    progress : show progress bars when training

    Returns
    -------
    list of RunResult, ordered by δ, then seed
    """
    return sweep(grid(profile, deltas=SWEEP_DELTAS, seeds=SWEEP_SEEDS), progress=progress)


def select(results: list[RunResult], deltas) -> list[RunResult]:
    """The runs whose δ is, for each requested value, the nearest δ present in ``results`` (chapters 2-5).

    A live slider may stop between the sweep's δ values; this picks the sweep's nearest one.

    Parameters
    ----------
    results : finished runs (e.g. :func:`book_sweep`)
    deltas : float or list of floats

    Returns
    -------
    list of RunResult, grouped by requested δ in the given order (each δ once)

    Example
    -------
    >>> ce_and_ls = select(book_sweep(), [0.0, 0.05])            # doctest: +SKIP
    """
    results = list(results)
    if not results or not all(isinstance(r, RunResult) for r in results):
        raise ValueError("results must be a non-empty list of RunResult")
    present = sorted({r.config.delta for r in results})
    wanted = np.atleast_1d(np.asarray(deltas, dtype=float))
    if wanted.size == 0 or not np.isfinite(wanted).all():
        raise ValueError(f"deltas must be one or more finite numbers, got {deltas!r}")
    chosen: list[float] = []
    for d in wanted:
        nearest = min(present, key=lambda p: abs(p - d))
        if nearest not in chosen:
            chosen.append(nearest)
    return [r for d in chosen for r in results if r.config.delta == d]
