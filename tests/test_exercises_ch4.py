"""Chapter 4's exercises: the checkers accept the chapter's solutions and reject typical mistakes."""

import re

import pytest
import torch

import nclab as nc
from exercise_tools import run_solutions

ch4 = nc.exercises.ch4


@pytest.fixture(scope="module")
def solutions():
    return run_solutions(4)


def skeleton(*args):
    raise NotImplementedError


def _class_means(features, labels, num_classes):
    h, y = torch.as_tensor(features, dtype=torch.float64), torch.as_tensor(labels)
    return torch.stack([h[y == k].mean(0) for k in range(num_classes)])


def centred_on_sample_mean(features, labels, num_classes):
    # μ_G taken as the mean of all samples: wrong when the classes differ in size
    return _class_means(features, labels, num_classes) - torch.as_tensor(features, dtype=torch.float64).mean(0)


def not_centred(features, labels, num_classes):
    return _class_means(features, labels, num_classes)


def _nc2(W, means, centre=True, root=True):
    W, mu = torch.as_tensor(W, dtype=torch.float64), torch.as_tensor(means, dtype=torch.float64)
    K = mu.shape[0]
    A = W @ ((mu - mu.mean(0)) if centre else mu).T
    target = (torch.eye(K, dtype=torch.float64) - 1.0 / K) / ((K - 1) ** 0.5 if root else K - 1)
    return float(torch.linalg.norm(A / torch.linalg.norm(A) - target))


def _nc3(W, means, centre=True, square=False, rows=False):
    W, mu = torch.as_tensor(W, dtype=torch.float64), torch.as_tensor(means, dtype=torch.float64)
    M = mu - mu.mean(0) if centre else mu
    if rows:
        value = torch.linalg.norm(W / W.norm(dim=1, keepdim=True) - M / M.norm(dim=1, keepdim=True))
    else:
        value = torch.linalg.norm(W / torch.linalg.norm(W) - M / torch.linalg.norm(M))
    return float(value ** 2 if square else value)


def nc2_w_instead(W, means):
    # NC2-W: the ETF distance of W alone, not of the classifier-feature product
    return float(nc.metrics.etf_distance(torch.as_tensor(W, dtype=torch.float64)))


CASES = {
    "centred_means": [centred_on_sample_mean, not_centred],
    "nc2_classifier_features": [lambda W, m: _nc2(W, m, centre=False), lambda W, m: _nc2(W, m, root=False),
                                nc2_w_instead],
    "nc3": [lambda W, m: _nc3(W, m, centre=False), lambda W, m: _nc3(W, m, square=True),
            lambda W, m: _nc3(W, m, rows=True)],
}


def _numbers(text):
    return re.findall(r"\d+\.\d{3,}", text)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_chapter_solution_is_right(name, solutions):
    verdict = getattr(ch4, name)(solutions[name])
    assert verdict.status == "right", str(verdict)


@pytest.mark.parametrize("name", sorted(CASES))
def test_typical_mistakes_are_wrong_and_the_answer_is_not_shown(name):
    for wrong in CASES[name]:
        verdict = getattr(ch4, name)(wrong)
        assert verdict.status == "wrong", str(verdict)
        assert not _numbers(str(verdict)), str(verdict)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_skeleton_is_not_attempted(name):
    assert getattr(ch4, name)(skeleton).status == "not attempted"


def test_every_exercise_of_the_module_is_tested():
    assert set(ch4.__all__) == set(CASES)
