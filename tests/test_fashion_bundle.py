"""The committed real-image evidence (results/fashion): its schema and provenance, and a re-run of one of its runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nclab as nc
from nclab import bundle, runs
from nclab.train import train

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "results" / "fashion"
DELTAS, SEEDS = [0.0, 0.05, 0.1, 0.3], list(range(6))
KEYS = ("train_error", "test_error", "nc1", "nc2_wh", "nc3", "w_norm", "h_norm", "test_ece")


@pytest.fixture(scope="module")
def fashion():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NCLAB_RESULTS", str(ROOT / "results"))
        return bundle.load("fashion", fetch=False)


def test_the_bundle_holds_the_whole_sweep_with_provenance(fashion):
    m = fashion.manifest
    assert m["schema"] == bundle.SCHEMA and m["deltas"] == DELTAS and m["seeds"] == SEEDS
    assert sorted((r.config.delta, r.config.seed) for r in fashion.results) == [(d, s) for d in DELTAS for s in SEEDS]
    for r in fashion.results:  # each run is the fashion profile's, exactly
        assert r.config == runs.config("fashion", delta=r.config.delta, seed=r.config.seed)
        assert r.final["epoch"] == r.config.epochs and r.final["time_elapsed"] > 0
        assert {"nclab", "torch", "device", "date"} <= set(r.provenance)
    for key in ("command", "commit", "cpu", "threads", "torch", "date", "wall_seconds", "workers"):
        assert m[key] not in (None, "", "unknown"), key
    assert m["command"].startswith("python -m nclab bundle --profile fashion")
    size = sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file())
    assert size <= bundle.MAX_BYTES
    test = fashion.outputs_by_delta("test")
    assert all(o.logits.shape == (10_000, 10) for outs in test.values() for o in outs)


def test_the_stored_logits_are_the_runs_own(fashion):
    """The float16 test logits give back the test error each run measured at its last epoch."""
    for d, outs in fashion.outputs_by_delta("test").items():
        finals = [r.final["test_error"] for r in fashion.results if r.config.delta == d]
        errors = [float((o.logits.argmax(1) != o.labels).float().mean()) for o in outs]
        assert np.allclose(errors, finals, atol=2e-4)


@pytest.mark.slow
def test_a_rerun_here_lands_within_the_spread_of_the_bundle(fashion, tmp_path, monkeypatch):
    """Re-train one run (δ = 0.05, seed 0) from scratch; its final measures must differ from the
    bundle's run by no more than the bundle's own spread over seeds at that δ."""
    if not (Path("/usr/share/datasets/fashion-mnist").is_dir() or nc.data.data_root().joinpath("fashion-mnist").is_dir()):
        pytest.skip("Fashion-MNIST is not on this machine (apt-get install dataset-fashion-mnist)")
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path))
    config = runs.config("fashion", delta=0.05, seed=0)
    rerun = train(config, progress=False).final
    same = [r for r in fashion.results if r.config.delta == 0.05]
    stored = next(r for r in same if r.config.seed == 0).final
    for key in KEYS:
        values = np.array([r.final[key] for r in same])
        spread = values.max() - values.min()
        assert abs(rerun[key] - stored[key]) <= spread, (key, rerun[key], stored[key], spread)
