"""Sweeps as submitit jobs (the Slurm path, run with submitit's local executor): results, cancel and
resubmit, the timeout signal and submitit's requeue, resume."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from nclab import cluster, runs
from nclab.train import CHECKPOINT, RESULT, RunResult, TrainConfig, train

try:
    import submitit
    from submitit.local.local import LocalJobEnvironment
except ImportError:
    if os.environ.get("CI"):  # CI installs requirements.txt: there, a missing submitit is a failure
        pytest.fail("submitit is missing: pip install -r requirements.txt", pytrace=False)
    pytest.skip("submitit is missing (pip install -r requirements.txt)", allow_module_level=True)
pytestmark = pytest.mark.slow


def _without_times(history):
    return [{k: v for k, v in record.items() if not k.startswith("time_")} for record in history]


def test_jobs_give_the_runs_a_local_sweep_gives(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "jobs"))
    configs = runs.grid("quick", deltas=(0.0, 0.1), seeds=(0,), epochs=2, width=16, log_every=1)
    jobs = runs.sweep(configs, executor="local", time_min=5, progress=False)
    assert all((r.run_dir / RESULT).exists() for r in jobs)
    assert (tmp_path / "jobs" / "submitit").is_dir()  # job scripts and logs beside the runs
    reference = [train(c, progress=False) for c in configs]
    assert [_without_times(r.history) for r in jobs] == [_without_times(r.history) for r in reference]
    # a second call finds every run finished and submits nothing
    assert cluster.submit(configs, [r.run_dir for r in jobs], executor="local", log_dir=tmp_path / "logs",
                          wait=False) == []


def test_a_job_cancelled_mid_way_then_submitted_again_resumes_from_its_last_epoch(tmp_path, monkeypatch):
    """What ``scancel`` and a later sweep do: the job is cancelled (no requeue) and a new job resumes."""
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    config = runs.config("quick", delta=0.05, epochs=40, width=64, log_every=1)
    folder = runs.run_dir(config)
    (job,) = cluster.submit([config], [folder], executor="local", log_dir=tmp_path / "logs", wait=False)
    deadline = time.monotonic() + 300
    while not (folder / CHECKPOINT).exists() and not job.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    job.cancel()  # what Slurm's scancel or a preemption does to a job
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.1)
    saved = torch.load(folder / CHECKPOINT, weights_only=True)
    assert 1 <= saved["epoch"] < config.epochs, "the job should be stopped mid-way"
    assert not (folder / RESULT).exists()

    (resumed,) = runs.sweep([config], executor="local", log_dir=tmp_path / "logs", progress=False)
    assert resumed.history[: saved["epoch"]] == saved["history"]  # finished epochs kept, not retrained
    assert _without_times(resumed.history) == _without_times(train(config, progress=False).history)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # after "pid (comm)": state, ppid
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            kids.append(int(stat.parent.name))
    return kids


def test_a_job_given_the_preemption_signal_is_checkpointed_requeued_by_submitit_and_resumes(tmp_path, monkeypatch):
    """The preemption/time-limit path: the job's task gets submitit's signal (USR2: what Slurm sends
    before a preemption or the time limit, and what the local executor's controller sends), submitit
    calls ``TrainJob.checkpoint``, requeues the job, and the new attempt resumes from the run's checkpoint."""
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    config = runs.config("quick", delta=0.05, epochs=40, width=64, log_every=1)
    folder = runs.run_dir(config)
    (job,) = cluster.submit([config], [folder], executor="local", log_dir=tmp_path / "logs", wait=False)
    deadline = time.monotonic() + 120
    while not (folder / CHECKPOINT).exists() and not job.done() and time.monotonic() < deadline:
        time.sleep(0.02)
    before = torch.load(folder / CHECKPOINT, weights_only=True)
    assert not job.done() and 1 <= before["epoch"] < config.epochs, "the job should be mid-way"
    # The job's process is submitit's controller; its one child runs the task (submitit.core._submit).
    (task,) = _children(int(job.job_id))
    os.kill(task, LocalJobEnvironment._usr_sig())
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.done(), "the requeued job should finish"
    assert job.result() == str(folder)

    log = job.stdout()
    # Far from its time limit (60 min), submitit takes the signal for a preemption: it checkpoints and
    # requeues without using up one of the job's timeouts.
    assert "Caught signal SIGUSR2" in log and "this job is preempted" in log, log
    assert "Calling checkpoint method." in log and "Requeued job" in log, log
    assert log.count("Starting with JobEnvironment") == 2, log  # the first attempt and the requeued one
    # What was requeued is TrainJob.checkpoint's submission: the same run, in the same folder.
    requeued = submitit.helpers.DelayedSubmission.load(job.paths.submitted_pickle)
    assert isinstance(requeued.function, cluster.TrainJob) and requeued._timeout_countdown == 3
    assert TrainConfig.from_dict(requeued.args[0]) == config and requeued.args[1] == str(folder)

    result = RunResult.load(folder / RESULT, config=config)
    # The epochs finished before the signal were kept (their wall times too), not trained again ...
    assert result.history[: before["epoch"]] == before["history"]
    # ... and the run is the one an uninterrupted training gives.
    assert _without_times(result.history) == _without_times(train(config, progress=False).history)


def test_bad_cluster_options_are_named():
    config = runs.config("quick", epochs=1)
    with pytest.raises(ValueError, match="executor must be one of"):
        cluster.submit([config], ["x"], executor="pbs", log_dir="logs")
    with pytest.raises(ValueError, match="gpus"):
        cluster.submit([config], ["x"], executor="local", log_dir="logs", gpus=-1)
    with pytest.raises(ValueError, match="one folder per config"):
        cluster.submit([config], [], executor="local", log_dir="logs")
    with pytest.raises(ValueError, match="only"):
        runs.sweep([config], partition="gpu")
