"""The exercises of chapter 1 (cross-entropy and label smoothing), checked against :mod:`nclab.losses`.

Each function takes the student's function and returns a :class:`~nclab.exercises.Verdict`:

- :func:`smoothed_targets` -- the smoothed targets q = (1 - δ) e_y + (δ/K) 1;
- :func:`label_smoothing_loss` -- the LS loss -Σ_k q_k log p_k, averaged over the batch;
- :func:`optimal_margin` -- the optimal logit margin m*(δ) = log(K/δ - K + 1).

The random inputs are drawn with fixed seeds, so a verdict does not change between runs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .. import losses
from ._core import Verdict, check_function

__all__ = ["smoothed_targets", "label_smoothing_loss", "optimal_margin"]

# (K, δ) pairs the checkers try: small and large K, δ from tiny to large, and plain CE (δ = 0).
_SETTINGS = ((2, 0.3), (4, 0.2), (10, 0.05), (7, 0.0), (100, 0.6))


def _labels(rng: np.random.Generator, num: int, num_classes: int) -> torch.Tensor:
    return torch.as_tensor(rng.integers(0, num_classes, size=num), dtype=torch.long)


def smoothed_targets(student: Callable) -> Verdict:
    """Check ``student(labels, num_classes, delta)``: one smoothed target per label (chapter 1).

    The answer must be an (N, K) array or tensor whose row i is (1 - δ) e_{y_i} + (δ/K) 1; the
    reference is :func:`nclab.losses.smoothed_targets`.
    """
    rng = np.random.default_rng(101)
    cases = [(_labels(rng, int(rng.integers(1, 9)), K), K, delta) for K, delta in _SETTINGS]
    return check_function(
        "Exercise 1.1 (smoothed targets)", student, losses.smoothed_targets, cases,
        "each row must sum to 1; the uniform part δ is spread over all K classes, the true class "
        "included, and the one-hot part keeps weight 1 − δ. Labels are integers, one row per label.")


def _reference_loss(logits, labels, delta):
    return losses.label_smoothing_loss(logits, labels, delta)


def label_smoothing_loss(student: Callable) -> Verdict:
    """Check ``student(logits, labels, delta)``: the mean LS loss over a batch (chapter 1).

    The logits are float64 tensors of shape (N, K), the labels integer tensors of shape (N,). The
    reference is :func:`nclab.losses.label_smoothing_loss` (PyTorch's cross-entropy with
    ``label_smoothing=delta``).
    """
    rng = np.random.default_rng(102)
    cases = []
    for K, delta in _SETTINGS:
        N = int(rng.integers(2, 12))
        scale = float(rng.choice([0.5, 3.0, 20.0]))
        logits = torch.as_tensor(scale * rng.normal(size=(N, K)), dtype=torch.float64)
        cases.append((logits, _labels(rng, N, K), delta))
    # logits a thousand apart: the log of a softmax underflows to log 0 there, log_softmax does not
    logits = torch.as_tensor(400.0 * rng.normal(size=(5, 6)), dtype=torch.float64)
    cases.append((logits, _labels(rng, 5, 6), 0.1))
    return check_function(
        "Exercise 1.2 (the LS loss by hand)", student, _reference_loss, cases,
        "the loss of one sample is −Σ_k q_k log p_k with the smoothed target q and p = softmax(z); "
        "use log_softmax for large logits, and average (not sum) over the samples.",
        rtol=1e-6, atol=1e-9)


def _reference_margin(num_classes, delta):
    return losses.optimal_margin(num_classes, delta)


def optimal_margin(student: Callable) -> Verdict:
    """Check ``student(num_classes, delta)``: the optimal logit margin m*(δ) for δ in (0, 1) (chapter 1).

    The reference is :func:`nclab.losses.optimal_margin`, the minimizer of
    :func:`nclab.losses.margin_loss`.
    """
    rng = np.random.default_rng(103)
    cases = [(K, delta) for K, delta in _SETTINGS if delta > 0]
    cases += [(int(rng.integers(2, 50)), float(rng.uniform(0.001, 0.95))) for _ in range(4)]
    return check_function(
        "Exercise 1.3 (the optimal margin)", student, _reference_margin, cases,
        "set the derivative of the margin loss, p_y(m) − q_y, to zero and solve for m; it must hold "
        "for every K and δ, not only for small δ. Compare with a numerical minimization of "
        "nc.losses.margin_loss.", rtol=1e-8, atol=1e-10)
