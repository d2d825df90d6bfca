"""Exercises of chapter 7 (conditioning): the curvature of the loss in the logits, at the minimizer.

- :func:`logit_hessian`: the Hessian of the label-smoothing loss of one sample in its logits,
  diag(p) - p p^T, by hand;
- :func:`logit_eigenvalues`: its eigenvalues on the directions orthogonal to 1 at Theorem 1's
  minimizer, p̄ = (1 - p*(β))/(K - 1) (K - 2 times) and K p*(β) p̄ (once);
- :func:`slowest_nc1_rate` (challenge): the smallest within-class curvature inside span(W),
  the rate of the slowest mode that NC1 sees.

Each function takes the student's function and returns a :class:`nclab.exercises.Verdict`.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import hessian, losses, ufm
from ._core import Verdict, check_function

__all__ = ["logit_hessian", "logit_eigenvalues", "slowest_nc1_rate"]

_SEED = 7


def _problems(rng: np.random.Generator, count: int, max_classes: int = 8) -> list[ufm.UFM]:
    """Random UFMs whose β stays below 1 (a collapsed minimizer), small enough to be quick."""
    problems = []
    while len(problems) < count:
        K = int(rng.integers(3, max_classes + 1))
        problem = ufm.UFM(num_classes=K, per_class=int(rng.integers(2, 6)), dim=K + int(rng.integers(0, 3)),
                          lambda_W=float(10 ** rng.uniform(-3.5, -2)), lambda_H=float(10 ** rng.uniform(-3.5, -2)),
                          lambda_b=float(10 ** rng.uniform(-3, -2)), delta=float(rng.choice([0.0, 0.05, 0.2, 0.45])))
        if problem.beta < 0.9:
            problems.append(problem)
    return problems


def logit_hessian(student) -> Verdict:
    """Exercise 7.1: ``logit_hessian(logits)``, the Hessian of the LS loss of one sample in its logits.

    The student's function takes a float64 tensor of K logits and returns the K x K matrix
    diag(p) - p p^T, p = softmax(logits). The reference is the autograd Hessian of
    :func:`nclab.losses.label_smoothing_loss` (for one label and one δ: it depends on neither).
    """
    rng = np.random.default_rng(_SEED)
    cases = [(torch.tensor(rng.normal(0.0, 2.0, int(rng.integers(2, 9))), dtype=torch.float64),)
             for _ in range(5)]

    def reference(z):
        # any label and any δ give the same Hessian: take the smallest logit's class and δ = 0.3
        label = torch.tensor([int(z.argmin())])
        return torch.autograd.functional.hessian(
            lambda x: losses.label_smoothing_loss(x[None], label, 0.3), z.detach().clone())

    return check_function(
        "Exercise 7.1 (the Hessian in the logits)", student, reference, cases,
        "differentiate the gradient p - q of the loss with respect to the logits; the target q does "
        "not depend on them, and each p_j depends on every logit through the normalization.",
        rtol=1e-6, atol=1e-10)


def _minimizer_softmax(problem: ufm.UFM) -> torch.Tensor:
    """The softmax output of Theorem 1's minimizer for the first sample (class 0)."""
    best = problem.closed_form()
    return (best.W @ best.H[:, 0] + best.b).softmax(dim=0)


def logit_eigenvalues(student) -> Verdict:
    """Exercise 7.2: ``logit_eigenvalues(problem)``, the K - 1 eigenvalues of diag(p) - p p^T on the
    directions orthogonal to 1 at the minimizer of the UFM ``problem``, in increasing order.

    The reference forms the matrix from the softmax output of :meth:`nclab.ufm.UFM.closed_form`
    and diagonalizes it in the basis :func:`nclab.ufm.simplex_basis` of those directions.
    """
    problems = _problems(np.random.default_rng(_SEED + 1), 5)

    def reference(problem):
        p = _minimizer_softmax(problem)
        Q = ufm.simplex_basis(problem.num_classes)
        return torch.linalg.eigvalsh(Q.T @ (torch.diag(p) - torch.outer(p, p)) @ Q)

    return check_function(
        "Exercise 7.2 (the logit-Hessian eigenvalues at the minimizer)", student, reference,
        [(problem,) for problem in problems],
        "at the minimizer the true class has probability p*(β), with β from problem.beta (the "
        "penalties count, not only δ); work out S x for a direction among the wrong classes and "
        "for the direction that separates the true class from the others.",
        rtol=1e-8, atol=1e-12)


def slowest_nc1_rate(student) -> Verdict:
    """Exercise 7.3 (challenge): ``slowest_nc1_rate(problem)``, the smallest eigenvalue of the
    within-class curvature λ_H I + (1/N) W^T S_k W on span(W) at Theorem 1's minimizer.

    The reference is the smallest "within/span" eigenvalue of :func:`nclab.hessian.reduced_spectrum`
    (also ``nclab.hessian.condition_numbers(problem).within_span_min``).
    """
    problems = _problems(np.random.default_rng(_SEED + 2), 4, max_classes=5)
    return check_function(
        "Exercise 7.3 (the slowest NC1 rate)", student,
        lambda problem: hessian.reduced_spectrum(problem).select("within/span").eigenvalues.min(),
        [(problem,) for problem in problems],
        "use W from problem.closed_form(), S_k from the softmax output of one class-k sample, "
        "restrict to the K - 1 directions of span(W), and check the weight of the loss term: the "
        "loss is averaged over all N = nK samples, and the feature penalty is there too.",
        rtol=1e-7, atol=1e-12)
