"""The light per-epoch record (``light_every``) beside the full measurement."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from nclab import data, evaluate, metrics, models, runs
from nclab import train as train_module
from run_tools import train_until
from nclab.train import RunResult, TrainConfig, cache_key, train


def _config(**overrides) -> TrainConfig:
    # The quick profile (digits MLP), short; full records every 3 epochs, light records every epoch.
    return runs.config("quick", delta=0.1, seed=0, epochs=7, milestones=[5], log_every=3, light_every=1,
                       **overrides)


def test_one_light_record_per_epoch_matching_the_full_record_and_the_final_model(tmp_path):
    config = _config()
    result = train(config, run_dir=tmp_path, progress=False)
    assert [r["epoch"] for r in result.light] == list(range(1, 8))
    assert [r["epoch"] for r in result.history] == [1, 3, 6, 7]  # the full grid is unchanged
    assert all(set(r) == set(evaluate.LIGHT_FIELDS) for r in result.light)
    assert [r["lr"] for r in result.light] == [train_module.lr_at(config, e) for e in range(1, 8)]
    # Both records come from the same eval-mode pass over the training split: the same numbers.
    light = {r["epoch"]: r for r in result.light}
    for full in result.history:
        for key in ("train_loss", "train_error", "nc1"):
            assert light[full["epoch"]][key] == full[key]
    # An independent computation: the saved final network, measured again on the training split,
    # with the run's thread count (a reduction over another number of threads rounds differently).
    model = result.load_model()
    batches = data.DeviceBatches(data.load(config.dataset, "train"), torch.device("cpu"))
    with train_module._cpu_threads(config.threads):
        again = evaluate.measure_light(model, batches, config.delta)
    for key in ("train_loss", "train_error", "nc1"):
        assert result.light[-1][key] == again[key]
    # Stored and read back with the result; light_series reads one field.
    loaded = RunResult.load(tmp_path, config=config)
    assert loaded.light == result.light
    assert loaded.light_series("nc1").shape == (7,)
    assert loaded.to_dict()["light"] == result.light


def test_a_light_epoch_between_full_epochs_matches_an_independent_pass():
    """At a light-only epoch (2) the record equals measure_light on the network after epoch 2."""
    config = _config()
    two = train(dataclasses.replace(config, epochs=2), progress=False)
    assert two.light[1]["epoch"] == 2
    # A 7-epoch run agrees with the 2-epoch run at epoch 2 only if the lr schedule does: it does (milestone 5).
    seven = train(config, progress=False)
    for key in ("train_loss", "train_error", "nc1", "lr"):
        assert seven.light[1][key] == two.light[1][key]
        assert two.light[1][key] == two.history[-1][key]  # epoch 2 is the last: a full record there too


@pytest.mark.parametrize("name", ["mlp", "resnet18"])
def test_the_light_pass_leaves_the_model_and_the_random_state_alone(name):
    """Also for a conv net, measured through a copy with folded batch norms and channels-last weights:
    its numbers equal the plain eval pass up to float32 rounding."""
    train_set = data.load("digits", "train")
    batches = data.DeviceBatches(train_set, torch.device("cpu"))
    torch.manual_seed(0)
    model = models.build(name, train_set.num_classes, train_set.in_channels, train_set.image_size, 8)
    with torch.no_grad():  # batch-norm statistics that are not the identity
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0, 0.3)
                module.running_var.uniform_(0.5, 2.0)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    light = evaluate.measure_light(model, batches, 0.1)
    assert model.training
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    features, logits = evaluate.forward(model, batches)
    plain = metrics.collapse_report_from_features(features, batches.labels, model.classifier.weight,
                                                  model.classifier.bias, logits).nc1
    assert light["nc1"] == pytest.approx(plain, rel=1e-4)
    if name == "mlp":  # measured as it is: exactly the plain pass
        assert light["nc1"] == plain


def test_existing_configs_keep_their_cache_keys_and_dicts():
    version = "0.1.0"
    assert cache_key(runs.config("fashion", delta=0.05, seed=0), version) == "320fe33c70aa"
    assert cache_key(runs.config("quick", delta=0.05, seed=0), version) == "572a0ae7a004"
    assert "light_every" not in runs.config("fashion").to_dict()
    assert "light_every" not in TrainConfig().to_dict()
    assert TrainConfig.from_dict(runs.config("quick").to_dict()).light_every is None
    study = runs.config("fashion-study")
    assert study.light_every == 1
    assert cache_key(study, version) != cache_key(runs.config("fashion"), version)
    assert runs.profile_of(study) == "fashion-study" and runs.profile_of(runs.config("fashion")) == "fashion"
    # The study is the fashion profile with light records and the evaluation subset added, nothing else.
    assert dataclasses.replace(study, light_every=None, eval_subset=None) == runs.config("fashion")
    assert study.log_every == 5 and study.epochs == 50 and study.milestones == (30,)
    assert study.eval_subset == 1000
    assert "eval_subset" not in runs.config("fashion").to_dict() and "eval_subset" not in TrainConfig().to_dict()
    assert TrainConfig.from_dict(runs.config("fashion").to_dict()).eval_subset is None
    assert TrainConfig.from_dict(study.to_dict()) == study


def test_a_run_without_light_every_records_no_light_and_writes_no_light_key(tmp_path):
    result = train(dataclasses.replace(_config(), light_every=None, epochs=2), run_dir=tmp_path, progress=False)
    assert result.light == []
    assert "light" not in result.to_dict()
    assert "light" not in torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    with pytest.raises(ValueError, match="light_every"):
        TrainConfig(light_every=0)


def test_a_resumed_run_keeps_its_light_records(tmp_path, monkeypatch):
    config = _config()
    reference = train(config, progress=False)
    train_until(config, tmp_path, 4)
    assert [r["epoch"] for r in torch.load(tmp_path / "checkpoint.pt", weights_only=True)["light"]] == [1, 2, 3, 4]
    resumed = train(config, run_dir=tmp_path, progress=False)

    def values(records):
        return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in records]
    assert values(resumed.light) == values(reference.light)
    assert values(resumed.history) == values(reference.history)


def test_a_checkpoint_with_damaged_light_records_is_refused(tmp_path, monkeypatch):
    config = _config()
    train_until(config, tmp_path, 2)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    state["light"] = state["light"][:1]
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="light records"):
        train(config, run_dir=tmp_path, progress=False)


# The evaluation subset (eval_subset): intermediate full records on a fixed balanced subset of val and test.

@pytest.mark.parametrize("split", ["val", "test"])
def test_the_evaluation_subset_is_fixed_balanced_and_the_first_of_each_class(split):
    batches = data.DeviceBatches(data.load("digits", split), torch.device("cpu"))
    subset = evaluate.eval_subset(batches, 100, 10)
    again = evaluate.eval_subset(data.DeviceBatches(data.load("digits", split), torch.device("cpu")), 100, 10)
    assert torch.equal(subset.labels, again.labels) and torch.equal(subset.images, again.images)
    assert torch.bincount(subset.labels, minlength=10).tolist() == [10] * 10
    # The rule: the first 10 images of each class, in the split's order, the split's own tensors.
    index = torch.cat([torch.nonzero(batches.labels == k).flatten()[:10] for k in range(10)]).sort().values
    assert torch.equal(subset.labels, batches.labels[index]) and torch.equal(subset.images, batches.images[index])
    assert len(batches) > 100  # the split itself is left whole
    for size in (105, len(batches) + 10 - len(batches) % 10):
        with pytest.raises(ValueError, match="eval_subset"):
            evaluate.eval_subset(batches, size, 10)
    with pytest.raises(ValueError, match="eval_subset"):
        TrainConfig(eval_subset=0)


def test_intermediate_records_use_the_subset_and_the_last_the_whole_splits(tmp_path):
    config = dataclasses.replace(_config(), epochs=4, log_every=2, eval_subset=50)
    result = train(config, run_dir=tmp_path, progress=False)
    whole = train(dataclasses.replace(config, eval_subset=None), progress=False)
    assert [r["epoch"] for r in result.history] == [1, 2, 4]
    assert result.provenance["eval_subset"]["subset_epochs"] == [1, 2]
    assert result.provenance["eval_subset"]["whole_split_epochs"] == [4]
    assert result.provenance["eval_subset"]["images"] == 50
    assert "eval_subset" not in whole.provenance

    def values(record, keys=None):
        return {k: v for k, v in record.items() if not k.startswith("time_") and (keys is None or k in keys)}
    # Training is untouched; the last record, with the final test error and ECE, is the whole-split one.
    assert values(result.history[-1]) == values(whole.history[-1])
    assert [values(r) for r in result.light] == [values(r) for r in whole.light]
    test_fields = ("test_loss", "test_error", "test_ece", "test_ece_scaled", "temperature")
    for sub, full in zip(result.history[:-1], whole.history[:-1]):
        assert values(sub, evaluate.MEASURED_FIELDS[:2]) == values(full, evaluate.MEASURED_FIELDS[:2])
        assert values(sub, test_fields) != values(full, test_fields)
        assert sub["test_error"] * 50 == pytest.approx(round(sub["test_error"] * 50), abs=1e-4)  # of 50 images
    # Stored and read back; a result whose provenance does not say which records used the subset is refused.
    loaded = RunResult.load(tmp_path, config=config)
    assert loaded.provenance["eval_subset"] == result.provenance["eval_subset"]
    raw = json.loads((tmp_path / "result.json").read_text())
    del raw["provenance"]["eval_subset"]
    (tmp_path / "result.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="eval_subset"):
        RunResult.load(tmp_path, config=config)
