"""Evaluation: one forward pass, one record schema, and final networks opened without their data."""

from __future__ import annotations

import doctest
import io

import pytest
import torch

import nclab.features
import nclab.metrics
from nclab import data, evaluate, models, runs
from nclab import train as train_module
from nclab.train import CHECKPOINT, RunResult, train


def _tiny(**overrides):
    return runs.config("quick", **{"epochs": 2, "width": 32, **overrides})


def test_the_former_homes_name_the_same_objects():
    assert train_module.measure is evaluate.measure
    assert runs.outputs is evaluate.outputs and runs.outputs_by_delta is evaluate.outputs_by_delta
    assert runs.Outputs is evaluate.Outputs
    assert nclab.metrics.FeatureStats is nclab.features.FeatureStats


def test_a_real_run_logs_exactly_the_declared_fields(tmp_path):
    result = train(_tiny(), run_dir=tmp_path, progress=False)
    assert [list(r) for r in result.history] == [list(evaluate.RECORD_FIELDS)] * len(result.history)
    loaded = RunResult.load(tmp_path)
    assert all(set(r) == set(evaluate.HistoryRecord.__annotations__) for r in loaded.history)
    assert all(isinstance(r["epoch"], int) for r in loaded.history)


def test_measure_returns_the_measured_fields_in_order():
    sets = [data.load("gaussians", s, n_per_class=30) for s in ("train", "val", "test")]
    splits = [data.DeviceBatches(s, "cpu") for s in sets]
    torch.manual_seed(0)
    net = models.build("mlp", sets[0].num_classes, sets[0].in_channels, sets[0].image_size, 16)
    net.train()
    record = evaluate.measure(net, *splits, 0.1, batch_size=7)
    assert list(record) == list(evaluate.MEASURED_FIELDS)
    assert net.training  # the mode it had is given back
    features, logits = evaluate.forward(net.eval(), splits[0])
    assert features.dtype == logits.dtype == torch.float32
    assert logits.shape == (len(splits[0]), sets[0].num_classes)


def test_load_model_reads_no_data(tmp_path, monkeypatch):
    result = train(_tiny(), run_dir=tmp_path, progress=False)
    monkeypatch.setattr(data, "load", lambda *a, **k: pytest.fail("the dataset was loaded"))
    model = RunResult.load(tmp_path).load_model()
    assert model.classifier.out_features == 10
    torch.testing.assert_close(model.classifier.weight, result_weight(tmp_path))


def result_weight(folder):
    state = torch.load(folder / CHECKPOINT, weights_only=True)
    return state["model"]["classifier.weight"]


def test_a_checkpoint_without_the_network_shape_still_opens(tmp_path):
    train(_tiny(), run_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT
    state = torch.load(path, weights_only=True)
    for key in ("num_classes", "in_channels", "image_size"):
        del state[key]
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path.write_bytes(buffer.getvalue())
    assert RunResult.load(tmp_path).load_model().classifier.out_features == 10


def test_outputs_refuses_what_is_not_a_result():
    with pytest.raises(ValueError, match="result must be a RunResult, got dict"):
        evaluate.outputs({})
    with pytest.raises(ValueError, match="results must be a non-empty list of RunResult"):
        evaluate.outputs_by_delta([1])


@pytest.mark.parametrize("module", [nclab.features, evaluate])
def test_docstring_examples(module, one_torch_thread):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False)
    assert result.failed == 0
