"""Smoothed targets and the LS loss, checked against their definitions and a numerical optimum."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize, minimize_scalar

from nclab import losses


def test_smoothed_targets_match_definition():
    labels = torch.tensor([2, 0, 1, 2])
    q = losses.smoothed_targets(labels, 3, 0.3)
    for row, y in zip(q, labels):
        for k in range(3):
            expected = (0.7 if k == y else 0.0) + 0.1
            assert row[k].item() == pytest.approx(expected)
    assert torch.allclose(q.sum(1), torch.ones(4))


def test_loss_equals_cross_entropy_against_smoothed_target():
    torch.manual_seed(1)
    logits = torch.randn(50, 7, dtype=torch.float64)
    labels = torch.randint(0, 7, (50,))
    for delta in (0.0, 0.1, 0.45):
        manual = 0.0
        for z, y in zip(logits, labels.tolist()):
            logp = z - torch.logsumexp(z, 0)
            q = [(1 - delta) * (k == y) + delta / 7 for k in range(7)]
            manual += -sum(q[k] * logp[k].item() for k in range(7))
        got = losses.label_smoothing_loss(logits, labels, delta).item()
        assert got == pytest.approx(manual / 50, rel=1e-12)


def test_optimal_margin_matches_numerical_minimum():
    for K, delta in [(2, 0.05), (10, 0.1), (100, 0.3), (5, 0.9)]:
        res = minimize_scalar(lambda m: losses.margin_loss(m, K, delta), bounds=(-5, 60),
                              method="bounded", options={"xatol": 1e-11})
        assert res.x == pytest.approx(losses.optimal_margin(K, delta), abs=1e-6)
    assert losses.optimal_margin(10, 0.0) == math.inf


def test_full_logit_minimizer_has_the_optimal_margin():
    # Minimize the LS loss over all K logits of one sample: every wrong class ends m* below.
    K, delta = 6, 0.2
    def f(z):
        t = torch.tensor(z, requires_grad=True)
        loss = losses.label_smoothing_loss(t[None], torch.tensor([0]), delta)
        loss.backward()
        return loss.item(), t.grad.numpy()
    z = minimize(f, np.zeros(K), jac=True, method="BFGS", options={"gtol": 1e-12}).x
    assert np.allclose(z[0] - z[1:], losses.optimal_margin(K, delta), atol=1e-5)


@pytest.mark.parametrize("delta", [-0.1, 1.0, 1.5, float("nan"), "x"])
def test_bad_delta(delta):
    with pytest.raises(ValueError, match="delta"):
        losses.smoothed_targets([0], 3, delta)
    with pytest.raises(ValueError, match="delta"):
        losses.label_smoothing_loss(torch.zeros(1, 3), [0], delta)


def test_bad_labels_and_shapes():
    with pytest.raises(ValueError, match="labels"):
        losses.smoothed_targets([3], 3, 0.1)
    with pytest.raises(ValueError, match="labels"):
        losses.label_smoothing_loss(torch.zeros(2, 3), [0, -1], 0.1)
    with pytest.raises(ValueError, match="number of samples"):
        losses.label_smoothing_loss(torch.zeros(2, 3), [0], 0.1)
    with pytest.raises(ValueError, match="logits"):
        losses.label_smoothing_loss(torch.zeros(3), [0], 0.1)
    with pytest.raises(ValueError, match="NaN"):
        losses.label_smoothing_loss(torch.tensor([[0.0, float("nan")]]), [0], 0.1)
    with pytest.raises(ValueError, match="num_classes"):
        losses.smoothed_targets([0], 1, 0.1)
