"""Sweeps that do what they say: executors checked before any work, stopped workers reported, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nclab import __main__ as cli

SWEEP = [sys.executable, "-m", "nclab", "sweep", "--profile", "quick", "--deltas", "0", "0.1", "--seeds", "0", "1",
         "--epochs", "20", "--workers", "2", "--no-progress"]


def test_slurm_without_sbatch_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))        # no sbatch anywhere
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    status = cli.main(["sweep", "--executor", "slurm", "--deltas", "0", "--seeds", "0", "--epochs", "1"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: executor='slurm' needs Slurm's sbatch") and err.count("\n") == 1
    assert not (tmp_path / "cache" / "submitit").exists()


@pytest.mark.parametrize("options, named", [(["--executor", "local", "--partition", "gpu", "--gpus", "4"], "partition, gpus"),
                                            (["--gpus", "1"], "--gpus"), (["--time", "5"], "--time")])
def test_options_an_executor_cannot_honour_are_refused(tmp_path, monkeypatch, capsys, options, named):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    status = cli.main(["sweep", "--deltas", "0", "--seeds", "0", "--epochs", "1", *options])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(f"error: {named}") and err.count("\n") == 1, err
    assert not list((tmp_path / "cache").glob("*/result.json"))


def _workers(parent: int) -> list[int]:
    """The sweep's worker processes (spawned children running multiprocessing's spawn_main)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(proc.name))
    return found


def _wait_for(condition, seconds: float, step: float = 0.2):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return condition()


@pytest.mark.slow
def test_a_worker_stopped_by_sigint_is_reported_and_the_finished_runs_are_kept(tmp_path):
    env = {**os.environ, "NCLAB_CACHE": str(tmp_path / "cache"), "NCLAB_PROGRESS": "0"}
    main = subprocess.Popen(SWEEP, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = _wait_for(lambda: len(_workers(main.pid)) == 2 and _workers(main.pid), 60)
    assert workers, "the sweep started no workers"
    # wait until the first epoch of a run is saved, then interrupt one worker only
    assert _wait_for(lambda: list((tmp_path / "cache").glob("*/checkpoint.pt")), 60)
    os.kill(workers[0], signal.SIGINT)
    out, err = main.communicate(timeout=300)
    assert main.returncode == 1, err
    assert err.startswith("error: 1 of 4 runs stopped with their worker process") and err.count("\n") == 1, err
    assert "finished runs are kept" in err and "if __name__" not in err
    assert len(list((tmp_path / "cache").glob("*/result.json"))) == 3
    again = subprocess.run(SWEEP, env=env, capture_output=True, text=True, timeout=300)   # resumes the stopped one
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "cache").glob("*/result.json"))) == 4


@pytest.mark.slow
def test_the_workers_die_with_a_killed_sweep(tmp_path):
    env = {**os.environ, "NCLAB_CACHE": str(tmp_path / "cache"), "NCLAB_PROGRESS": "0"}
    main = subprocess.Popen(SWEEP, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = _wait_for(lambda: len(_workers(main.pid)) == 2 and _workers(main.pid), 60)
    assert workers, "the sweep started no workers"
    main.kill()
    main.wait()

    def gone():
        return all(not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
                   for pid in workers)
    assert _wait_for(gone, 20), "worker processes outlived the killed sweep"


WARM_UP_UNDER_SIGINT = """
import os, signal, sys

class Interrupt:
    # a Ctrl-C that lands while torch imports its lazily loaded modules
    def find_spec(self, name, path=None, target=None):
        if name == "torch._dynamo.decorators":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, Interrupt())
from nclab.runs import _start_worker
_start_worker(os.getppid())
import torch
torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)   # as the worker's next run does
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
print("ready")
"""


def test_a_ctrl_c_during_a_workers_imports_leaves_no_half_imported_module_for_its_next_run():
    done = subprocess.run([sys.executable, "-c", WARM_UP_UNDER_SIGINT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "ready\n", done.stderr[-2000:]
