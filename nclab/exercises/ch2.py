"""Exercises of chapter 2 (neural collapse): Σ_B, NC1 through the pseudo-inverse, the ETF distance.

Each checker takes the student's function, runs it on random inputs drawn with a fixed seed
(several numbers of classes K, feature dimensions d, unbalanced classes), and compares it with
:mod:`nclab.metrics`. It says right or not yet, with a hint, and never prints the expected values.

Example
-------
>>> import nclab as nc
>>> def between_class_covariance(features, labels, num_classes):
...     raise NotImplementedError
>>> nc.exercises.ch2.between_class_covariance(between_class_covariance).status
'not attempted'
"""

from __future__ import annotations

import numpy as np
import torch

from nclab import metrics

from ._core import Verdict, check_function

__all__ = ["between_class_covariance", "nc1", "etf_distance"]

# (K, d, samples of the smallest class): unbalanced classes, d both above and near K - 1.
_SHAPES = ((3, 5, 6), (5, 12, 9), (10, 16, 7), (4, 4, 11))


def _feature_cases(seed: int) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """(features, labels, K): float64 features around random class means, class sizes unequal."""
    rng = np.random.default_rng(seed)
    cases = []
    for K, d, smallest in _SHAPES:
        sizes = smallest + rng.integers(0, 3 * smallest, size=K)          # unequal class sizes
        labels = np.repeat(np.arange(K), sizes)
        rng.shuffle(labels)
        centres = rng.normal(size=(K, d)) * rng.uniform(0.5, 3.0) + rng.normal(size=d)  # common offset
        features = centres[labels] + rng.normal(size=(labels.size, d)) * rng.uniform(0.2, 1.5)
        cases.append((torch.from_numpy(features), torch.from_numpy(labels), K))
    return cases


def _stats(features: torch.Tensor, labels: torch.Tensor, K: int) -> metrics.FeatureStats:
    return metrics.FeatureStats(K, features.shape[1]).update(features, labels)


def between_class_covariance(student) -> Verdict:
    """Chapter 2, exercise 2.1: the between-class covariance Σ_B = (1/K) M̃ᵀ M̃.

    The student writes ``between_class_covariance(features, labels, num_classes)`` returning the
    d×d matrix Σ_B for features of shape (N, d) and integer labels of shape (N,). The classes
    of the random inputs have unequal sizes, so the global mean μ_G (the mean of the class means)
    differs from the mean of all features.

    Parameters
    ----------
    student : the student's function

    Returns
    -------
    Verdict
    """
    def reference(features, labels, K):
        return _stats(features, labels, K).between_cov

    return check_function(
        "Exercise 2.1 (Σ_B)", student, reference, _feature_cases(21),
        "average the outer products of the centred class means over the K classes, and centre them "
        "on μ_G, the mean of the class means (the classes here have unequal sizes)")


def nc1(student) -> Verdict:
    """Chapter 2, exercise 2.2: NC1 = (1/K) tr(Σ_W Σ_B†), through the pseudo-inverse.

    The student writes ``nc1(features, labels, num_classes)`` returning NC1 as a number, with
    Σ_W = (1/N) Σ_k Σ_i (h_ki − μ_k)(h_ki − μ_k)ᵀ and Σ_B as in exercise 2.1. The reference is
    :func:`nclab.metrics.nc1`. In every random input d ≥ K − 1, so Σ_B is singular.

    Parameters
    ----------
    student : the student's function

    Returns
    -------
    Verdict
    """
    def reference(features, labels, K):
        return metrics.nc1(_stats(features, labels, K))

    return check_function(
        "Exercise 2.2 (NC1)", student, reference, _feature_cases(22),
        "Σ_W averages over all N samples, Σ_B over the K classes; Σ_B has rank at most K − 1, so it "
        "needs the Moore-Penrose pseudo-inverse; and NC1 carries a factor 1/K in front of the trace",
        rtol=1e-6)


def _etf_cases(seed: int) -> list[tuple[torch.Tensor]]:
    """K×r matrices: random ones, and scaled, rotated simplex ETFs with a little noise."""
    rng = np.random.default_rng(seed)
    cases = []
    for K, r in ((3, 2), (4, 7), (6, 5), (10, 12)):
        cases.append((torch.from_numpy(rng.normal(size=(K, r)) * rng.uniform(0.1, 10.0)),))
    for K, r in ((4, 6), (7, 9)):
        etf = np.eye(K) - 1.0 / K                                   # rows: a simplex ETF in R^K
        rotation, _ = np.linalg.qr(rng.normal(size=(r, r)))
        embedded = np.zeros((K, r))
        embedded[:, :K] = etf
        near = 5.0 * embedded @ rotation + 0.05 * rng.normal(size=(K, r))
        cases.append((torch.from_numpy(near),))
    return cases


def etf_distance(student) -> Verdict:
    """Chapter 2, exercise 2.3: the distance of the rows of a K×r matrix to a simplex ETF.

    The student writes ``etf_distance(A)`` returning
    ‖ AAᵀ/‖AAᵀ‖_F − (I_K − 11ᵀ/K)/√(K−1) ‖_F as a number; the reference is
    :func:`nclab.metrics.etf_distance`. The random inputs include nearly collapsed ones.

    Parameters
    ----------
    student : the student's function

    Returns
    -------
    Verdict
    """
    return check_function(
        "Exercise 2.3 (ETF distance)", student, metrics.etf_distance, _etf_cases(23),
        "compare the K×K Gram matrix of the rows (not the r×r one of the columns); scale both it "
        "and the centring matrix I − 11ᵀ/K to unit Frobenius norm before subtracting",
        rtol=1e-6, atol=1e-9)
