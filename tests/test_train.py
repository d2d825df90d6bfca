"""Training: the quick run collapses, the optimizer is SGD, and a killed run resumes exactly."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nclab import data, models, runs
from run_tools import train_until
from nclab.train import CHECKPOINT, RESULT, RunResult, TrainConfig, lr_at, measure, train


def _without_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if not k.startswith("time_")} for record in history]


def _small(**overrides) -> TrainConfig:
    return runs.config("quick", **{"epochs": 3, "width": 64, "log_every": 1, **overrides})


@pytest.mark.slow
def test_quick_profile_collapses_to_zero_training_error():
    result = train(runs.config("quick", delta=0.0), progress=False)
    nc1 = result.series("nc1")
    assert result.final["train_error"] == 0.0
    assert nc1[0] / nc1[-1] >= 10
    assert result.epochs[0] == 1 and result.epochs[-1] == 60
    # The record has everything the chapters plot, as finite numbers.
    for key in ("train_loss", "test_error", "nc2_wh", "nc3", "nc4", "w_norm", "h_norm",
                "test_ece", "test_ece_scaled", "temperature", "lr", "time_train", "time_measure"):
        assert math.isfinite(result.final[key]), key


@torch.no_grad()
def sgd_step(params: list[torch.Tensor], velocity: list[torch.Tensor], lr: float, momentum: float,
             weight_decay: float) -> None:
    """One step of SGD with momentum and weight decay, in place: the reference for the optimizer of train.

    For each parameter p with gradient g and momentum buffer v (zero before the first step):

        g <- g + weight_decay * p        (weight decay: the gradient of (weight_decay/2) ||p||^2)
        v <- momentum * v + g
        p <- p - lr * v

    the update of ``torch.optim.SGD`` with dampening 0 and without Nesterov, written out; the
    ``_foreach`` ops apply each line to all parameters at once. Checkpoints of format
    "nclab-checkpoint-1" hold ``v`` as their "velocity".
    """
    grads = [p.grad for p in params]
    if weight_decay:
        torch._foreach_add_(grads, params, alpha=weight_decay)
    torch._foreach_mul_(velocity, momentum)
    torch._foreach_add_(velocity, grads)
    torch._foreach_add_(params, velocity, alpha=-lr)


@pytest.mark.slow
@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_torch_sgd_is_the_written_out_step_bit_for_bit(momentum):
    torch.manual_seed(0)
    ours = models.build("mlp", 4, 1, 3, width=8)
    theirs = models.build("mlp", 4, 1, 3, width=8)
    theirs.load_state_dict(ours.state_dict())
    velocity = [torch.zeros_like(p) for p in ours.parameters()]
    optimizer = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=momentum, weight_decay=1e-2, foreach=True)
    for step in range(5):
        lr = 0.1 * 0.5 ** step  # changed between steps, as the schedule of train does
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = torch.randn(16, 1, 3, 3), torch.randint(0, 4, (16,))
        for net in (ours, theirs):
            net.zero_grad()
            F.cross_entropy(net(x), y, label_smoothing=0.1).backward()
        sgd_step(list(ours.parameters()), velocity, lr, momentum, 1e-2)
        optimizer.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    if momentum:
        for p, v in zip(theirs.parameters(), velocity):
            assert torch.equal(optimizer.state[p]["momentum_buffer"], v)


def test_a_format_1_checkpoint_resumes_with_the_same_history(tmp_path, monkeypatch):
    """Checkpoints written with the hand-written step ("velocity") continue bit for bit."""
    config = _small(epochs=4)
    reference = train(config, progress=False)
    train_until(config, tmp_path, 2)
    path = tmp_path / CHECKPOINT
    state = torch.load(path, weights_only=True)
    optimizer = state.pop("optimizer")
    state["velocity"] = [optimizer["state"][i]["momentum_buffer"] for i in sorted(optimizer["state"])]
    state["format"] = "nclab-checkpoint-1"
    for key in ("num_classes", "in_channels", "image_size"):
        del state[key]
    torch.save(state, path)
    resumed = train(config, run_dir=tmp_path, progress=False)
    assert _without_times(resumed.history) == _without_times(reference.history)


def test_a_checkpoint_without_optimizer_state_is_refused(tmp_path):
    train(_small(epochs=2), run_dir=tmp_path, progress=False)
    (tmp_path / RESULT).unlink()
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    del state["optimizer"]
    torch.save(state, tmp_path / CHECKPOINT)
    with pytest.raises(ValueError, match="holds no optimizer state.*delete it to restart"):
        train(_small(epochs=2), run_dir=tmp_path, progress=False)


def test_learning_rate_schedules():
    step = TrainConfig(lr=0.1, epochs=10, milestones=[3, 6], gamma=0.5)
    assert [lr_at(step, e) for e in (1, 3, 4, 6, 7, 10)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    cosine = TrainConfig(lr=0.1, epochs=4, schedule="cosine")
    assert [lr_at(cosine, e) for e in range(1, 5)] == pytest.approx(
        [0.1, 0.05 * (1 + math.cos(math.pi / 4)), 0.05, 0.05 * (1 + math.cos(3 * math.pi / 4))])


def test_measure_errors_and_losses_match_a_sample_loop():
    torch.manual_seed(1)
    splits = [data.DeviceBatches(data.load("digits", s), "cpu") for s in ("train", "val", "test")]
    net = models.build("mlp", 10, 1, 8, width=32)
    record = measure(net, *splits, delta=0.2, batch_size=500)
    net.eval()
    wrong, loss = 0, 0.0
    with torch.no_grad():
        for x, y in zip(splits[0].images, splits[0].labels):
            z = net(x[None])[0]
            wrong += int(z.argmax() != y)
            q = torch.full((10,), 0.2 / 10)
            q[y] += 0.8
            loss += float(-(q * z.log_softmax(0)).sum())
    assert record["train_error"] == pytest.approx(wrong / len(splits[0]))
    assert record["train_loss"] == pytest.approx(loss / len(splits[0]), rel=1e-5)
    assert 0 <= record["test_ece"] <= 1 and record["temperature"] > 0


def test_config_validation():
    with pytest.raises(ValueError, match="delta"):
        TrainConfig(delta=1.0).validate()
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0).validate()
    with pytest.raises(ValueError, match="weight_decay must be 0"):
        TrainConfig(lambda_H=1e-6).validate()
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear").validate()
    with pytest.raises(ValueError, match="dataset"):
        TrainConfig(dataset="svhn").validate()


def test_explicit_penalties_shrink_the_classifier():
    free = train(_small(weight_decay=0.0, epochs=4), progress=False)
    penalized = train(_small(lambda_W=0.5, lambda_H=1e-4, lambda_b=0.5, epochs=4), progress=False)
    assert penalized.config.weight_decay == 0.0
    assert penalized.final["w_norm"] < 0.5 * free.final["w_norm"]
    assert penalized.final["b_norm"] < free.final["b_norm"]


def test_cnn_with_augmentation_trains():
    result = train(_small(model="cnn", width=8, augment=True, epochs=2), progress=False)
    assert result.final["train_error"] < 0.9 and len(result.history) == 2


def test_result_json_round_trip(tmp_path):
    result = train(_small(epochs=2), run_dir=tmp_path, progress=False)
    raw = json.loads((tmp_path / RESULT).read_text())
    assert set(raw) == {"config", "history", "provenance"} and raw["config"]["epochs"] == 2
    assert {"nclab", "torch", "device", "date"} <= set(raw["provenance"])
    loaded = RunResult.load(tmp_path)
    assert loaded.config == result.config and _without_times(loaded.history) == _without_times(result.history)
    model = loaded.load_model()
    assert not model.training and model.classifier.out_features == 10


_CHILD = """
import sys
from nclab.train import TrainConfig, train
train(TrainConfig(**{config}), run_dir=sys.argv[1], progress=False)
"""


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_history(tmp_path):
    config = _small(epochs=15, delta=0.1)
    reference = train(config, progress=False)

    run_dir = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(config=config.to_dict()), str(run_dir)],
                             cwd=Path(__file__).resolve().parents[1])
    checkpoint = run_dir / CHECKPOINT
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    saved = torch.load(checkpoint, weights_only=True)
    assert 1 <= saved["epoch"] < config.epochs, "the run should be killed mid-way"
    assert not (run_dir / RESULT).exists()

    resumed = train(config, run_dir=run_dir, progress=False)
    assert _without_times(resumed.history) == _without_times(reference.history)
    assert resumed.history[0]["time_train"] == saved["history"][0]["time_train"]


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    config = _small(epochs=1)
    finished = train(config, run_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        finished.load_model()
    assert str(path) in str(info.value)
    (tmp_path / RESULT).unlink()  # an unfinished run: training resumes from the checkpoint
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        train(config, run_dir=tmp_path, progress=False)
    assert str(path) in str(info.value)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=str(path)):
        train(config, run_dir=tmp_path, progress=False)


def test_foreign_checkpoint_is_a_clear_error(tmp_path):
    train(_small(epochs=1), run_dir=tmp_path, progress=False)
    # A finished run of another config: its result is named, and nothing is overwritten.
    before = (tmp_path / RESULT).read_bytes()
    with pytest.raises(ValueError, match="belongs to a different run .*delta=0.0 there, 0.1 here") as info:
        train(_small(epochs=1, delta=0.1), run_dir=tmp_path, progress=False)
    assert str(tmp_path / RESULT) in str(info.value)
    assert (tmp_path / RESULT).read_bytes() == before
    # An unfinished one: its checkpoint is named, also when asked to start afresh.
    (tmp_path / RESULT).unlink()
    for resume in (True, False):
        with pytest.raises(ValueError, match="belongs to a different run .*delta=0.0 there, 0.1 here") as info:
            train(_small(epochs=1, delta=0.1), run_dir=tmp_path, resume=resume, progress=False)
        assert str(tmp_path / CHECKPOINT) in str(info.value)
    torch.save({"weights": torch.zeros(3)}, tmp_path / CHECKPOINT)
    with pytest.raises(ValueError, match="not an nclab training checkpoint"):
        train(_small(epochs=1), run_dir=tmp_path, progress=False)


def test_a_config_is_frozen_and_checked_when_made():
    config = TrainConfig(lr=1, milestones=(5, 2), epochs=np.int64(7))
    assert config.lr == 1.0 and isinstance(config.lr, float) and type(config.epochs) is int
    assert config.milestones == [2, 5] and config.validate() is config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.delta = 0.1
    variant = dataclasses.replace(config, delta=0.1)
    assert variant.delta == 0.1 and config.delta == 0.0
    with pytest.raises(ValueError, match="delta"):
        dataclasses.replace(config, delta=1.0)
    with pytest.raises(ValueError, match="lr must be a finite number >= 0, got nan"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"delta": 0.1, "lrate": 0.1})
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        TrainConfig(device="gpu")


def test_run_dir_leaves_its_argument_alone():
    config = runs.config("quick", delta=0.05)
    before = config.to_dict()
    runs.run_dir(config)
    assert config.to_dict() == before


def test_training_leaves_the_callers_random_state_alone(one_torch_thread):
    """A notebook's later random draws must not depend on whether a run was trained or read from the cache."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(runs.config("quick", dataset="gaussians", epochs=1, width=8), progress=False)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


def test_a_run_trains_when_the_caller_has_turned_gradients_off():
    # A Ctrl-C between a no_grad block's entry and its exit leaves gradients off in the process (a
    # notebook's kernel, or a sweep's worker that then trains its next run); training must not depend
    # on it, and must leave the caller's mode as it was.
    cfg = TrainConfig(dataset="digits", model="mlp", epochs=1, log_every=1, seed=0)
    with torch.no_grad():
        result = train(cfg, progress=False)
        assert not torch.is_grad_enabled()
    reference = train(cfg, progress=False)
    untimed = lambda history: [{k: v for k, v in row.items() if not k.startswith("time_")} for row in history]
    assert untimed(result.history) == untimed(reference.history)
