"""The exercises of chapter 6 (the unconstrained feature model), checked against :mod:`nclab.ufm`.

Each function takes the student's function and returns a :class:`~nclab.exercises.Verdict`:

- :func:`beta` -- β = δ + K √(n λ_W λ_H), the effective smoothing of Theorem 1;
- :func:`theorem1_norms` -- Theorem 1's per-class norms (‖w_k‖, ‖μ_k‖), zero when β ≥ 1;
- :func:`theorem1_minimizer` -- a global minimizer (W, M) itself, M the matrix with rows μ_kᵀ.

The random inputs are drawn with fixed seeds, so a verdict does not change between runs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .. import ufm
from ._core import Verdict, _attempt, as_array, check_function

__all__ = ["beta", "theorem1_norms", "theorem1_minimizer"]


def _problems() -> list[tuple[int, int, float, float, float]]:
    """(K, n, λ_W, λ_H, δ): the paper's setting, random ones with β < 1, and two with β ≥ 1."""
    rng = np.random.default_rng(601)
    cases = [(10, 5000, 1e-3, 1e-6, 0.0), (10, 5000, 1e-3, 1e-6, 0.05)]
    while len(cases) < 7:
        K, n = int(rng.integers(2, 16)), int(rng.integers(1, 2000))
        lam_W, lam_H = 10 ** rng.uniform(-5, -2), 10 ** rng.uniform(-7, -3)
        delta = 0.0 if rng.random() < 0.2 else float(rng.uniform(0.01, 0.5))
        if ufm.theorem1_curves(K, n, lam_W, lam_H, delta)["beta"] < 0.9:
            cases.append((K, n, lam_W, lam_H, delta))
    cases += [(4, 5, 5e-2, 5e-2, 0.6), (3, 20, 1e-2, 1e-2, 0.9)]  # β ≥ 1: the minimizer is zero
    return cases


def _reference_beta(num_classes, per_class, lambda_W, lambda_H, delta):
    return ufm.theorem1_curves(num_classes, per_class, lambda_W, lambda_H, delta)["beta"]


def beta(student: Callable) -> Verdict:
    """Check ``student(num_classes, per_class, lambda_W, lambda_H, delta)``: Theorem 1's β (chapter 6).

    The reference is the "beta" of :func:`nclab.ufm.theorem1_curves`.
    """
    return check_function(
        "Exercise 6.1 (β)", student, _reference_beta, _problems(),
        "β adds to δ a term that grows with the number of classes and with both penalties; n is "
        "the number of samples per class, not the size N = nK of the training set.", rtol=1e-9)


def _reference_norms(num_classes, per_class, lambda_W, lambda_H, delta):
    curves = ufm.theorem1_curves(num_classes, per_class, lambda_W, lambda_H, delta)
    return np.array([curves["w_norm"], curves["h_norm"]])


def theorem1_norms(student: Callable) -> Verdict:
    """Check ``student(num_classes, per_class, lambda_W, lambda_H, delta)``: (‖w_k‖, ‖μ_k‖) (chapter 6).

    The answer is a pair (a tuple, array or tensor of two numbers): the norm of one classifier row
    and of one class mean at the global minimizer of the UFM, both 0 when β ≥ 1. The reference is
    "w_norm" and "h_norm" of :func:`nclab.ufm.theorem1_curves`.
    """
    return check_function(
        "Exercise 6.2 (Theorem 1's norms)", student, _reference_norms, _problems(),
        "Theorem 1 gives the squared norms, and the two differ by the factor √(nλ_H/λ_W) and its "
        "inverse; some test problems have β ≥ 1, where the margin log(K/β − K + 1) is not positive "
        "and the minimizer is W = 0, H = 0.", rtol=1e-8, atol=1e-12)


def _minimizer_problems() -> list[ufm.UFM]:
    """Small UFMs with d = K − 1 and d > K − 1, δ = 0 and δ > 0, and one with β ≥ 1."""
    return [ufm.UFM(4, 5, 3, 5e-3, 5e-3, 5e-3, delta=0.0), ufm.UFM(3, 20, 7, 2e-2, 1e-3, 1e-2, delta=0.2),
            ufm.UFM(10, 50, 12, 1e-3, 1e-4, 0.0, delta=0.05), ufm.UFM(5, 2, 4, 1e-1, 1e-2, 1e-3, delta=0.4),
            ufm.UFM(4, 5, 6, 5e-2, 5e-2, 5e-2, delta=0.6)]


def theorem1_minimizer(student: Callable) -> Verdict:
    """Check ``student(num_classes, per_class, dim, lambda_W, lambda_H, delta)``: a global minimizer (chapter 6).

    The answer is a pair ``(W, M)`` of float64 tensors or arrays: the classifier W (K × d) and
    the class means as the rows of M (K × d), with every feature equal to its class mean and
    b = 0. It is right when the UFM objective of this collapsed point
    (:meth:`nclab.ufm.UFM.collapsed_objective`) equals the minimum of Theorem 1
    (:meth:`nclab.ufm.UFM.closed_form`): any rotation of the minimizer is as good as another.
    """
    name = "Exercise 6.3 (a global minimizer)"
    hint = ("check that the rows of M sum to zero, that M Mᵀ is a multiple of Π = I − 11ᵀ/K, that W is "
            "the multiple of M that Theorem 1 gives, and that the norms of the rows are those of "
            "Exercise 6.2 (zero when β ≥ 1).")
    for number, p in enumerate(_minimizer_problems(), start=1):
        answer, failed = _attempt(name, lambda: student(p.num_classes, p.per_class, p.dim, p.lambda_W, p.lambda_H,
                                                        p.delta))
        if failed is not None:
            return failed
        try:
            W, M = answer
            W, M = (torch.as_tensor(as_array(x), dtype=torch.float64) for x in (W, M))
        except (TypeError, ValueError):
            return Verdict(name, "wrong", "Return a pair (W, M) of arrays or tensors.")
        shape = (p.num_classes, p.dim)
        if tuple(W.shape) != shape or tuple(M.shape) != shape:
            return Verdict(name, "wrong", f"On test problem {number}, W and M must both have shape "
                                          f"(K, d) = {shape}; got {tuple(W.shape)} and {tuple(M.shape)}.")
        if not (torch.isfinite(W).all() and torch.isfinite(M).all()):
            return Verdict(name, "wrong", f"On test problem {number}, the answer contains NaN or infinite "
                                          f"values. Hint: {hint}")
        got = float(p.collapsed_objective(W, M.T, torch.zeros(p.num_classes, dtype=torch.float64)))
        if not np.isclose(got, p.closed_form().objective, rtol=1e-9, atol=0.0):
            return Verdict(name, "wrong", f"On test problem {number}, the UFM objective at your point is "
                                          f"above the minimum: it is not a global minimizer. Hint: {hint}")
    return Verdict(name, "right", "Every point reaches the minimum of the UFM objective.")
