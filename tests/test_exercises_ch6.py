"""Chapter 6's exercises: the checkers accept the chapter's solutions and reject typical mistakes."""

import numpy as np
import pytest
import torch

import nclab as nc
from exercise_tools import run_solutions

CHECKERS = ("beta", "theorem1_norms", "theorem1_minimizer")


@pytest.fixture(scope="module")
def solutions():
    return run_solutions(6)


def skeleton(*args):
    raise NotImplementedError


def beta_with_N(num_classes, per_class, lambda_W, lambda_H, delta):  # N = nK under the root
    return delta + num_classes * np.sqrt(num_classes * per_class * lambda_W * lambda_H)


def beta_without_K(num_classes, per_class, lambda_W, lambda_H, delta):  # the factor K forgotten
    return delta + np.sqrt(per_class * lambda_W * lambda_H)


def _margin(K, n, lam_W, lam_H, delta):
    beta = delta + K * np.sqrt(n * lam_W * lam_H)
    return np.log(K / beta - K + 1) if beta < 1 else 0.0


def squared_norms(K, n, lam_W, lam_H, delta):  # Theorem 1's squares, not the norms
    ratio, m = np.sqrt(n * lam_H / lam_W), _margin(K, n, lam_W, lam_H, delta)
    return (K - 1) / K * ratio * m, (K - 1) / K / ratio * m


def no_trivial_regime(K, n, lam_W, lam_H, delta):  # the formula applied for β ≥ 1 too
    beta = delta + K * np.sqrt(n * lam_W * lam_H)
    ratio, m = np.sqrt(n * lam_H / lam_W), np.log(K / beta - K + 1)
    with np.errstate(invalid="ignore"):
        return np.sqrt((K - 1) / K * ratio * m), np.sqrt((K - 1) / K / ratio * m)


def _etf(K, d):
    U = torch.linalg.eigh(torch.eye(K, dtype=torch.float64) - 1.0 / K).eigenvectors[:, 1:]
    J = torch.zeros(K, d, dtype=torch.float64)
    J[:, :K - 1] = U
    return J


def equal_scales(K, n, d, lam_W, lam_H, delta):  # W = M: the factor √(nλ_H/λ_W) forgotten
    J = np.sqrt(_margin(K, n, lam_W, lam_H, delta)) * _etf(K, d)
    return J, J


def not_centred(K, n, d, lam_W, lam_H, delta):  # orthogonal class means instead of a simplex
    ratio, m = np.sqrt(n * lam_H / lam_W), _margin(K, n, lam_W, lam_H, delta)
    J = torch.zeros(K, d, dtype=torch.float64)
    J[:, :K - 1] = torch.eye(K, K - 1, dtype=torch.float64)
    return np.sqrt(ratio * m) * J, np.sqrt(m / ratio) * J


WRONG = {"beta": [beta_with_N, beta_without_K],
         "theorem1_norms": [squared_norms, no_trivial_regime],
         "theorem1_minimizer": [equal_scales, not_centred]}


@pytest.mark.parametrize("name", CHECKERS)
def test_the_chapter_solution_is_accepted(solutions, name):
    verdict = getattr(nc.exercises.ch6, name)(solutions[name])
    assert verdict.status == "right", str(verdict)


@pytest.mark.parametrize("name, wrong", [(n, w) for n in CHECKERS for w in WRONG[n]],
                         ids=lambda x: getattr(x, "__name__", x))
def test_a_plausible_mistake_is_rejected_without_the_answer(name, wrong):
    verdict = getattr(nc.exercises.ch6, name)(wrong)
    assert verdict.status == "wrong", str(verdict)
    assert "Hint" in verdict.message
    paper = nc.ufm.theorem1_curves(10, 5000, 1e-3, 1e-6, [0.0, 0.05])
    for key in ("beta", "w_norm", "h_norm", "margin"):
        for value in paper[key]:
            assert f"{value:.3f}" not in str(verdict)


@pytest.mark.parametrize("name", CHECKERS)
def test_the_skeleton_is_not_attempted(name):
    assert getattr(nc.exercises.ch6, name)(skeleton).status == "not attempted"


def test_a_minimizer_of_the_wrong_shape_is_told_its_shape():
    verdict = nc.exercises.ch6.theorem1_minimizer(lambda K, n, d, *rest: (np.zeros((d, K)), np.zeros((d, K))))
    assert verdict.status == "wrong" and "shape" in verdict.message
    assert nc.exercises.ch6.theorem1_minimizer(lambda *args: 3.0).status == "wrong"
