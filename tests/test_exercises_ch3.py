"""Chapter 3's exercises: the checkers accept the chapter's solutions and reject typical mistakes."""

import math
import re

import numpy as np
import pytest
from scipy import stats as scipy_stats

import nclab as nc
from exercise_tools import run_solutions

EXERCISES = ("first_epoch_at_or_below", "paired_interval")


@pytest.fixture(scope="module")
def solutions():
    return run_solutions(3)


def _skeleton(*args):
    raise NotImplementedError


def _first(epochs, values, threshold, strict=False, position=False, never=math.nan):
    values = np.asarray(values)
    reached = np.flatnonzero(values < threshold if strict else values <= threshold)
    if not reached.size:
        return never
    return float(reached[0]) if position else float(epochs[reached[0]])


def _stays_below(epochs, values, threshold):
    above = np.flatnonzero(np.asarray(values) > threshold)
    start = above[-1] + 1 if above.size else 0
    return float(epochs[start]) if start < len(epochs) else math.nan


def _interval(ls, ce, quantile=None, ddof=1):
    d = np.asarray(ls) - np.asarray(ce)
    n = d.size
    q = scipy_stats.t.ppf(0.975, n - 1) if quantile is None else quantile
    half = q * d.std(ddof=ddof) / np.sqrt(n)
    return d.mean(), d.mean() - half, d.mean() + half


def _unpaired(ls, ce):
    ci = scipy_stats.ttest_ind(ls, ce, equal_var=False).confidence_interval(0.95)
    return np.mean(ls) - np.mean(ce), ci.low, ci.high


WRONG = {
    "first_epoch_at_or_below": {
        "returns the position instead of the epoch": lambda e, v, t: _first(e, v, t, position=True),
        "uses < instead of <=": lambda e, v, t: _first(e, v, t, strict=True),
        "asks for the epoch from which it stays below": _stays_below,
        "returns the last epoch when never reached": lambda e, v, t: _first(e, v, t, never=float(e[-1])),
    },
    "paired_interval": {
        "an unpaired (Welch) interval": _unpaired,
        "the normal quantile instead of Student's t": lambda ls, ce: _interval(ls, ce, quantile=1.96),
        "the population standard deviation": lambda ls, ce: _interval(ls, ce, ddof=0),
        "differences the wrong way round": lambda ls, ce: _interval(ce, ls),
    },
}


@pytest.mark.parametrize("name", EXERCISES)
def test_the_chapter_solution_is_right(solutions, name):
    verdict = getattr(nc.exercises.ch3, name)(solutions[name])
    assert verdict.status == "right", str(verdict)


@pytest.mark.parametrize("name, mistake", [(n, m) for n in EXERCISES for m in WRONG[n]])
def test_a_plausible_mistake_is_wrong(name, mistake):
    verdict = getattr(nc.exercises.ch3, name)(WRONG[name][mistake])
    assert verdict.status == "wrong", mistake


@pytest.mark.parametrize("name", EXERCISES)
def test_the_skeleton_is_not_attempted(name):
    assert getattr(nc.exercises.ch3, name)(_skeleton).status == "not attempted"


def _expected_values():
    """Every value the checkers compare with, on their own random inputs."""
    from nclab.exercises import ch3
    values = [nc.tables.first_epoch_at_or_below(ch3._as_run(e, v), "value", t)
              for e, v, t in ch3._series_cases(31)]
    for ls, ce in ch3._paired_cases(32):
        p = nc.stats.paired(ls, ce)
        values += [p.mean, p.low, p.high]
    return np.array(values)


def test_no_verdict_contains_an_expected_value(solutions):
    expected = _expected_values()
    shown = {f"{v:.2g}" for v in expected} | {f"{v:.3f}" for v in expected} | {f"{v:g}" for v in expected}
    for name in EXERCISES:
        for answer in (solutions[name], _skeleton, *WRONG[name].values()):
            message = getattr(nc.exercises.ch3, name)(answer).message     # the title names the exercise
            numbers = set(re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", message))
            numbers -= {"1", "2", "3", "4", "5", "6"}                       # case numbers ("random test input 2")
            assert not numbers & shown, message
