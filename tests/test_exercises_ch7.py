"""Chapter 7's exercises: each checker accepts the chapter's solution and rejects typical mistakes."""

from __future__ import annotations

import re

import pytest
import torch

import nclab as nc
from exercise_tools import run_solutions

NAMES = ["logit_hessian", "logit_eigenvalues", "slowest_nc1_rate"]


@pytest.fixture(scope="module")
def solutions():
    return run_solutions(7)


def not_yet(*args):
    raise NotImplementedError


def _p_star(problem, beta):
    K = problem.num_classes
    return 1 - (K - 1) * beta / K


def eigenvalues_with(problem, beta, top):
    K = problem.num_classes
    p = _p_star(problem, beta)
    q = (1 - p) / (K - 1)
    return torch.tensor([q] * (K - 2) + [top(K, p, q)], dtype=torch.float64)


MISTAKES = {
    "logit_hessian": [
        lambda z: torch.diag(torch.softmax(z, 0)),                                  # forgot -p p^T
        lambda z: torch.outer(torch.softmax(z, 0), torch.softmax(z, 0)) - torch.diag(torch.softmax(z, 0)),
    ],
    "logit_eigenvalues": [
        lambda pr: eigenvalues_with(pr, pr.delta, lambda K, p, q: K * p * q),      # β taken as δ
        lambda pr: eigenvalues_with(pr, pr.beta, lambda K, p, q: p * (1 - p)),     # the diagonal entry
    ],
}


@pytest.mark.parametrize("name", NAMES)
def test_the_chapter_solution_is_right(solutions, name):
    verdict = getattr(nc.exercises.ch7, name)(solutions[name])
    assert verdict.status == "right", verdict


@pytest.mark.parametrize("name", NAMES)
def test_the_skeleton_is_not_attempted(name):
    assert getattr(nc.exercises.ch7, name)(not_yet).status == "not attempted"


@pytest.mark.parametrize("name", list(MISTAKES))
def test_typical_mistakes_are_wrong(name):
    for mistake in MISTAKES[name]:
        verdict = getattr(nc.exercises.ch7, name)(mistake)
        assert verdict.status == "wrong", verdict


def test_the_nc1_rate_without_the_penalty_or_with_1_over_n_is_wrong(solutions):
    rate = solutions["slowest_nc1_rate"]
    without_penalty = lambda pr: rate(pr) - pr.lambda_H
    per_class = lambda pr: pr.lambda_H + (rate(pr) - pr.lambda_H) * pr.num_classes
    for mistake in (without_penalty, per_class):
        assert nc.exercises.ch7.slowest_nc1_rate(mistake).status == "wrong"


def test_no_verdict_reveals_a_number(solutions):
    for name in NAMES:
        for answer in [solutions[name], not_yet, *MISTAKES.get(name, [])]:
            text = (getattr(nc.exercises.ch7, name)(answer)).message
            assert not re.search(r"\d\.\d", text), text
