"""Chapter 2's exercises: the checkers accept the chapter's solutions and reject typical mistakes."""

import re

import numpy as np
import pytest
import torch

import nclab as nc
from exercise_tools import run_solutions

EXERCISES = ("between_class_covariance", "nc1", "etf_distance")


@pytest.fixture(scope="module")
def solutions():
    return run_solutions(2)


def _means(features, labels, K):
    return torch.stack([features[labels == k].mean(0) for k in range(K)])


def _between(features, labels, K, divide_by=None, centre="class means"):
    means = _means(features, labels, K)
    centre = means.mean(0) if centre == "class means" else features.mean(0)
    centred = means - centre
    return centred.T @ centred / (divide_by if divide_by is not None else K)


def _within(features, labels, K):
    deviations = features - _means(features, labels, K)[labels]
    return deviations.T @ deviations / len(features)


def _skeleton(*args):
    raise NotImplementedError


WRONG = {
    "between_class_covariance": {
        "divides by N instead of K": lambda f, y, K: _between(f, y, K, divide_by=len(f)),
        "centres on the mean of all features": lambda f, y, K: _between(f, y, K, centre="all"),
    },
    "nc1": {
        "forgets the 1/K": lambda f, y, K: torch.trace(_within(f, y, K) @ torch.linalg.pinv(_between(f, y, K))),
        "divides Σ_B by N instead of K": lambda f, y, K: torch.trace(
            _within(f, y, K) @ torch.linalg.pinv(_between(f, y, K, divide_by=len(f)))) / K,
        "uses Σ_B instead of its pseudo-inverse": lambda f, y, K: torch.trace(_within(f, y, K) @ _between(f, y, K)) / K,
        "inverts the singular Σ_B with inv": lambda f, y, K: torch.trace(
            _within(f, y, K) @ torch.linalg.inv(_between(f, y, K))) / K,
    },
    "etf_distance": {
        "forgets the √(K−1)": lambda A: torch.linalg.norm(
            A @ A.T / torch.linalg.norm(A @ A.T) - (torch.eye(A.shape[0], dtype=A.dtype) - 1 / A.shape[0])),
        "compares with the identity": lambda A: torch.linalg.norm(
            A @ A.T / torch.linalg.norm(A @ A.T) - torch.eye(A.shape[0], dtype=A.dtype) / A.shape[0] ** 0.5),
    },
}


@pytest.mark.parametrize("name", EXERCISES)
def test_the_chapter_solution_is_right(solutions, name):
    verdict = getattr(nc.exercises.ch2, name)(solutions[name])
    assert verdict.status == "right", str(verdict)


@pytest.mark.parametrize("name, mistake", [(n, m) for n in EXERCISES for m in WRONG[n]])
def test_a_plausible_mistake_is_wrong_without_revealing_the_answer(name, mistake):
    verdict = getattr(nc.exercises.ch2, name)(WRONG[name][mistake])
    assert verdict.status == "wrong", mistake
    # No expected number in the text: every number in it is a case index or a line number.
    assert not any(len(n) > 2 for n in re.findall(r"\d[\d.]*", verdict.message)), str(verdict)


@pytest.mark.parametrize("name", EXERCISES)
def test_the_skeleton_is_not_attempted(name):
    assert getattr(nc.exercises.ch2, name)(_skeleton).status == "not attempted"


def _expected_values():
    """Every value the checkers compare with, on their own random inputs."""
    from nclab.exercises import ch2
    values = []
    for f, y, K in ch2._feature_cases(21) + ch2._feature_cases(22):
        stats = nc.metrics.FeatureStats(K, f.shape[1]).update(f, y)
        values += [nc.metrics.nc1(stats), *stats.between_cov.flatten().tolist()]
    values += [nc.metrics.etf_distance(A) for (A,) in ch2._etf_cases(23)]
    return np.array(values)


def test_no_verdict_contains_an_expected_value(solutions):
    shown = [f"{v:.2g}" for v in _expected_values() if abs(v) > 1e-3] + \
            [f"{v:.3f}" for v in _expected_values() if abs(v) > 1e-3]
    for name in EXERCISES:
        for answer in (solutions[name], _skeleton, *WRONG[name].values()):
            text = getattr(nc.exercises.ch2, name)(answer).message   # the title names the exercise
            numbers = set(re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text))
            assert not numbers & {s for s in shown if "." in s}, text
