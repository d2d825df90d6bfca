"""The command line: help, a tiny run, a sweep table and the report figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nclab import runs
from nclab.__main__ import main
from nclab.train import RESULT, train

ROOT = Path(__file__).resolve().parents[1]


def _nclab(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nclab", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "NCLAB_PROGRESS": "0", **(env or {})}, timeout=300)


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
    for name in ("training_curves", "nc1_vs_nc2", "delta_summary"):
        assert str(out / f"{name}.png") in printed
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_sweep_prints_a_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path))
    assert main(["sweep", "--profile", "quick", "--epochs", "2", "--width", "16", "--deltas", "0", "0.1",
                 "--seeds", "0", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["delta", "train_error", "test_error"]
    assert [line.split()[0] for line in lines[2:4]] == ["0", "0.1"]
    assert len(runs.load_results(tmp_path)) == 2


def test_sweep_draws_its_figures_and_run_takes_ufm_penalties(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "figures"
    assert main(["sweep", "--profile", "quick", "--epochs", "2", "--width", "16", "--deltas", "0", "0.1",
                 "--seeds", "0", "--no-progress", "--out", str(out)]) == 0
    assert {p.name for p in out.glob("*.png")} == {"training_curves.png", "nc1_vs_nc2.png", "delta_summary.png"}

    assert main(["run", "--profile", "quick", "--epochs", "1", "--width", "16", "--no-progress",
                 "--lambda-W", "1e-3", "--lambda-H", "1e-6", "--lambda-b", "1e-2",
                 "--run-dir", str(tmp_path / "ufm")]) == 0
    result = runs.load_results(tmp_path / "ufm")[0]
    assert (result.config.lambda_W, result.config.lambda_H, result.config.lambda_b) == (1e-3, 1e-6, 1e-2)
    assert result.config.weight_decay == 0.0
