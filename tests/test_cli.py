"""The command line: help, a tiny run, a sweep table and the report figures."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from nclab import __main__ as cli
from nclab import runs
from nclab.__main__ import main
from nclab.train import RESULT, train
from nclab.plots.report import _pooled

ROOT = Path(__file__).resolve().parents[1]


def _nclab(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nclab", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "NCLAB_PROGRESS": "0", **(env or {})}, timeout=300)


@pytest.mark.slow
def test_help():
    done = _nclab("--help")
    assert done.returncode == 0
    assert all(word in done.stdout for word in ("run", "sweep", "report", "quick", "paper"))


def test_run_help_and_bad_input(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "--delta" in text and "--run-dir" in text and "--epochs" in text
    assert main(["run", "--delta", "1.5", "--run-dir", "unused"]) == 2
    assert "delta must be in [0, 1)" in capsys.readouterr().err


@pytest.mark.slow
def test_run_writes_a_result_and_report_draws_it(tmp_path, capsys):
    run_dir = tmp_path / "ce"
    done = _nclab("run", "--profile", "quick", "--epochs", "3", "--width", "32", "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert (run_dir / RESULT).exists() and (run_dir / "checkpoint.pt").exists()
    assert "final train error" in done.stdout and "NC1" in done.stdout and "ECE" in done.stdout

    train(runs.config("quick", epochs=3, width=32, delta=0.1), run_dir=tmp_path / "ls", progress=False)
    out = tmp_path / "figures"
    assert main(["report", str(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    for name in ("training_curves", "nc_plane", "delta_summary"):
        assert str(out / f"{name}.png") in printed
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.slow
def test_sweep_prints_a_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path))
    assert main(["sweep", "--profile", "quick", "--epochs", "2", "--width", "16", "--deltas", "0", "0.1",
                 "--seeds", "0", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["delta", "train_error", "test_error"]
    assert [line.split()[0] for line in lines[2:4]] == ["0", "0.1"]
    assert len(runs.load_results(tmp_path)) == 2


@pytest.mark.slow
def test_sweep_draws_its_figures_and_run_takes_ufm_penalties(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "figures"
    assert main(["sweep", "--profile", "quick", "--epochs", "2", "--width", "16", "--deltas", "0", "0.1",
                 "--seeds", "0", "--no-progress", "--out", str(out)]) == 0
    assert {p.name for p in out.glob("*.png")} == {"training_curves.png", "nc_plane.png", "delta_summary.png"}

    assert main(["run", "--profile", "quick", "--epochs", "1", "--width", "16", "--no-progress",
                 "--lambda-W", "1e-3", "--lambda-H", "1e-6", "--lambda-b", "1e-2",
                 "--run-dir", str(tmp_path / "ufm")]) == 0
    result = runs.load_results(tmp_path / "ufm")[0]
    assert (result.config.lambda_W, result.config.lambda_H, result.config.lambda_b) == (1e-3, 1e-6, 1e-2)
    assert result.config.weight_decay == 0.0


# Expected failures: one line on stderr, a non-zero status, no traceback ---------------------------

_TINY = ["--profile", "quick", "--epochs", "1", "--width", "16", "--no-progress"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") or err.startswith("interrupted")
    return err.strip()


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if a command loads any data (it should have stopped before)."""
    from nclab import data

    monkeypatch.setattr(data, "load", lambda *a, **k: pytest.fail("data was loaded"))


def test_run_dir_that_is_a_file(tmp_path, capsys, no_data):
    path = tmp_path / "file"
    path.write_text("not a folder")
    assert main(["run", *_TINY, "--run-dir", str(path)]) == 1
    assert _one_error_line(capsys) == f"error: the run folder is a file, not a folder: {path}"
    # --debug shows the traceback as well as the line.
    assert main(["run", *_TINY, "--run-dir", str(path), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith(f"error: the run folder is a file, not a folder: {path}")


def test_unwritable_cache(tmp_path, monkeypatch, capsys, no_data):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert main(["run", *_TINY]) == 1
    folder = runs.run_dir(runs.config("quick", epochs=1, width=16))
    assert _one_error_line(capsys) == f"error: cannot create or write the folder (Permission denied): {folder}"
    assert main(["sweep", *_TINY, "--deltas", "0", "--seeds", "0"]) == 1
    assert "cannot create or write the folder (Permission denied)" in _one_error_line(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache(tmp_path, monkeypatch, capsys, no_data):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o500)
    monkeypatch.setenv("NCLAB_CACHE", str(cache))
    assert main(["run", *_TINY]) == 1
    assert "Permission denied" in _one_error_line(capsys)


def test_divergence_out_of_memory_and_interrupt(tmp_path, monkeypatch, capsys):
    assert main(["run", *_TINY, "--lr", "1000", "--run-dir", str(tmp_path / "lr")]) == 1
    assert _one_error_line(capsys) == ("error: training diverged in epoch 1 (lr 1000): the network's weights or "
                                       "outputs are no longer finite; use a lower lr")

    from nclab import models

    def allocate(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                           "you tried to allocate 40000000000 bytes.")

    monkeypatch.setattr(models, "build", allocate)
    assert main(["run", *_TINY, "--width", "100000", "--run-dir", str(tmp_path / "wide")]) == 1
    assert _one_error_line(capsys) == ("error: out of memory (tried to allocate 40000000000 bytes); use a "
                                       "smaller --width or --batch-size")
    monkeypatch.undo()

    run_dir = tmp_path / "interrupted"

    def interrupted(*args, **kwargs):
        (run_dir / "checkpoint.pt").touch()  # as if an epoch had finished
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "train", interrupted)
    assert main(["run", *_TINY, "--run-dir", str(run_dir)]) == 130
    assert _one_error_line(capsys) == (f"interrupted; the last finished epoch is saved in {run_dir / 'checkpoint.pt'}, "
                                       "run the same command to resume")


def test_foreign_and_broken_results(tmp_path, monkeypatch, capsys):
    # A result of another config in the given folder is neither reused nor overwritten.
    run_dir = tmp_path / "run"
    assert main(["run", *_TINY, "--run-dir", str(run_dir)]) == 0
    (run_dir / "checkpoint.pt").unlink()
    before = (run_dir / RESULT).read_bytes()
    capsys.readouterr()
    assert main(["run", *_TINY, "--delta", "0.2", "--run-dir", str(run_dir)]) == 2
    assert _one_error_line(capsys) == (f"error: {run_dir / RESULT} belongs to a different run (delta=0.0 there, "
                                       "0.2 here); use another run folder or delete this one")
    assert (run_dir / RESULT).read_bytes() == before
    # A δ=0.1 result copied into the δ=0 cache folder.
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    assert main(["run", *_TINY, "--delta", "0.1"]) == 0
    ce = runs.run_dir(runs.config("quick", epochs=1, width=16))
    ce.mkdir()
    shutil.copy(runs.run_dir(runs.config("quick", epochs=1, width=16, delta=0.1)) / RESULT, ce / RESULT)
    capsys.readouterr()
    assert main(["run", *_TINY]) == 2
    out = capsys.readouterr()
    assert "label smoothing" not in out.out
    assert out.err.strip() == (f"error: {ce / RESULT} belongs to a different run (delta=0.1 there, 0.0 here); "
                               "use another run folder or delete this one")
    # An empty history.
    raw = json.loads((ce / RESULT).read_text())
    (ce / RESULT).write_text(json.dumps({**raw, "config": {**raw["config"], "delta": 0.0}, "history": []}))
    assert main(["run", *_TINY]) == 2
    assert "is not a finished nclab run result (its history is empty)" in _one_error_line(capsys)


def test_no_wait_names_the_holder(tmp_path, capsys):
    from nclab import train as train_module

    with train_module._run_lock(tmp_path, wait=True, show=False):
        assert main(["run", *_TINY, "--no-wait", "--run-dir", str(tmp_path)]) == 1
    assert f"is being trained by process {os.getpid()}" in _one_error_line(capsys)


def test_corrupt_dataset_files(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"\x00\x00\x08\x03" + bytes(100))
    monkeypatch.setenv("NCLAB_DATA", str(tmp_path))
    assert main(["run", *_TINY, "--dataset", "mnist", "--run-dir", str(tmp_path / "run")]) == 2
    assert f"the mnist files in {raw} cannot be read" in _one_error_line(capsys)


@pytest.mark.slow
def test_ctrl_c_exits_130_with_one_line(tmp_path):
    run_dir = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-m", "nclab", "run", "--profile", "quick", "--epochs", "500",
                              "--width", "64", "--no-progress", "--run-dir", str(run_dir)], cwd=ROOT,
                             env={**os.environ, "NCLAB_PROGRESS": "0"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoint.pt").exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130
    assert err.strip() == (f"interrupted; the last finished epoch is saved in {run_dir / 'checkpoint.pt'}, "
                           "run the same command to resume")
    assert 1 <= torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] < 500


# report: pooled over seeds only -----------------------------------------------------------------

@pytest.mark.slow
def test_report_draws_one_figure_set_per_group(tmp_path, capsys):
    folder = tmp_path / "runs"
    for name, overrides in (("ce", {}), ("ls", {"delta": 0.1}), ("ce-seed1", {"seed": 1}),
                            ("ce-3epochs", {"epochs": 3})):
        config = runs.config("quick", **{"epochs": 2, "width": 16, **overrides})
        train(config, run_dir=folder / name, progress=False)
    out = tmp_path / "figures"
    assert main(["report", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 runs in 2 groups that differ in epochs" in printed
    assert f"{out / 'epochs2'}: dataset digits, model mlp, width 16, epochs 2" in printed
    assert "δ=0: seeds 0, 1; δ=0.1: seed 0" in printed
    assert f"{out / 'epochs3'}: dataset digits, model mlp, width 16, epochs 3" in printed
    assert {p.name for p in (out / "epochs2").iterdir()} == {"training_curves.png", "nc_plane.png",
                                                             "delta_summary.png"}
    assert {p.name for p in (out / "epochs3").iterdir()} == {"training_curves.png", "nc_plane.png"}
    # The same run twice would count one seed twice.
    shutil.copytree(folder / "ce", folder / "ce-copy")
    assert main(["report", str(folder), "--out", str(out)]) == 2
    assert "hold the same run (δ=0, seed 0, every other setting equal)" in _one_error_line(capsys)


def test_report_titles_say_which_seeds_are_pooled():
    from types import SimpleNamespace

    def run(delta, seed):
        return SimpleNamespace(config=SimpleNamespace(delta=delta, seed=seed))

    even = [run(d, s) for d in (0.0, 0.1) for s in range(8)]
    assert _pooled(even) == "seeds 0–7 for each δ (0, 0.1)"
    assert _pooled([run(0.0, 0), run(0.0, 2), run(0.1, 0)]) == "δ=0: seeds 0, 2; δ=0.1: seed 0"
    assert _pooled([run(0.0, 0)]) == "δ=0: seed 0"


@pytest.mark.slow
def test_a_closed_output_pipe_is_not_an_error_message(tmp_path):
    run_dir = tmp_path / "run"
    train(runs.config("quick", epochs=1, width=16), run_dir=run_dir, progress=False)
    child = subprocess.Popen([sys.executable, "-m", "nclab", "run", *_TINY, "--run-dir", str(run_dir)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "NCLAB_PROGRESS": "0"})
    child.stdout.close()  # as `... | head -0` would
    assert child.wait(timeout=300) == 1
    assert child.stderr.read() == ""


def test_sweep_workers_option(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path))
    assert main(["sweep", "--epochs", "1", "--width", "16", "--deltas", "0", "--seeds", "0", "1",
                 "--workers", "1", "--no-progress"]) == 0
    assert len(runs.load_results(tmp_path)) == 2
    capsys.readouterr()
    assert main(["sweep", "--epochs", "1", "--width", "16", "--deltas", "0.2", "--seeds", "0", "--workers", "0",
                 "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert "workers must be a positive integer" in err and len(err.strip().splitlines()) == 1


def test_every_trainconfig_field_is_an_option_of_run_and_of_sweep():
    """The options are generated from TrainConfig: each field has its flag, type and its own help."""
    import dataclasses

    from nclab.train import TrainConfig

    parser = cli._parser()
    commands = parser._subparsers._group_actions[0].choices
    for command, skipped in (("run", ()), ("sweep", ("delta", "seed")), ("bundle", ("delta", "seed"))):
        actions = {a.dest: a for a in commands[command]._actions}
        for field in dataclasses.fields(TrainConfig):
            if field.name in skipped:
                continue
            assert field.name in actions, (command, field.name)
            assert actions[field.name].help and ":data:" not in actions[field.name].help, field.name
    helps = [a.help for a in commands["run"]._actions]
    assert len(set(helps)) == len(helps), "two options share one help text"
    args = parser.parse_args(["run", "--momentum", "0.5", "--gamma", "0.2", "--schedule", "cosine", "--no-augment",
                              "--milestones", "3", "7"])
    assert cli._overrides(args) == {"momentum": 0.5, "gamma": 0.2, "schedule": "cosine", "augment": False,
                                    "milestones": [3, 7]}
