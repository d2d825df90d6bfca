"""Profiles, configs and the result cache keyed by the config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import nclab
from nclab import runs, settings, train as train_module
from nclab.train import RESULT, TrainConfig


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _tiny(**overrides) -> TrainConfig:
    return runs.config("quick", **{"epochs": 2, "width": 32, **overrides})


def test_profiles_and_overrides(monkeypatch):
    quick = runs.config("quick", delta=0.05)
    assert (quick.dataset, quick.model, quick.device, quick.delta) == ("digits", "mlp", "cpu", 0.05)
    paper = runs.config("paper")
    assert (paper.dataset, paper.model, paper.lr, paper.momentum, paper.weight_decay, paper.batch_size,
            paper.milestones, paper.augment) == ("cifar10", "resnet18", 0.05, 0.9, 5e-4, 128, [150], False)
    assert runs.config("standard").dataset == "fashion-mnist"
    monkeypatch.setenv("NCLAB_PROFILE", "paper")
    assert runs.default_profile() == "paper" and runs.config().dataset == "cifar10"
    monkeypatch.setenv("NCLAB_PROFILE", "huge")
    with pytest.raises(ValueError, match="NCLAB_PROFILE"):
        runs.default_profile()
    with pytest.raises(ValueError, match="unknown config field"):
        runs.config("quick", learning_rate=0.1)
    with pytest.raises(ValueError, match="profile must be one of"):
        runs.config("tiny")


def test_penalties_replace_weight_decay():
    assert runs.config("quick", lambda_W=1e-3, lambda_H=1e-6, lambda_b=1e-2).weight_decay == 0.0
    with pytest.raises(ValueError, match="weight_decay must be 0"):
        runs.config("quick", lambda_W=1e-3, weight_decay=5e-4)


def test_grid_covers_every_pair():
    configs = runs.grid("quick", deltas=(0.0, 0.1), seeds=(0, 1, 2), epochs=5)
    assert [(c.delta, c.seed) for c in configs] == [(d, s) for d in (0.0, 0.1) for s in (0, 1, 2)]
    assert all(c.epochs == 5 for c in configs)


def test_cache_dir_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "explicit"))
    assert runs.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("NCLAB_CACHE")
    # Imported from the repository: its cache, wherever the working directory is.
    repository = Path(runs.__file__).resolve().parents[1]
    (tmp_path / "book_root" / "book").mkdir(parents=True)
    (tmp_path / "book_root" / "_config.yml").write_text("title: x\n")
    monkeypatch.chdir(tmp_path / "book_root" / "book")
    assert runs.cache_dir() == repository / ".nclab-cache"
    # An installed package: the user's cache.
    monkeypatch.setattr(settings, "checkout", lambda: None)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert runs.cache_dir() == tmp_path / "home" / ".cache" / "nclab"


def test_run_dir_is_keyed_by_config_and_version(cache, monkeypatch):
    a, b = runs.run_dir(_tiny()), runs.run_dir(_tiny(seed=1))
    assert a != b and a == runs.run_dir(_tiny()) and a.parent == cache
    assert a.name.startswith("digits-mlp-delta0-seed0-")
    monkeypatch.setattr(nclab, "__version__", "999")
    assert runs.run_dir(_tiny()) != a


def test_get_trains_once_then_reads_the_cache(cache, monkeypatch):
    first = runs.get(_tiny(), progress=False)
    assert (runs.run_dir(_tiny()) / RESULT).exists()

    def refuse(*args, **kwargs):
        raise AssertionError("get() trained although the result was cached")

    monkeypatch.setattr(runs, "train", refuse)
    second = runs.get(_tiny(), progress=False)
    assert second.history == json.loads((runs.run_dir(_tiny()) / RESULT).read_text())["history"]
    assert [r["nc1"] for r in second.history] == pytest.approx([r["nc1"] for r in first.history], rel=1e-12)
    with pytest.raises(AssertionError, match="trained although"):
        runs.get(_tiny(seed=1), progress=False)  # another config is another key
    monkeypatch.setattr(runs, "train", train_module.train)
    results = runs.sweep([_tiny(), _tiny(seed=1)], progress=False)
    assert [r.config.seed for r in results] == [0, 1]
    assert {r.config.seed for r in runs.load_results(cache)} == {0, 1}


def test_load_results_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run or cache folder"):
        runs.load_results(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no finished runs"):
        runs.load_results(tmp_path)


@pytest.mark.slow
def test_parallel_sweep_equals_sequential_sweep(tmp_path, monkeypatch):
    """Two worker processes give the same histories as one process, run after run."""
    configs = runs.grid("quick", deltas=(0.0, 0.1), seeds=(0, 1), epochs=3, width=32)
    results = {}
    for workers in (1, 2):
        monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / f"workers{workers}"))
        results[workers] = runs.sweep(configs, progress=False, workers=workers)
        assert [(r.config.delta, r.config.seed) for r in results[workers]] == [(c.delta, c.seed) for c in configs]
    for one, two in zip(results[1], results[2]):
        for a, b in zip(one.history, two.history):
            assert {k: v for k, v in a.items() if not k.startswith("time_")} == \
                   {k: v for k, v in b.items() if not k.startswith("time_")}
    # A second call reads the cache: nothing is trained again.
    again = runs.sweep(configs, progress=False, workers=2)
    assert [r.history for r in again] == [r.history for r in results[2]]


def test_sweep_rejects_bad_workers(cache, monkeypatch):
    with pytest.raises(ValueError, match="workers"):
        runs.sweep([_tiny()], workers=0)
    with pytest.raises(ValueError, match="TrainConfig"):
        runs.sweep([{"delta": 0.1}])
    monkeypatch.setenv("NCLAB_WORKERS", "two")
    with pytest.raises(ValueError, match="NCLAB_WORKERS"):
        runs.default_workers()
    monkeypatch.setenv("NCLAB_WORKERS", "3")
    assert runs.default_workers() == 3


def test_momentum_and_gamma_outside_their_ranges_are_refused():
    for momentum in (5, 1.0):
        with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
            runs.config("quick", momentum=momentum)
    for gamma in (10, 1.5, 0.0):
        with pytest.raises(ValueError, match=r"gamma .* must be in \(0, 1\]"):
            runs.config("quick", gamma=gamma)
    assert runs.config("quick", momentum=0.0, gamma=1.0).gamma == 1.0


def test_the_cache_key_of_an_existing_config_is_unchanged():
    # Computed at commit 96591a7, before TrainConfig became frozen: the result cache stays valid.
    cfg = runs.config("quick", delta=0.05, seed=3)
    assert runs._key(cfg, "0.1.0") == "1535c4c1ef8c"
    assert runs.run_dir(cfg, "0.1.0").name == "digits-mlp-delta0.05-seed3-1535c4c1ef8c"


def test_the_fashion_run_time_is_the_published_bundles_median(tmp_path, monkeypatch):
    # RUN_SECONDS["fashion"] is what plan() estimates before a fashion sweep: the median of the
    # per-run seconds recorded in the bundle's manifest, and for that sweep an estimate close to
    # the wall time the manifest records (its runs were trained two at a time).
    manifest = json.loads((Path(__file__).resolve().parents[1] / "results" / "fashion" / "manifest.json")
                          .read_text())
    median = float(np.median([run["seconds"] for run in manifest["runs"]]))
    assert abs(runs.RUN_SECONDS["fashion"] - median) <= 1
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "empty"))
    configs = runs.grid("fashion", deltas=manifest["deltas"], seeds=manifest["seeds"])
    value, unit = re.search(r"estimate: about ([\d.]+) (min|h) ", runs.plan(configs, manifest["workers"])).groups()
    estimate = float(value) * (60 if unit == "min" else 3600)
    assert abs(estimate / manifest["wall_seconds"] - 1) < 0.05
