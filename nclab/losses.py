"""Smoothed targets and the label-smoothing loss (chapter 1 of the book).

With K classes and smoothing parameter delta, the target for class y is

    q = (1 - delta) * e_y + (delta / K) * 1,

and the label-smoothing (LS) loss is the cross-entropy between q and softmax(z). delta = 0 is plain
cross-entropy (CE). The loss is exactly ``torch.nn.functional.cross_entropy(z, y,
label_smoothing=delta)``, which is what :func:`label_smoothing_loss` calls.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import as_tensor, check_delta, check_finite, check_labels, check_num_classes

__all__ = ["smoothed_targets", "label_smoothing_loss", "optimal_margin", "margin_loss"]


def smoothed_targets(labels, num_classes: int, delta: float) -> torch.Tensor:
    """Smoothed target distributions ``(1 - delta) * onehot(labels) + delta / K``.

    Parameters
    ----------
    labels : integer tensor or array of shape (N,), values in [0, num_classes)
    num_classes : K >= 2
    delta : smoothing parameter in [0, 1)

    Returns
    -------
    torch.Tensor of shape (N, K), float32; each row sums to 1.

    Example
    -------
    >>> smoothed_targets([0, 2], 3, 0.3)
    tensor([[0.8000, 0.1000, 0.1000],
            [0.1000, 0.1000, 0.8000]])
    """
    num_classes = check_num_classes(num_classes)
    delta = check_delta(delta)
    labels = check_labels(as_tensor(labels, "labels"), num_classes)
    onehot = F.one_hot(labels, num_classes).float()
    return (1.0 - delta) * onehot + delta / num_classes


def label_smoothing_loss(logits, labels, delta: float, *, reduction: str = "mean") -> torch.Tensor:
    """The label-smoothing loss: cross-entropy against the smoothed target.

    ``-(sum_k q_k log softmax(z)_k)`` with ``q`` from :func:`smoothed_targets`, averaged over the
    batch (``reduction="mean"``), summed (``"sum"``) or per sample (``"none"``). Implemented by
    ``torch.nn.functional.cross_entropy(..., label_smoothing=delta)``, so it is differentiable and
    as fast as plain cross-entropy.

    Parameters
    ----------
    logits : float tensor (N, K)
    labels : integer tensor (N,), values in [0, K)
    delta : smoothing parameter in [0, 1); 0 gives cross-entropy
    reduction : "mean", "sum" or "none"

    Returns
    -------
    torch.Tensor: a scalar, or shape (N,) for ``reduction="none"``.
    """
    delta = check_delta(delta)
    logits = as_tensor(logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, K), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got dtype {logits.dtype}")
    check_num_classes(logits.shape[1], "logits.shape[1] (the number of classes)")
    check_finite(logits, "logits")
    labels = check_labels(as_tensor(labels, "labels"), logits.shape[1])
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels and logits disagree on the number of samples: {labels.shape[0]} vs {logits.shape[0]}"
        )
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return F.cross_entropy(logits, labels.to(logits.device), label_smoothing=delta, reduction=reduction)


def margin_loss(margin, num_classes: int, delta: float) -> np.ndarray:
    """LS loss of a logit vector whose true class leads every other class by ``margin``.

    For logits ``z_y = m`` and ``z_j = 0`` (j != y) the softmax gives ``p_y = e^m / (e^m + K - 1)``
    and the loss is ``log(e^m + K - 1) - (1 - delta + delta/K) m``. This one-dimensional view is
    the picture of chapter 1: for delta = 0 it decreases forever, for delta > 0 it has a minimum.

    Parameters
    ----------
    margin : float or array of margins m
    num_classes : K >= 2
    delta : smoothing parameter in [0, 1)

    Returns
    -------
    numpy array of losses, same shape as ``margin``.
    """
    num_classes = check_num_classes(num_classes)
    delta = check_delta(delta)
    m = np.asarray(margin, dtype=float)
    return np.logaddexp(m, np.log(num_classes - 1)) - (1.0 - delta + delta / num_classes) * m


def optimal_margin(num_classes: int, delta: float) -> float:
    """The margin that minimizes :func:`margin_loss`: ``log(1 + K (1 - delta) / delta)``.

    Setting the derivative ``p_y - (1 - delta + delta/K)`` to zero gives
    ``e^m / (e^m + K - 1) = 1 - delta (K-1)/K``, hence ``e^m = 1 + K(1 - delta)/delta``.
    Plain cross-entropy (delta = 0) has no finite minimizer: the result is ``inf``.
    """
    num_classes = check_num_classes(num_classes)
    delta = check_delta(delta)
    if delta == 0.0:
        return math.inf
    return math.log1p(num_classes * (1.0 - delta) / delta)
