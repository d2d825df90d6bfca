"""NC4 (chapter 2): how often the network's prediction differs from the nearest class mean.

NC4 is the one collapse measure that needs a second look at the samples: the class means must be
known before any sample can be scored, so it is counted in a pass after :class:`~nclab.features.FeatureStats`
has seen all of the data (or over stored features). :func:`nearest_mean_predictions` is the
nearest-class-mean rule, :func:`nc4` the mismatch rate of one batch, and :class:`NC4Accumulator`
counts it batch by batch.

Every name here is also importable from :mod:`nclab.metrics`, which reports NC4 with the other
measures (:class:`nclab.metrics.CollapseReport`).
"""

from __future__ import annotations

import math

import torch

from nclab._checks import as_tensor, check_finite, check_labels

__all__ = ["nearest_mean_predictions", "nc4", "NC4Accumulator"]


def _as_matrix(x, name: str, device: torch.device | None = None) -> torch.Tensor:
    """A finite float64 matrix with at least two rows: the check of every matrix argument of
    the measures, here and in :mod:`nclab.metrics`."""
    a = as_tensor(x, name).detach()
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(
            f"{name} must be a 2-D matrix with one row per class (K >= 2), got shape {tuple(a.shape)}"
        )
    a = a.to(device if device is not None else a.device, torch.float64)
    check_finite(a, name)
    return a


def _predicted_classes(predictions, n: int, num_classes: int) -> torch.Tensor:
    """Class indices in [0, K) from (N,) predictions or (N, K) logits; anything else is a ValueError."""
    p = as_tensor(predictions, "predictions").detach()
    if p.ndim == 2:
        if p.shape[1] != num_classes:
            raise ValueError(f"predictions given as logits must have one column per class: expected shape "
                             f"({n}, {num_classes}), got {tuple(p.shape)}")
        check_finite(p, "predictions")
        p = p.argmax(1)
    if p.ndim != 1 or p.shape[0] != n or p.is_floating_point() or p.dtype == torch.bool:
        raise ValueError(
            f"predictions must be {n} class indices or an ({n}, {num_classes}) array of logits, "
            f"got shape {tuple(p.shape)} and dtype {p.dtype}"
        )
    return check_labels(p, num_classes, "predictions")


def nearest_mean_predictions(features, means) -> torch.Tensor:
    """Class of the nearest class mean (Euclidean) for each feature vector (chapter 2, NC4).

    argmin_k ‖h − μ_k‖, computed in float64 as argmax_k (h − μ̄)·(μ_k − μ̄) − ½‖μ_k − μ̄‖²
    with μ̄ the mean of the class means, so a large common offset does not cost precision.

    Parameters
    ----------
    features : array-like of shape (N, d)
    means : array-like of shape (K, d)
        Class means, e.g. ``stats.means`` of the same data set.

    Returns
    -------
    torch.Tensor of shape (N,), int64
    """
    m = _as_matrix(means, "means")
    x = as_tensor(features, "features").detach()
    if x.ndim != 2 or x.shape[1] != m.shape[1]:
        raise ValueError(f"features must have shape (N, {m.shape[1]}) to match means, got {tuple(x.shape)}")
    x = x.to(m.device, torch.float64)
    check_finite(x, "features")
    centre = m.mean(0)
    m = m - centre
    scores = (x - centre) @ m.T - 0.5 * (m * m).sum(1)
    return scores.argmax(1)


def nc4(features, predictions, means) -> float:
    """NC4: share of samples whose network prediction differs from the nearest-class-mean one (chapter 2).

    Parameters
    ----------
    features : array-like of shape (N, d)
    predictions : array-like of shape (N,) or (N, K)
        The network's predicted classes, integers in [0, K), or its logits, one column per
        class (their argmax is taken).
    means : array-like of shape (K, d)
        Class means of the training features (``stats.means``).

    Returns
    -------
    float
        Mismatch rate in [0, 1]; 0 under full collapse.
    """
    return NC4Accumulator(means).update(features, predictions).value


class NC4Accumulator:
    """NC4 counted batch by batch (chapter 2).

    NC4 needs the class means before any sample can be scored, so it takes a second pass over
    the data once :class:`~nclab.features.FeatureStats` has seen all of it (or a pass over stored features).

    Parameters
    ----------
    means : array-like of shape (K, d)
        Class means, e.g. ``stats.means``.

    Examples
    --------
    >>> import torch
    >>> counter = NC4Accumulator(torch.tensor([[0.0, 0.0], [4.0, 0.0]]))
    >>> counter.update(torch.tensor([[1.0, 0.0], [3.0, 1.0]]), torch.tensor([0, 0])).value
    0.5
    """

    def __init__(self, means):
        self.means = _as_matrix(means, "means")
        self.mismatches = 0
        self.total = 0

    def update(self, features, predictions) -> NC4Accumulator:
        """Count a batch: features (N×d) with the network's predictions (N,) or logits (N×K); returns self."""
        nearest = nearest_mean_predictions(features, self.means)
        predicted = _predicted_classes(predictions, nearest.shape[0], self.means.shape[0]).to(nearest.device)
        self.mismatches += int((predicted != nearest).sum())
        self.total += nearest.shape[0]
        return self

    @property
    def value(self) -> float:
        """Mismatch rate so far (NaN before any sample)."""
        return self.mismatches / self.total if self.total else math.nan
