"""Chapter 1's exercises: the checkers accept the chapter's solutions and reject typical mistakes."""

import numpy as np
import pytest
import torch

import nclab as nc
from exercise_tools import run_solutions

CHECKERS = ("smoothed_targets", "label_smoothing_loss", "optimal_margin")


@pytest.fixture(scope="module")
def solutions():
    return run_solutions(1)


def skeleton(*args):
    raise NotImplementedError


def delta_not_over_K(labels, num_classes, delta):  # the uniform part δ given to every class
    onehot = torch.nn.functional.one_hot(torch.as_tensor(labels), num_classes).double()
    return (1 - delta) * onehot + delta


def summed_loss(logits, labels, delta):  # summed over the batch instead of averaged
    K = logits.shape[1]
    q = (1 - delta) * torch.nn.functional.one_hot(labels, K).double() + delta / K
    return -(q * logits.log_softmax(1)).sum()


def target_with_delta(logits, labels, delta):  # δ instead of δ/K in the target
    q = (1 - delta) * torch.nn.functional.one_hot(labels, logits.shape[1]).double() + delta
    return -(q * logits.log_softmax(1)).sum(1).mean()


def log_of_softmax(logits, labels, delta):  # right formula, but log(softmax) underflows to log 0
    K = logits.shape[1]
    q = (1 - delta) * torch.nn.functional.one_hot(labels, K).double() + delta / K
    return -(q * logits.softmax(1).log()).sum(1).mean()


def small_delta_margin(num_classes, delta):  # the small-δ approximation log(K/δ)
    return float(np.log(num_classes / delta))


WRONG = {"smoothed_targets": [delta_not_over_K],
         "label_smoothing_loss": [summed_loss, target_with_delta, log_of_softmax],
         "optimal_margin": [small_delta_margin]}


@pytest.mark.parametrize("name", CHECKERS)
def test_the_chapter_solution_is_accepted(solutions, name):
    verdict = getattr(nc.exercises.ch1, name)(solutions[name])
    assert verdict.status == "right", str(verdict)


@pytest.mark.parametrize("name, wrong", [(n, w) for n in CHECKERS for w in WRONG[n]],
                         ids=lambda x: getattr(x, "__name__", x))
def test_a_plausible_mistake_is_rejected_without_the_answer(name, wrong):
    verdict = getattr(nc.exercises.ch1, name)(wrong)
    assert verdict.status == "wrong", str(verdict)
    assert "Hint" in verdict.message
    # no verdict shows a number of the expected answer
    for K, delta in ((4, 0.2), (10, 0.05), (2, 0.3)):
        assert f"{nc.losses.optimal_margin(K, delta):.3f}" not in str(verdict)
        assert f"{1 - delta + delta / K:.3f}" not in str(verdict)


@pytest.mark.parametrize("name", CHECKERS)
def test_the_skeleton_is_not_attempted(name):
    assert getattr(nc.exercises.ch1, name)(skeleton).status == "not attempted"


def test_the_right_verdicts_show_no_numbers(solutions):
    for name in CHECKERS:
        text = str(getattr(nc.exercises.ch1, name)(solutions[name]))
        assert not any(ch.isdigit() for ch in text.replace("1.1", "").replace("1.2", "").replace("1.3", ""))
