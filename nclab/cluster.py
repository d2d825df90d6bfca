"""Sweeps beyond one machine: one Slurm job per run, through submitit (chapter 9).

:func:`submit` sends every run a sweep still needs as one job of a Slurm job array, with
`submitit <https://github.com/facebookincubator/submitit>`_, and waits for them. The jobs meet in
the result cache (put ``$NCLAB_CACHE`` on a filesystem every node sees): each job trains its run
into the run's cache folder, the run-folder lock keeps two jobs off one run, and a job that is
stopped (time limit, preemption, a node lost) is requeued and resumes from the run's last
checkpoint. ``python -m nclab sweep --executor slurm`` is the same from the command line.

``executor="local"`` runs the jobs as local processes with submitit's local executor: the same
path without a cluster (the tests use it).

Example
-------
>>> configs = nc.runs.grid("standard", deltas=[0, 0.05], seeds=range(3))                  # doctest: +SKIP
>>> results = nc.runs.sweep(configs, executor="slurm", partition="gpu", gpus=1, time_min=120)  # doctest: +SKIP

:func:`nclab.runs.sweep` passes each config's cache folder to :func:`submit`.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from tqdm.auto import tqdm

from . import settings
from ._checks import check_positive_int
from .train import RESULT, RunResult, TrainConfig, train

__all__ = ["submit", "TrainJob", "EXECUTORS"]

EXECUTORS = ("slurm", "local")


def _submitit():
    try:
        import submitit
    except ImportError:
        raise ImportError("sweeps on Slurm need submitit: pip install submitit (or nclab[slurm])") from None
    return submitit


class TrainJob:
    """One run as a submitit job: trains ``config`` into ``folder``, resuming from its checkpoint.

    When Slurm stops the job (time limit, preemption), submitit calls :meth:`checkpoint`, which
    requeues the same job; training resumes from the run folder's last finished epoch.
    """

    def __call__(self, values: dict, folder: str) -> str:
        config = TrainConfig.from_dict(values)
        train(config, run_dir=folder, resume=True, progress=False)
        return folder

    def checkpoint(self, values: dict, folder: str):
        """Requeue: the run folder holds everything the next attempt needs."""
        return _submitit().helpers.DelayedSubmission(TrainJob(), values, folder)


def submit(configs: list[TrainConfig], folders: list[Path], *, executor: str = "slurm",
           log_dir: str | os.PathLike,
           partition: str | None = None, gpus: int = 0, cpus: int = 1, time_min: int = 60, mem_gb: int = 8,
           parallel: int = 64, progress: bool = True, wait: bool = True) -> list[RunResult] | list:
    """Train the configs that have no finished run in the cache, one cluster job each.

    Parameters
    ----------
    configs : the runs (e.g. from :func:`nclab.runs.grid`)
    folders : each run's folder (:func:`nclab.runs.run_dir`); one with a ``result.json`` is not trained again
    executor : "slurm", or "local" (local processes with submitit's local executor)
    log_dir : submitit's folder for job scripts and logs
    partition : Slurm partition (None: the cluster's default); Slurm only
    gpus, cpus, time_min, mem_gb : per job: GPUs (Slurm only), CPU cores, time limit in minutes, memory in GB
    parallel : at most this many jobs of the array run at once
    progress : a progress bar over the finished runs while waiting
    wait : wait for the jobs and return the results (True) or return the submitit jobs at once

    Returns
    -------
    list of RunResult, one per config in order (``wait=True``), else the list of submitted jobs

    Raises
    ------
    ValueError
        ``executor="slurm"`` where ``sbatch`` is not on the PATH, Slurm-only options (``partition``,
        ``gpus``) with ``executor="local"``, or a bad option value; raised before any job is submitted.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}; got {executor!r}")
    if executor == "slurm" and shutil.which("sbatch") is None:
        raise ValueError("executor='slurm' needs Slurm's sbatch, which is not on this machine's PATH; run on a "
                         "Slurm login node, or use executor='local' to try the same path with local processes")
    if executor == "local" and (partition is not None or gpus):
        given = ", ".join(n for n, v in (("partition", partition), ("gpus", gpus)) if v)
        raise ValueError(f"{given}: Slurm options, which executor='local' cannot honour; drop them or use "
                         "executor='slurm'")
    configs = list(configs)
    if not all(isinstance(c, TrainConfig) for c in configs):
        raise ValueError("configs must be a list of TrainConfig (see nclab.runs.config and grid)")
    for name, value in (("gpus", gpus), ("cpus", cpus), ("time_min", time_min), ("mem_gb", mem_gb),
                        ("parallel", parallel)):
        check_positive_int(value, name, minimum=0 if name == "gpus" else 1)
    folders = [Path(f) for f in folders]
    if len(folders) != len(configs):
        raise ValueError(f"one folder per config: got {len(folders)} folders for {len(configs)} configs")
    submitit = _submitit()
    todo = {str(f): c for f, c in zip(folders, configs) if not (f / RESULT).exists()}
    jobs = []
    if todo:
        ex = submitit.AutoExecutor(folder=Path(log_dir) / "%j",
                                   cluster=executor)   # never auto-detected: "slurm" means Slurm
        ex.update_parameters(timeout_min=time_min, cpus_per_task=cpus, mem_gb=mem_gb, name="nclab")
        if gpus:
            ex.update_parameters(gpus_per_node=gpus)
        if executor == "slurm":
            ex.update_parameters(slurm_array_parallelism=parallel,
                                 **({"slurm_partition": partition} if partition else {}))
        jobs = ex.map_array(TrainJob(), [c.to_dict() for c in todo.values()], list(todo))
    if not wait:
        return jobs
    show = settings.progress() and progress
    with tqdm(total=len(configs), initial=len(configs) - len(todo), desc="jobs", unit="run", disable=not show) as bar:
        pending = list(jobs)
        while pending:
            finished = [j for j in pending if j.done()]
            for job in finished:
                job.result()  # raises the job's error, with its log's location
                bar.update()
            pending = [j for j in pending if j not in finished]
            if pending:
                time.sleep(2)
    return [RunResult.load(f / RESULT) for f in folders]
