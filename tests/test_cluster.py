"""Sweeps as submitit jobs (the Slurm path, run with submitit's local executor): results, interruption, resume."""

from __future__ import annotations

import time

import pytest
import torch

from nclab import cluster, runs
from nclab.train import CHECKPOINT, RESULT, train

pytest.importorskip("submitit")
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


def test_a_job_stopped_mid_way_resumes_from_its_last_epoch(tmp_path, monkeypatch):
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
