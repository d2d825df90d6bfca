"""The pre-registered study's analysis (nclab.book.study) on hand-made runs, against the pre-registration's words."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from nclab import calibration
from nclab.book import study
from nclab.config import TrainConfig
from nclab.results import RunResult

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(delta, seed, *, zero_at=None, relapse=False, nc1_start=3.0, nc1_rate=0.85, test_error=0.16,
         test_ece=0.1, scaled=0.02, temperature=1.5, nc2_start=0.9):
    """A 50-epoch run: train error reaches 0 at ``zero_at`` (never if None), NC1 falls geometrically."""
    config = TrainConfig(dataset="fashion-mnist", model="resnet18", width=8, delta=delta, seed=seed, epochs=50,
                         log_every=5, light_every=1)
    light = []
    for e in range(1, 51):
        error = 0.0 if zero_at is not None and e >= zero_at else 0.5 / e
        if relapse and zero_at is not None and e == zero_at + 1:
            error = 0.0005
        light.append({"epoch": e, "lr": 0.05, "train_loss": 1.0 / e, "train_error": error,
                      "nc1": nc1_start * nc1_rate ** (e - 1), "time_measure": 0.0})
    history = []
    for e in (1, *range(5, 51, 5)):
        nc1 = nc1_start * nc1_rate ** (e - 1)
        history.append({**light[e - 1], "test_loss": 0.5, "test_error": test_error, "nc2_wh": nc2_start * nc1 ** 0.2,
                        "test_ece": test_ece, "test_ece_scaled": scaled, "temperature": temperature})
    return RunResult(config, history, {}, light=light)


def _study(n=16, **ls_kwargs):
    rng = np.random.default_rng(0)
    ce = [_run(0.0, s, zero_at=28 + s % 5, test_error=0.16 + 0.004 * rng.normal(), test_ece=0.11) for s in range(n)]
    ls = [_run(0.05, s, zero_at=20, nc1_rate=0.8, test_error=0.155 + 0.004 * rng.normal(), test_ece=0.02 + 0.001 * s,
               **ls_kwargs) for s in range(n)]
    return ce, ls


def test_zero_error_time_is_censored_at_31_so_the_lr_drop_does_not_decide_it():
    ce, ls = _study()
    s = study.analyse([*ce, *ls])
    t_ce = [min(28 + k % 5, 31) for k in range(16)]          # 31 and 32 are after epoch 30: censored at 31
    expected = np.mean(np.subtract([20] * 16, t_ce))
    assert s.secondary["time_zero"].mean == pytest.approx(expected)
    assert s.notes["censored_zero"] == f"CE {sum(28 + k % 5 > 30 for k in range(16))}, δ = 0.05 0"
    assert s.secondary["time_zero"].resolution == 1


def test_a_run_whose_training_error_comes_back_is_reported():
    ce, ls = _study()
    ce[3] = _run(0.0, 3, zero_at=10, relapse=True)
    assert study.analyse([*ce, *ls]).notes["relapses"] == "CE seed 3"


def _brute_sign_flip(d):
    d = np.asarray(d)
    hits = sum(abs(np.dot(signs, d)) >= abs(d.sum()) * (1 - 1e-12) for signs in itertools.product((1, -1), repeat=len(d)))
    return hits / 2 ** len(d)


def test_primary_endpoints_are_holm_over_two_with_exact_sign_flips():
    ce, ls = _study(n=10)
    s = study.analyse([*ce, *ls])
    p = {}
    for key in study.PRIMARY:
        d = [b.final[key] - a.final[key] for a, b in zip(ce, ls)]
        p[key] = _brute_sign_flip(d)
        assert s.primary[key].p_exact == pytest.approx(p[key])
    small, large = sorted(p, key=p.get)
    assert s.primary[small].p_adjusted == pytest.approx(min(1, 2 * p[small]))
    assert s.primary[large].p_adjusted == pytest.approx(max(min(1, 2 * p[small]), p[large]))
    assert s.primary["test_ece"].verdict == "lower"                 # every pair lower by 0.07-0.09


def test_the_fresh_pairs_are_seeds_6_to_15_alone():
    ce, ls = _study()
    s = study.analyse([*ce, *ls])
    d = [ls[k].final["test_error"] - ce[k].final["test_error"] for k in range(6, 16)]
    assert s.fresh["test_error"].n == 10 and s.fresh["test_error"].mean == pytest.approx(np.mean(d))


def test_scaled_ece_gets_a_direction_only_when_every_bin_count_agrees():
    ce, ls = _study(n=8)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (500,), generator=g)
    base = [4 * torch.nn.functional.one_hot(labels, 10) + torch.randn(500, 10, generator=g) for _ in range(8)]
    logits = {0.0: base, 0.05: [z * 1.4 for z in base]}
    s = study.analyse([*ce, *ls], logits, labels)
    assert set(s.scaled_bins) == set(study.SCALED_BINS)
    for k, p in s.scaled_bins.items():
        expected = np.mean([calibration.ece(b / 1.5, labels, k) - calibration.ece(a / 1.5, labels, k)
                            for a, b in zip(logits[0.0], logits[0.05])])
        assert p.mean == pytest.approx(expected, abs=1e-6)
    verdicts = {p.verdict for p in s.scaled_bins.values()}
    assert s.scaled_verdict == (verdicts.pop() if len(verdicts) == 1 else "not separated (bin-dependent)")


def test_unpaired_or_foreign_runs_are_refused_by_name():
    ce, ls = _study(n=3)
    with pytest.raises(ValueError, match=r"seeds \[2\] have a run for one δ only"):
        study.analyse([*ce, *ls[:2]])
    with pytest.raises(ValueError, match="δ = 0.1"):
        study.analyse([*ce, *ls, _run(0.1, 0)])


def test_raw_ece_is_reported_at_every_bin_count_of_the_plan():
    ce, ls = _study(n=8)
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 10, (400,), generator=g)
    base = [3 * torch.nn.functional.one_hot(labels, 10) + torch.randn(400, 10, generator=g) for _ in range(8)]
    logits = {0.0: [z * 2.0 for z in base], 0.05: base}
    s = study.analyse([*ce, *ls], logits, labels)
    assert set(s.raw_bins) == set(study.SCALED_BINS)
    for k, p in s.raw_bins.items():      # no temperature: the logits as they are
        expected = [calibration.ece(b, labels, k) - calibration.ece(a, labels, k) for a, b in zip(logits[0.0], base)]
        assert p.mean == pytest.approx(np.mean(expected), abs=1e-6)
    assert study.texts(s)["st_raw_bins"].startswith(f"10 bins: mean {s.raw_bins[10].mean:+.2g}, 95% CI [")


def test_the_fresh_pairs_are_described_without_a_verdict_word():
    ce, ls = _study()
    text = study.texts(study.analyse([*ce, *ls]))["st_test_error_fresh"]
    d = [ls[k].final["test_error"] - ce[k].final["test_error"] for k in range(6, 16)]
    assert text.startswith(f"mean {np.mean(d):+.2g}, 95% CI [")
    assert not any(word in text for word in ("lower", "higher", "separated", "too few"))


def test_runs_left_out_of_nc2_at_matched_nc1_are_counted_per_arm():
    ce, ls = _study(n=6)
    ls[0] = _run(0.05, 0, zero_at=20, nc1_start=1.0)        # below 1.4 at epoch 1: left out at 1.4 only
    ce[1] = _run(0.0, 1, zero_at=29, nc1_rate=0.99)         # 3 · 0.99^49 ≈ 1.8: never reaches 1.4 or lower
    notes = study.analyse([*ce, *ls]).notes
    assert notes["left_out_nc2_at_nc1_14"] == "CE 1, δ = 0.05 1"
    assert notes["left_out_nc2_at_nc1_073"] == notes["left_out_nc2_at_nc1_019"] == "CE 1, δ = 0.05 0"


def test_the_fitted_temperatures_are_reported_as_a_range_per_arm():
    ce, ls = _study(n=4)
    ce = [_run(0.0, s, zero_at=28, temperature=t) for s, t in enumerate((2.1, 1.94, 2.0, 2.06))]
    notes = study.analyse([*ce, *ls]).notes
    assert notes["temperature_ce"] == "1.94 to 2.10" and notes["temperature_ls"] == "1.50 to 1.50"


def test_scaled_ece_reading_has_no_direction_when_bins_disagree_and_the_20_bin_verdict_otherwise():
    ce, ls = _study(n=8)
    s = study.analyse([*ce, *ls])
    s.scaled_verdict = "not separated (bin-dependent)"
    assert study.texts(s)["st_scaled_reading"].startswith("the bin counts disagree")
    s.scaled_verdict = "higher"
    s.secondary["test_ece_scaled"] = s.primary["test_ece"]          # a "lower" comparison, as the 20-bin one
    assert study.texts(s)["st_scaled_reading"] == "δ = 0.05 gives a lower test ECE after temperature scaling than CE"


def _shifted(result, epoch, key, by):
    history = [dict(h, **{key: h[key] + by}) if h["epoch"] == epoch else dict(h) for h in result.history]
    return RunResult(result.config, history, {}, light=result.light)


def test_the_reproduction_check_finds_the_largest_difference_from_the_pilot():
    ce, ls = _study(n=4)
    pilot = [_shifted(ce[1], 50, "test_error", 0.003), _shifted(ls[2], 10, "train_error", -0.05),
             _shifted(ls[0], 50, "test_ece", 0.001), ce[0], _run(0.1, 0)]     # a δ the study lacks: ignored
    check = study.reproduction([*ce, *ls], pilot)
    assert check["test_error"][0] == pytest.approx(0.003) and check["test_error"][1] == "CE seed 1, epoch 50"
    assert check["train_error"][0] == pytest.approx(0.05) and check["train_error"][1] == "δ = 0.05 seed 2, epoch 10"
    assert check["test_ece"][0] == pytest.approx(0.001)
    assert study.reproduction_text(check).startswith("the final test error differs from the pilot's by up to 0.003 ")
    with pytest.raises(ValueError, match="share no run"):
        study.reproduction(ce, [_run(0.0, 9)])
