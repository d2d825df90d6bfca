"""Every public entry checks its input: a wrong type is a TypeError, a wrong value a ValueError,
each one line that names the argument, says what was expected and what was given."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest
import torch

from nclab import calibration, runs, stats
from nclab._checks import MAX_BINS, ArgumentTypeError, Milestones, check_device, resolve_device
from nclab.__main__ import main
from nclab.hessian import Spectrum, condition_numbers, lanczos_extremes, orbit_dimension, unflatten
from nclab.train import TrainConfig, cache_key, cache_name
from nclab.ufm import UFM, theorem1_curves


def _one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert message and "\n" not in message
    return message


def _networks(n: int = 200, k: int = 3, networks: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = [2 * torch.nn.functional.one_hot(labels, k) + torch.randn(n, k, generator=g) for _ in range(networks)]
    return logits, labels


# wrong types are TypeErrors, and ValueErrors too ---------------------------------------------------


def test_a_wrong_type_is_a_type_error_that_callers_of_value_error_still_catch():
    """The command line reports ValueErrors in one line: a wrong type must reach it the same way."""
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)


# stats.ece_interval --------------------------------------------------------------------------------


@pytest.mark.parametrize("shift, error", [(10, ValueError), (-5, ValueError)])
def test_ece_interval_checks_the_label_range(shift, error):
    logits, labels = _networks()
    bad = labels.clone()
    bad[3] = 3 + shift if shift > 0 else shift          # >= K = 3, or negative
    with pytest.raises(error, match="labels") as info:
        stats.ece_interval(logits, bad, n_resamples=50)
    assert "[0, 3)" in _one_line(info)


def test_ece_interval_checks_the_label_type_and_length():
    logits, labels = _networks()
    with pytest.raises(TypeError, match="labels must hold integers"):
        stats.ece_interval(logits, labels.double(), n_resamples=50)
    with pytest.raises(TypeError, match="labels"):
        stats.ece_interval(logits, labels.numpy() + 0.5, n_resamples=50)
    with pytest.raises(ValueError, match="labels"):
        stats.ece_interval(logits, labels[:-1], n_resamples=50)
    with pytest.raises(ValueError, match="labels must be 1-D"):
        stats.ece_interval(logits, labels[:, None], n_resamples=50)


def test_ece_interval_checks_the_logits():
    logits, labels = _networks()
    with pytest.raises(TypeError, match="logits"):
        stats.ece_interval(logits[0], labels)                    # one array, not a list of them
    with pytest.raises(ValueError, match="logits"):
        stats.ece_interval([logits[0], logits[1][:, :2]], labels)  # networks of different K
    with pytest.raises(ValueError, match="logits contains 1 NaN"):
        bad = logits[0].clone()
        bad[0, 0] = math.nan
        stats.ece_interval([bad], labels)


@pytest.mark.parametrize("n_bins, error", [(-3, ValueError), (0, ValueError), (MAX_BINS + 1, ValueError),
                                           (2.5, TypeError), ("20", TypeError), (True, TypeError)])
def test_ece_interval_checks_n_bins(n_bins, error):
    logits, labels = _networks()
    with pytest.raises(error, match="n_bins") as info:
        stats.ece_interval(logits, labels, n_bins=n_bins, n_resamples=50)
    assert repr(n_bins) in _one_line(info)


@pytest.mark.parametrize("confidence, error", [(1.5, ValueError), (0.0, ValueError), (1.0, ValueError),
                                               (math.nan, ValueError), ("0.95", TypeError)])
def test_ece_interval_checks_confidence(confidence, error):
    logits, labels = _networks()
    with pytest.raises(error, match="confidence") as info:
        stats.ece_interval(logits, labels, confidence=confidence, n_resamples=50)
    assert "(0, 1)" in _one_line(info)


def test_paired_checks_confidence_the_same_way():
    with pytest.raises(ValueError, match=r"confidence must be a finite number in \(0, 1\), got nan"):
        stats.paired([1.0, 2.0], [1.5, 2.5], confidence=math.nan)
    with pytest.raises(TypeError, match="confidence"):
        stats.paired([1.0, 2.0], [1.5, 2.5], confidence="0.9")


@pytest.mark.parametrize("option, value, error", [
    ("n_resamples", 0, ValueError), ("n_resamples", 10.0, TypeError),
    ("seed", -1, ValueError), ("seed", 2**64, ValueError), ("seed", 1.0, TypeError),
    ("temperatures", [1.0], ValueError), ("temperatures", [1.0, -2.0], ValueError),
    ("temperatures", [1.0, "2"], TypeError), ("temperatures", 2.0, TypeError),
])
def test_ece_interval_checks_its_other_options(option, value, error):
    logits, labels = _networks()
    with pytest.raises(error, match=option):
        stats.ece_interval(logits, labels, **{"n_resamples": 50, option: value})


# probabilities passed as logits --------------------------------------------------------------------


def test_ece_interval_and_nll_warn_about_probabilities_as_ece_does():
    logits, labels = _networks()
    probs = [torch.softmax(z, 1) for z in logits]
    with pytest.warns(UserWarning, match="logits look like probabilities") as ece_warning:
        calibration.ece(probs[0], labels)
    message = str(ece_warning[0].message)
    for measure in (lambda: stats.ece_interval(probs, labels, n_resamples=50),
                    lambda: calibration.nll(probs[0], labels),
                    lambda: calibration.prediction_entropy(probs[0]),
                    lambda: calibration.fit_temperature(probs[0], labels),
                    lambda: calibration.fit_temperature(probs[0], labels, method="ece")):
        with pytest.warns(UserWarning, match="logits look like probabilities") as caught:
            measure()
        assert str(caught[0].message) == message
        assert caught[0].filename == __file__           # it points at the caller, as ece's does
    # Logits and log-probabilities draw no warning; accuracy needs only the argmax.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats.ece_interval(logits, labels, n_resamples=50)
        stats.ece_interval([torch.log(p) for p in probs], labels, n_resamples=50)
        calibration.nll(logits[0], labels)
        calibration.accuracy(probs[0], labels)


# calibration: bins -----------------------------------------------------------------------------------


def test_reliability_bins_refuses_more_bins_than_it_can_hold():
    logits, labels = _networks()
    for measure in (calibration.reliability_bins, calibration.ece):
        with pytest.raises(ValueError, match=r"n_bins must be an integer in \[1, 10000\], got 1000000000"):
            measure(logits[0], labels, n_bins=10**9)
    with pytest.raises(ValueError, match="n_bins"):
        calibration.fit_temperature(logits[0], labels, method="ece", n_bins=10**9)
    assert calibration.reliability_bins(logits[0], labels, n_bins=MAX_BINS).count.sum() == len(labels)


def test_calibration_type_errors_name_the_argument():
    logits, labels = _networks()
    with pytest.raises(TypeError, match="n_bins"):
        calibration.ece(logits[0], labels, n_bins=15.0)
    with pytest.raises(TypeError, match="labels"):
        calibration.nll(logits[0], labels.float())
    with pytest.raises(TypeError, match="logits"):
        calibration.accuracy("logits", labels)
    with pytest.raises(ValueError, match="method"):
        calibration.fit_temperature(logits[0], labels, method=["nll"])


# runs.config and TrainConfig ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, 1.0])
def test_a_bool_field_takes_only_a_bool(value):
    with pytest.raises(TypeError, match="augment") as info:
        runs.config("quick", augment=value)
    assert repr(value) in _one_line(info)
    with pytest.raises(TypeError, match="augment"):
        TrainConfig(augment=value)


def test_a_bool_field_takes_numpy_bools_as_bools():
    assert runs.config("quick", augment=np.bool_(True)).augment is True
    assert runs.config("quick", augment=False).augment is False


@pytest.mark.parametrize("field, value", [
    ("dataset", ["digits"]), ("model", None), ("schedule", 1), ("delta", "0.1"), ("lr", True),
    ("epochs", 10.0), ("width", "64"), ("milestones", 30), ("milestones", [30.0]), ("device", 0),
])
def test_every_field_of_the_wrong_type_is_a_type_error_naming_it(field, value):
    with pytest.raises(TypeError, match=field):
        runs.config("quick", **{field: value})


def test_numbers_are_stored_as_python_numbers_and_give_one_cache_key():
    plain = runs.config("quick", delta=0.1, lr=0.05, weight_decay=0.02, epochs=60, seed=3)
    numpy = runs.config("quick", delta=np.float32(0.1), lr=np.float32(0.05), weight_decay=np.float64(0.02),
                        epochs=np.int64(60), seed=np.uint8(3))
    tensor = runs.config("quick", delta=torch.tensor(0.1), lr=torch.tensor(0.05),
                         weight_decay=0.02, epochs=60, seed=3)
    for other in (numpy, tensor):
        assert other == plain and hash(other) == hash(plain)
        assert cache_key(other) == cache_key(plain) and cache_name(other) == cache_name(plain)
        assert all(type(getattr(other, f)) is type(getattr(plain, f)) for f in ("delta", "lr", "epochs", "seed"))
    assert type(numpy.delta) is float and numpy.delta == 0.1


def test_a_config_is_hashable_and_its_milestones_a_tuple_written_as_a_list():
    config = runs.config("quick", milestones=[50, 30])
    assert hash(config) == hash(runs.config("quick", milestones=(30, 50)))
    assert {config, runs.config("quick")} == {config}
    assert isinstance(config.milestones, tuple) and isinstance(config.milestones, Milestones)
    assert config.milestones == (30, 50) and config.milestones == [30, 50] and config.milestones != [50, 30]
    assert str(config.milestones) == "[30, 50]"
    values = config.to_dict()
    assert type(values["milestones"]) is list and json.loads(json.dumps(values))["milestones"] == [30, 50]
    assert TrainConfig.from_dict(json.loads(json.dumps(values))) == config
    assert dataclasses.replace(config, delta=0.1).milestones == (30, 50)


def test_cache_keys_are_the_ones_the_committed_runs_were_stored_under():
    """results/fashion and every existing cache folder are found by these keys (computed before
    milestones became a tuple and numbers were normalized)."""
    version = "0.1.0"
    assert cache_key(runs.config("fashion", delta=0.05, seed=0), version) == "320fe33c70aa"
    assert cache_key(runs.config("quick", delta=0.05, seed=0), version) == "572a0ae7a004"
    assert cache_key(runs.config("quick", delta=0.0, seed=3, milestones=[]), version) == "2ade38727122"


def test_cache_key_checks_its_arguments():
    with pytest.raises(TypeError, match="config"):
        cache_key(runs.config("quick").to_dict())
    with pytest.raises(TypeError, match="version"):
        cache_key(runs.config("quick"), 1)
    with pytest.raises(TypeError, match="profile"):
        runs.config(["quick"])


@pytest.mark.parametrize("device", ["meta", "mps", "xla", "cpu:0", "cuda:-1", "cuda:x", "vulkan", ""])
def test_the_device_is_one_nclab_can_train_on(device, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device") as info:
        runs.config("quick", device=device)
    assert repr(device) in _one_line(info)
    with pytest.raises(ValueError, match="device"):
        resolve_device(device)


def test_mps_is_a_device_where_it_is_available(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runs.config("quick", device="mps").device == "mps"
    for name in ("auto", "cpu", "cuda", "cuda:1"):
        assert check_device(name) == name
    assert check_device(torch.device("cuda", 2)) == "cuda:2"


@pytest.mark.parametrize("seed, error", [(99999999999999999999999, ValueError), (2**64, ValueError),
                                         (-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_the_seed_is_an_integer_torch_accepts(seed, error):
    with pytest.raises(error, match="seed") as info:
        runs.config("quick", seed=seed)
    assert "[0, 18446744073709551615]" in _one_line(info) or error is TypeError
    config = runs.config("quick", seed=2**64 - 1)
    torch.Generator().manual_seed(config.seed)                  # the largest seed is one torch takes


@pytest.mark.parametrize("option, value", [("--device", "meta"), ("--device", "xla"),
                                           ("--seed", "99999999999999999999999")])
def test_the_command_line_reports_a_bad_device_or_seed_in_one_line(option, value, tmp_path, capsys):
    assert main(["run", "--profile", "quick", option, value, "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option[2:] in err and value in err
    assert not (tmp_path / "run").exists()                      # refused before anything was made


# ufm -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps, error", [(0, ValueError), (-1, ValueError), (10.0, TypeError)])
def test_solve_needs_at_least_one_step(steps, error):
    ufm = UFM(3, 2, 3, 1e-2, 1e-2)
    with pytest.raises(error, match="steps"):
        ufm.solve("lbfgs", steps=steps)


def test_ufm_seeds_and_inputs_are_checked():
    ufm = UFM(3, 2, 3, 1e-2, 1e-2)
    with pytest.raises(ValueError, match="seed"):
        ufm.initial_point(seed=-1)
    with pytest.raises(TypeError, match="seed"):
        ufm.solve("lbfgs", steps=1, seed=0.5)
    with pytest.raises(TypeError, match="init"):
        ufm.solve("lbfgs", steps=1, init=0)
    W, H, b = ufm.initial_point()
    with pytest.raises(TypeError, match="W must be a floating-point torch tensor, got a torch.int64 tensor"):
        ufm.objective(W.long(), H, b)
    with pytest.raises(TypeError, match="num_classes"):
        UFM("3", 2, 3, 1e-2, 1e-2)
    with pytest.raises(TypeError, match="lambda_W"):
        UFM(3, 2, 3, "1e-2", 1e-2)
    with pytest.raises(TypeError, match="deltas"):
        theorem1_curves(3, 2, 1e-3, 1e-3, ["0.1"])


# hessian -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rtol, error", [(-1, ValueError), (math.nan, ValueError), (0.0, ValueError),
                                         (1.0, ValueError), (math.inf, ValueError), ("1e-9", TypeError)])
def test_condition_numbers_check_rtol(rtol, error):
    with pytest.raises(error, match="rtol") as info:
        condition_numbers(UFM(3, 2, 3, 1e-2, 1e-2), rtol=rtol)
    assert "(0, 1)" in _one_line(info) or error is TypeError


def test_the_other_tolerances_of_the_hessian_module_are_checked():
    spectrum = Spectrum(np.array([-1.0, 0.0, 2.0]), np.array([1, 3, 2]), ("a", "b", "a"))
    for method in (spectrum.num_zero, spectrum.min_nonzero, spectrum.num_negative):
        with pytest.raises(ValueError, match="rtol"):
            method(rtol=-1)
    ufm = UFM(3, 2, 3, 1e-2, 1e-2)
    W, H, b = ufm.initial_point()
    with pytest.raises(ValueError, match="rtol"):
        orbit_dimension(W, H, rtol=math.nan)
    with pytest.raises(TypeError, match="H"):
        orbit_dimension(W, H.numpy())
    with pytest.raises(ValueError, match="tol"):
        lanczos_extremes(ufm, W, H, b, tol=-1.0)
    with pytest.raises(ValueError, match="maxiter"):
        lanczos_extremes(ufm, W, H, b, maxiter=0)
    with pytest.raises(ValueError, match="seed"):
        lanczos_extremes(ufm, W, H, b, seed=-2)
    with pytest.raises(TypeError, match="ufm"):
        unflatten("ufm", torch.zeros(5))
    with pytest.raises(TypeError, match="theta"):
        unflatten(ufm, np.zeros(ufm.num_parameters))
