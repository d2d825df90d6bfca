"""Exercises of chapter 8 (the δ playground): what Theorem 1 predicts for calibration.

- :func:`training_ece`: the training ECE of the UFM minimizer, (K - 1)β/K;
- :func:`smoothing_for_confidence`: the δ whose minimizer has a given confidence p*(β);
- :func:`matching_temperature`: the temperature that gives the cross-entropy minimizer the
  confidence of a label-smoothing minimizer.

Each function takes the student's function and returns a :class:`nclab.exercises.Verdict`.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from .. import calibration, ufm
from ._core import Verdict, check_function

__all__ = ["training_ece", "smoothing_for_confidence", "matching_temperature"]

_SEED = 8


def _problem(rng: np.random.Generator, delta: float | None = None) -> ufm.UFM:
    """A random UFM with collapsed minimizer (β < 0.9) and a visible penalty term."""
    while True:
        K = int(rng.integers(3, 11))
        problem = ufm.UFM(num_classes=K, per_class=int(rng.integers(2, 20)), dim=K,
                          lambda_W=float(10 ** rng.uniform(-3, -1.5)), lambda_H=float(10 ** rng.uniform(-4, -2)),
                          lambda_b=1e-2, delta=float(rng.uniform(0.0, 0.4)) if delta is None else delta)
        if 0.02 < problem.beta - problem.delta and problem.beta < 0.9:
            return problem


def training_ece(student) -> Verdict:
    """Exercise 8.1: ``training_ece(problem)``, the expected calibration error on the training set
    of the UFM minimizer of ``problem``, from Theorem 1 alone.

    The reference evaluates :func:`nclab.calibration.ece` on the logits of
    :meth:`nclab.ufm.UFM.closed_form`.
    """
    problems = [_problem(np.random.default_rng(_SEED + i)) for i in range(5)]

    def reference(problem):
        best = problem.closed_form()
        return calibration.ece((best.W @ best.H).T + best.b, problem.labels())

    return check_function(
        "Exercise 8.1 (the training ECE of the minimizer)", student, reference,
        [(problem,) for problem in problems],
        "every training sample is classified correctly, all with the same confidence; which β "
        "sets that confidence, the one with or without the penalties?", rtol=1e-8, atol=1e-12)


def smoothing_for_confidence(student) -> Verdict:
    """Exercise 8.2: ``smoothing_for_confidence(problem, confidence)``, the δ at which the minimizer
    of ``problem`` (its K, n, λ_W, λ_H; its own δ is ignored) has training confidence p*(β) equal
    to ``confidence``.

    The reference solves ``theorem1_curves(...)["confidence"] == confidence`` for δ numerically.
    """
    rng = np.random.default_rng(_SEED + 10)
    cases = []
    while len(cases) < 5:
        problem = _problem(rng, delta=0.0)
        K, c = problem.num_classes, problem.beta / problem.num_classes
        target = float(rng.uniform(0.2, 0.8))          # the δ to recover, chosen to be reachable
        confidence = float(ufm.theorem1_curves(K, problem.per_class, problem.lambda_W, problem.lambda_H,
                                               target)["confidence"])
        if target + K * c < 0.95:
            cases.append((problem, confidence))

    def reference(problem, confidence):
        def gap(delta):
            return float(ufm.theorem1_curves(problem.num_classes, problem.per_class, problem.lambda_W,
                                             problem.lambda_H, delta)["confidence"]) - confidence
        return brentq(gap, 0.0, 1.0 - problem.beta - 1e-9, xtol=1e-14)

    return check_function(
        "Exercise 8.2 (the δ for a given confidence)", student, reference, cases,
        "solve p*(β) = confidence for β first, then remember that β is not δ: the penalties add "
        "their own term, which problem.beta contains when problem.delta is 0.", rtol=1e-7, atol=1e-10)


def matching_temperature(student) -> Verdict:
    """Exercise 8.3: ``matching_temperature(problem, delta)``, the temperature T such that the logits
    of the cross-entropy minimizer of ``problem`` (δ = 0) divided by T have the training confidence
    of the minimizer with label smoothing ``delta`` and the same penalties.

    The reference divides the logits of :meth:`nclab.ufm.UFM.closed_form` by T and solves for the
    confidence numerically.
    """
    rng = np.random.default_rng(_SEED + 20)
    cases = [(_problem(rng, delta=0.0), float(rng.choice([0.02, 0.05, 0.1, 0.3]))) for _ in range(5)]

    def reference(problem, delta):
        best = problem.closed_form()
        z = best.W @ best.H[:, 0] + best.b       # a class-0 sample; every sample is alike
        goal = problem.replace(delta=delta).theorem1()["confidence"]
        gap = lambda T: float((z / T).softmax(dim=0)[0]) - goal
        return brentq(gap, 1e-3, 1e3, xtol=1e-14, rtol=1e-14)

    return check_function(
        "Exercise 8.3 (the temperature that matches label smoothing)", student, reference, cases,
        "dividing the logits by T divides the margin by T, and at the minimizer the confidence is a "
        "function of the margin alone; which margin should the scaled logits have?",
        rtol=1e-7, atol=1e-10)
