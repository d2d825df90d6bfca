"""Chapter 8's exercises: each checker accepts the chapter's solution and rejects typical mistakes."""

from __future__ import annotations

import math
import re

import pytest

import nclab as nc
from exercise_tools import run_solutions

NAMES = ["training_ece", "smoothing_for_confidence", "matching_temperature"]


@pytest.fixture(scope="module")
def solutions():
    return run_solutions(8)


def not_yet(*args):
    raise NotImplementedError


def margin(K, beta):
    return math.log(K / beta - K + 1)


MISTAKES = {
    "training_ece": [
        lambda pr: (pr.num_classes - 1) * pr.delta / pr.num_classes,               # the penalties forgotten
        lambda pr: 1 - (pr.num_classes - 1) * pr.beta / pr.num_classes,            # the confidence, not the error
    ],
    "smoothing_for_confidence": [
        lambda pr, a: pr.num_classes * (1 - a) / (pr.num_classes - 1),             # β taken as δ
        lambda pr, a: (1 - a) - pr.beta,                                           # the factor K/(K-1) forgotten
    ],
    "matching_temperature": [
        lambda pr, d: margin(pr.num_classes, pr.replace(delta=d).beta) / margin(pr.num_classes, pr.beta),  # inverted
        lambda pr, d: pr.replace(delta=d).beta / pr.beta,                           # ratio of the β's
    ],
}


@pytest.mark.parametrize("name", NAMES)
def test_the_chapter_solution_is_right(solutions, name):
    verdict = getattr(nc.exercises.ch8, name)(solutions[name])
    assert verdict.status == "right", verdict


@pytest.mark.parametrize("name", NAMES)
def test_the_skeleton_is_not_attempted(name):
    assert getattr(nc.exercises.ch8, name)(not_yet).status == "not attempted"


@pytest.mark.parametrize("name", NAMES)
def test_typical_mistakes_are_wrong(name):
    for mistake in MISTAKES[name]:
        verdict = getattr(nc.exercises.ch8, name)(mistake)
        assert verdict.status == "wrong", verdict


def test_no_verdict_reveals_a_number(solutions):
    for name in NAMES:
        for answer in [solutions[name], not_yet, *MISTAKES[name]]:
            text = (getattr(nc.exercises.ch8, name)(answer)).message
            assert not re.search(r"\d\.\d", text), text
