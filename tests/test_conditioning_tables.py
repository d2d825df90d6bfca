"""nclab.book.conditioning: chapter 7's tables and the claims its prose makes."""

from __future__ import annotations

import dataclasses
import doctest

import pytest

from nclab.book import conditioning
from nclab.descent import convergence_experiment
from nclab.hessian import condition_numbers
from nclab.ufm import UFM

DELTAS = (0.0, 0.1, 0.3)
SETTING = dict(num_classes=4, per_class=5, dim=6, lambda_W=5e-3, lambda_H=5e-3, lambda_b=5e-3)


@pytest.fixture(scope="module")
def kappas(one_torch_thread):
    return [condition_numbers(UFM(**SETTING, delta=delta)) for delta in DELTAS]


@pytest.fixture(scope="module")
def runs(one_torch_thread):
    return {policy: convergence_experiment(deltas=DELTAS, lr=policy, steps=500, log_every=5, **SETTING)
            for policy in ("auto", "shared")}


def test_docstring_examples(one_torch_thread):
    assert doctest.testmod(conditioning, report=False).failed == 0


def test_trend():
    assert conditioning.trend([1, 2]) == "rises"
    assert conditioning.trend([2, 1, 0]) == "falls"
    assert conditioning.trend([1, 1]) == "is not monotone"


def test_kappa_table_has_one_row_per_delta_in_both_tables(kappas):
    lines = conditioning.kappa_table(kappas).splitlines()
    assert lines[0].split() == ["delta", "beta", *conditioning.DEFINITIONS]
    assert len(lines) == 2 * (len(DELTAS) + 1) + 1
    assert lines[1].split()[0] == "0" and lines[-1].split()[-1] == str(kappas[-1].num_zero)


def test_step_table_prints_every_count_and_never(runs):
    text = conditioning.step_table(runs)
    assert text.count("step: steps until") == 2 and "thresholds: gap 1e-10" in text
    row = runs["auto"].table[0]
    assert f"{row['objective_gap']}" in text.splitlines()[2]
    broken = dataclasses.replace(runs["auto"], table=[{**row, "nc1": None}])
    assert "never" in conditioning.step_table({"auto": broken})


def test_rank_correlations_match_the_chapter(kappas, runs):
    rho = conditioning.rank_correlations(kappas, runs)
    assert rho["shared", "objective_gap"] is None          # the same count for every delta
    assert rho["auto", "objective_gap"]["full"] == pytest.approx(1.0)
    assert rho["auto", "objective_gap"]["logit"] == pytest.approx(-1.0)
    text = conditioning.correlation_table(kappas, runs)
    assert "1/within" in text and "the same count for every delta" in text


def test_the_claims_of_the_prose_hold_and_every_text_is_short(kappas, runs):
    for evidence in (conditioning.kappa_evidence(kappas, "small"), conditioning.descent_evidence(kappas, runs)):
        assert evidence.failed() == [], evidence
        assert all(key.startswith("ch7_") and len(text) < 100 for key, text in evidence.texts.items())
    assert conditioning.kappa_evidence(kappas, "small").texts["ch7_small_full_min"] == "0.005"


def test_a_broken_claim_is_reported(kappas, runs):
    backwards = [dataclasses.replace(k, full=1 / k.full) for k in kappas]
    failed = conditioning.kappa_evidence(backwards, "small").failed()
    assert failed == ["small: the full-Hessian condition number rises with δ"]
    with pytest.raises(AssertionError, match="rises with δ"):
        conditioning.kappa_evidence(backwards, "small").check()


def test_bad_input(kappas, runs):
    with pytest.raises(ValueError, match="ConditionNumbers"):
        conditioning.kappa_table([])
    with pytest.raises(ValueError, match="increasing"):
        conditioning.kappa_evidence(kappas[::-1], "small")
    with pytest.raises(ValueError, match="both policies"):
        conditioning.descent_evidence(kappas, {"auto": runs["auto"]})
    with pytest.raises(ValueError, match="same deltas"):
        conditioning.rank_correlations(kappas[:2], runs)
    with pytest.raises(ValueError, match="ConvergenceResult"):
        conditioning.step_table({"fast": runs["auto"]})
