"""Evidence bundles: export, read back, refuse a damaged copy, fetch by URL; the repository URL in one place."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import nclab as nc
from nclab import bundle, runs
from nclab.book import repository

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    """A bundle of nine tiny runs (3 δ x 3 seeds) in a fresh cache."""
    base = tmp_path_factory.mktemp("bundle")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NCLAB_CACHE", str(base / "cache"))
        configs = runs.grid("quick", deltas=(0.0, 0.05, 0.3), seeds=(0, 1, 2), epochs=3, width=16, log_every=1)
        results = runs.sweep(configs, progress=False, workers=1)
        folder = bundle.export(results, base / "results" / "tiny", name="tiny", command="test", wall_seconds=1.0,
                               workers=1, description="digits, mlp")
    return results, folder


def test_a_bundle_reads_back_the_histories_and_the_logits_of_its_runs(tiny_bundle, monkeypatch):
    results, folder = tiny_bundle
    monkeypatch.setenv("NCLAB_RESULTS", str(folder.parent))
    loaded = bundle.load("tiny", fetch=False)
    assert [r.history for r in loaded.results] == [r.history for r in results]
    test = loaded.outputs_by_delta("test")
    assert sorted(test) == [0.0, 0.05, 0.3] and len(test[0.05]) == 3
    exact = nc.evaluate.outputs(results[3], "test")  # δ = 0.05, seed 0
    assert torch.equal(test[0.05][0].labels, exact.labels)
    assert torch.allclose(test[0.05][0].logits, exact.logits, rtol=2e-3, atol=2e-3)  # float16 storage
    # the stored logits give the run's own test error
    error = (test[0.05][0].logits.argmax(1) != exact.labels).float().mean().item()
    assert error == pytest.approx(results[3].final["test_error"], abs=1e-6)


def test_a_chapter_reads_the_same_evidence_from_a_bundle_as_from_the_runs(tiny_bundle, monkeypatch):
    results, folder = tiny_bundle
    monkeypatch.setenv("NCLAB_RESULTS", str(folder.parent))
    loaded = bundle.load("tiny", fetch=False)
    assert nc.book.evidence.chapter3(loaded.results).texts == nc.book.evidence.chapter3(results).texts
    from_bundle = nc.book.evidence.chapter5(loaded.results, loaded.outputs_by_delta("val"), loaded.outputs_by_delta("test"))
    from_runs = nc.book.evidence.chapter5(results, nc.evaluate.outputs_by_delta(results, "val"),
                                     nc.evaluate.outputs_by_delta(results, "test"))
    assert from_bundle.claims == from_runs.claims
    table = nc.book.evidence.side_by_side(runs=from_runs, bundle=from_bundle)
    assert all(set(table.holds(c)) == {"runs", "bundle"} for c in table.claims)
    assert table.claims == list(from_runs.paper) and len(table.claims) == 3
    assert "<table>" in table._repr_html_() and str(table).startswith("claim of the paper")


def test_the_manifest_records_provenance_and_hashes(tiny_bundle):
    _, folder = tiny_bundle
    manifest = json.loads((folder / bundle.MANIFEST).read_text())
    for key in ("command", "commit", "cpu", "threads", "torch", "date", "wall_seconds", "run_seconds_median"):
        assert manifest[key] not in (None, ""), key
    assert manifest["schema"] == bundle.SCHEMA and len(manifest["runs"]) == 9
    assert all((folder / f).is_file() for f in manifest["files"])


def test_a_damaged_or_incomplete_copy_is_refused_with_the_file_named(tiny_bundle, tmp_path, monkeypatch):
    _, folder = tiny_bundle
    copy = tmp_path / "tiny"
    shutil.copytree(folder, copy)
    monkeypatch.setenv("NCLAB_RESULTS", str(tmp_path))
    logits = next(copy.glob("runs/*/logits.npz"))
    logits.write_bytes(logits.read_bytes()[:-10])
    with pytest.raises(ValueError, match="logits.npz does not match the hash"):
        bundle.load("tiny", fetch=False)
    logits.unlink()
    with pytest.raises(ValueError, match="lacks runs/.*logits.npz"):
        bundle.load("tiny", fetch=False)


def test_a_missing_bundle_is_fetched_by_url_and_an_unreachable_one_says_what_to_set(tiny_bundle, tmp_path,
                                                                                   monkeypatch):
    _, folder = tiny_bundle
    monkeypatch.delenv("NCLAB_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NCLAB_RESULTS_URL", folder.parent.as_uri())
    fetched = bundle.load("tiny")
    assert fetched.folder == tmp_path / "cache" / "published" / "tiny"
    assert len(fetched.results) == 9
    monkeypatch.setenv("NCLAB_RESULTS_URL", (tmp_path / "nowhere").as_uri())
    with pytest.raises(FileNotFoundError, match="could not fetch .* Set NCLAB_RESULTS"):
        bundle.load("other")
    assert not (tmp_path / "cache" / "published" / "other").exists()


def test_the_repository_url_is_the_one_in_config_yml_everywhere():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert repository.REPOSITORY == config["url"].rstrip("/") and repository.BRANCH == config["branch"]
    for md in sorted((ROOT / "book").glob("[0-9]*.md")):
        urls = set(re.findall(r'%pip install -q "git\+([^"]*)"', md.read_text()))
        assert urls == {repository.REPOSITORY}, md.name


def test_the_default_profile_never_follows_the_hardware(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("NCLAB_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runs.default_profile() == "quick"
    assert runs.config().dataset == "digits" and runs.book_sweep.__defaults__[0] is None
    # the plan and estimate are printed before anything trains
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("NCLAB_PROGRESS", "1")
    configs = runs.grid(None, deltas=(0.0,), seeds=(0,), epochs=1, width=8)
    runs.sweep(configs, workers=1)
    out = capsys.readouterr().out
    assert out.startswith("plan: train 1 of 1 runs (mlp on digits, 1 epochs;") and "estimate:" in out
    assert "nothing to train" in runs.plan(configs, 2)


def test_the_estimate_uses_the_profile_and_the_finished_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path))
    text = runs.plan(runs.grid("quick", deltas=runs.SWEEP_DELTAS, seeds=runs.SWEEP_SEEDS), 2)
    assert "train 48 of 48 runs" in text and "about 2 min (5 s a run" in text
    assert "unknown for this setting" in runs.plan(runs.grid("paper"), 2)
    assert runs.profile_of(runs.config("fashion", delta=0.3, seed=4)) == "fashion"


def test_expect_names_every_claim_the_text_gets_wrong():
    ev = nc.book.evidence.Evidence("chapter 9", claims={"a": True}, paper={"b": False})
    ev.expect(holds=["a"], fails=["b"])
    with pytest.raises(AssertionError, match="expected to hold, does not: b"):
        ev.expect(holds=["a", "b"])
    with pytest.raises(KeyError, match="no claims"):
        ev.expect(holds=["c"])
    with pytest.raises(ValueError, match="same chapter"):
        nc.book.evidence.side_by_side(x=ev, y=nc.book.evidence.Evidence("other", paper={"c": True}))
