"""Chapter 5's exercises: the checkers accept the chapter's solutions and reject typical mistakes."""

import re

import numpy as np
import pytest
import torch

import nclab as nc
from exercise_tools import run_solutions

ch5 = nc.exercises.ch5


@pytest.fixture(scope="module")
def solutions():
    return run_solutions(5)


def skeleton(*args):
    raise NotImplementedError


def _ece(logits, labels, n_bins, true_class=False, equal_weights=False):
    z, y = torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(labels)
    p = torch.softmax(z, 1)
    confidence, predicted = p.max(1)
    if true_class:                      # the probability of the label, not of the prediction
        confidence = p[torch.arange(len(y)), y]
    correct = (predicted == y).double()
    bin_of = (torch.ceil(confidence * n_bins).long() - 1).clamp(0, n_bins - 1)
    gaps, weights = [], []
    for b in range(n_bins):
        inside = bin_of == b
        if inside.any():
            gaps.append(float((correct[inside].mean() - confidence[inside].mean()).abs()))
            weights.append(float(inside.double().mean()))
    if equal_weights:                   # every occupied bin counts the same
        return float(np.mean(gaps))
    return float(np.dot(weights, gaps))


def _nll(logits, labels, temperature, multiply=False, total=False):
    x = torch.as_tensor(logits, dtype=torch.float64)
    x = x * temperature if multiply else x / temperature
    losses = -torch.log_softmax(x, 1)[torch.arange(len(x)), torch.as_tensor(labels)]
    return float(losses.sum() if total else losses.mean())


def _fit(logits, labels, multiply=False, index=False, probabilities=False):
    grid = nc.calibration.ECE_TEMPERATURE_GRID
    if probabilities:                   # the NLL of softmax probabilities taken as logits
        logits = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 1)
    losses = [_nll(logits, labels, T, multiply=multiply) for T in grid]
    best = int(np.argmin(losses))
    return float(best if index else grid[best])


CASES = {
    "ece": [lambda z, y, b: _ece(z, y, b, true_class=True), lambda z, y, b: _ece(z, y, b, equal_weights=True)],
    "nll": [lambda z, y, t: _nll(z, y, t, multiply=True), lambda z, y, t: _nll(z, y, t, total=True)],
    "fit_temperature": [lambda z, y: _fit(z, y, multiply=True), lambda z, y: _fit(z, y, index=True),
                        lambda z, y: _fit(z, y, probabilities=True)],
}


def _numbers(text):
    return re.findall(r"\d+\.\d{3,}", text)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_chapter_solution_is_right(name, solutions):
    verdict = getattr(ch5, name)(solutions[name])
    assert verdict.status == "right", str(verdict)


@pytest.mark.parametrize("name", sorted(CASES))
def test_typical_mistakes_are_wrong_and_the_answer_is_not_shown(name):
    for wrong in CASES[name]:
        verdict = getattr(ch5, name)(wrong)
        assert verdict.status == "wrong", str(verdict)
        assert not _numbers(str(verdict)), str(verdict)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_skeleton_is_not_attempted(name):
    assert getattr(ch5, name)(skeleton).status == "not attempted"


def test_every_exercise_of_the_module_is_tested():
    assert set(ch5.__all__) == set(CASES)
