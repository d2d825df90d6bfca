"""The self-checked exercises of chapter 4 (NC1 versus NC2): centred class means, NC2 and NC3.

Each function takes the student's function, runs it on random features, classifiers and class
counts drawn with a fixed seed (several K and d, unbalanced classes), and compares it with
:mod:`nclab.metrics` and :class:`nclab.features.FeatureStats`. It returns a
:class:`~nclab.exercises.Verdict` and never shows the expected values.

Example
-------
>>> import nclab as nc
>>> def centred_means(features, labels, num_classes):
...     raise NotImplementedError
>>> nc.exercises.ch4.centred_means(centred_means).status
'not attempted'
"""

from __future__ import annotations

import torch

from nclab.features import FeatureStats
from nclab.metrics import nc2_wh, nc3 as nc3_reference

from ._core import Verdict, check_function

__all__ = ["centred_means", "nc2_classifier_features", "nc3"]

# (K, d, seed): at least K - 1 feature dimensions, so the class means can span a simplex.
_SHAPES = ((3, 5, 0), (5, 8, 1), (10, 12, 2), (4, 3, 3))


def _features(num_classes: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of unbalanced classes (between 3 and 15 samples each) around random means."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(3, 16, (num_classes,), generator=gen)
    labels = torch.repeat_interleave(torch.arange(num_classes), counts)
    labels = labels[torch.randperm(len(labels), generator=gen)]
    means = 2.0 * torch.randn(num_classes, dim, generator=gen, dtype=torch.float64) + 1.5
    features = means[labels] + 0.5 * torch.randn(len(labels), dim, generator=gen, dtype=torch.float64)
    return features, labels


def _stats(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> FeatureStats:
    return FeatureStats(num_classes, features.shape[1]).update(features, labels)


def _classifier_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(W, class means) pairs: a random classifier, and one close to the centred means."""
    cases = []
    for num_classes, dim, seed in _SHAPES:
        features, labels = _features(num_classes, dim, seed)
        means = _stats(features, labels, num_classes).means
        gen = torch.Generator().manual_seed(100 + seed)
        noise = torch.randn(num_classes, dim, generator=gen, dtype=torch.float64)
        cases.append((noise, means.clone()))
        cases.append((3.0 * (means - means.mean(0)) + 0.3 * noise, means.clone()))
    return cases


def _from_means(measure):
    """A reference measure of (W, means) built on FeatureStats whose class means are ``means``."""
    def reference(W, means):
        num_classes, dim = means.shape
        stats = _stats(means, torch.arange(num_classes), num_classes)
        return measure(W, stats)
    return reference


def centred_means(student) -> Verdict:
    """Exercise 4.1 (chapter 4): the centred class-means matrix M̃, rows μ_k − μ_G.

    ``student(features, labels, num_classes)`` takes features of shape (N, d) and labels of
    shape (N,) and returns the K×d matrix whose row k is μ_k − μ_G, with μ_G the mean of the
    class means. The classes of the test inputs have different sizes.

    Returns
    -------
    Verdict
    """
    cases = [(*_features(k, d, seed), k) for k, d, seed in _SHAPES]
    return check_function(
        "Exercise 4.1 (centred class means)", student,
        lambda features, labels, k: _stats(features, labels, k).centred_means, cases,
        "one row per class, each class's own mean minus the global mean μ_G, and μ_G is the "
        "average of the K class means (with unequal class sizes it is not the average of all "
        "samples).")


def nc2_classifier_features(student) -> Verdict:
    """Exercise 4.2 (chapter 4): NC2 in the paper's form, ‖WM̃ᵀ/‖WM̃ᵀ‖_F − Π/√(K−1)‖_F.

    ``student(W, means)`` takes the classifier W (K×d) and the class means μ_k as the rows of a
    K×d matrix (not centred) and returns the distance as a number; Π = I_K − 11ᵀ/K.
    The reference is :func:`nclab.metrics.nc2_wh`.

    Returns
    -------
    Verdict
    """
    return check_function(
        "Exercise 4.2 (NC2, classifier–feature form)", student, _from_means(nc2_wh),
        _classifier_cases(),
        "centre the class means first, multiply W by the transpose of the centred means, scale "
        "that K×K matrix to unit Frobenius norm, and compare it with the centring projector "
        "divided by the square root of K − 1.")


def nc3(student) -> Verdict:
    """Exercise 4.3 (chapter 4): NC3, self-duality ‖W/‖W‖_F − M̃/‖M̃‖_F‖_F.

    ``student(W, means)`` takes the classifier W (K×d) and the class means μ_k as the rows of a
    K×d matrix (not centred) and returns NC3 as a number (not its square). The reference is
    :func:`nclab.metrics.nc3`.

    Returns
    -------
    Verdict
    """
    return check_function(
        "Exercise 4.3 (NC3, self-duality)", student, _from_means(nc3_reference), _classifier_cases(),
        "centre the class means, scale W and the centred means each to unit Frobenius norm (the "
        "whole matrix, not row by row), and return the Frobenius norm of their difference, not "
        "its square.")
