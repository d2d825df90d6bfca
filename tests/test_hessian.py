"""Tests for nclab.hessian: the symmetry-reduced spectrum against dense autograd Hessians."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nclab.hessian import (
    Spectrum, condition_numbers, dense_hessian, flatten, lanczos_extremes, orbit_dimension,
    reduced_spectrum, unflatten,
)
from nclab.ufm import UFM


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# K, n, d, lambda_W, lambda_H, lambda_b, delta: every K from 2 to 8, beta >= 1, lambda_b = 0,
# n = 1, d = K - 1 and d > K
SMALL = [
    (2, 3, 3, 1e-2, 1e-2, 1e-2, 0.1),
    (3, 2, 3, 1e-2, 1e-2, 1e-2, 0.1),
    (3, 4, 2, 3e-3, 1e-2, 0.0, 0.5),
    (4, 3, 5, 1e-2, 3e-3, 1e-2, 0.0),
    (4, 2, 3, 5e-2, 5e-2, 1e-2, 0.2),
    (5, 2, 6, 1e-3, 1e-2, 0.0, 0.3),
    (5, 3, 4, 1e-1, 1e-1, 1e-2, 0.2),  # beta > 1: the minimizer is 0
    (6, 1, 7, 1e-3, 1e-3, 1e-3, 0.05),
    (8, 2, 8, 2e-3, 5e-3, 1e-2, 0.1),
]


def loss_only(ufm, theta):
    """The data term (1/N) sum_i L_delta, written with explicit smoothed targets."""
    W, H, b = unflatten(ufm, theta)
    log_p = torch.log_softmax((W @ H).T + b, dim=1)
    targets = torch.full_like(log_p, ufm.delta / ufm.num_classes)
    targets[torch.arange(ufm.num_samples), ufm.labels()] += 1 - ufm.delta
    return -(targets * log_p).sum() / ufm.num_samples


def dense_spectra(ufm):
    """Full, data-term and W-only spectra from dense autograd Hessians (torch.autograd.functional)."""
    sol = ufm.closed_form()
    theta = flatten(sol.W, sol.H, sol.b)
    K, d = ufm.num_classes, ufm.dim
    full = dense_hessian(ufm, sol.W, sol.H, sol.b)
    data = torch.autograd.functional.hessian(lambda t: loss_only(ufm, t), theta)
    weights = torch.autograd.functional.hessian(
        lambda w: ufm.objective(w.reshape(K, d), sol.H, sol.b), sol.W.reshape(-1))
    return {name: np.sort(torch.linalg.eigvalsh(0.5 * (m + m.T)).numpy())
            for name, m in (("full", full), ("data", data), ("W", weights))}


def expected_zeros(ufm):
    r = ufm.num_classes - 1 if ufm.beta < 1 else 0
    return r * (r - 1) // 2 + r * (ufm.dim - r) + (ufm.lambda_b == 0)


@pytest.mark.parametrize("args", SMALL, ids=lambda a: f"K{a[0]}n{a[1]}d{a[2]}delta{a[6]}")
def test_reduced_spectrum_matches_dense(args):
    ufm = UFM(*args)
    dense = dense_spectra(ufm)
    for name, eig in dense.items():
        reduced = reduced_spectrum(ufm, name)
        assert reduced.dim == len(eig)
        scale = np.abs(eig).max()
        assert np.abs(reduced.expand() - eig).max() <= 1e-8 * scale, name
    full = dense["full"]
    num_zero = int((np.abs(full) <= 1e-9 * full.max()).sum())
    assert num_zero == expected_zeros(ufm)
    assert full.min() > -1e-12 * full.max()  # a minimizer: positive semidefinite
    assert reduced_spectrum(ufm).num_zero() == num_zero


def test_dense_hessian_against_finite_differences():
    ufm = UFM(3, 2, 3, 1e-2, 2e-2, 5e-3, 0.2)
    W, H, b = ufm.initial_point(seed=1, scale=0.5)
    theta = flatten(W, H, b)
    hessian = dense_hessian(ufm, W, H, b)
    grad = lambda t: torch.autograd.grad(ufm.objective(*unflatten(ufm, t.requires_grad_(True))), t)[0]  # noqa: E731
    eps = 1e-6
    for j in (0, 5, 12, 29):
        e = torch.zeros_like(theta)
        e[j] = eps
        column = (grad(theta + e) - grad(theta - e)) / (2 * eps)
        assert torch.allclose(hessian[:, j], column, atol=1e-7)


def test_orbit_dimension():
    ufm = UFM(5, 2, 8, 1e-3, 1e-3, 1e-3, 0.1)
    sol = ufm.closed_form()
    assert orbit_dimension(sol.W, sol.H) == 4 * 3 // 2 + 4 * 4
    W, H, _ = ufm.initial_point(seed=0)  # generic point: rank min(d, K + N) = 8, O(8) acts freely
    assert orbit_dimension(W, H) == 8 * 7 // 2
    assert orbit_dimension(torch.zeros(5, 8), torch.zeros(8, 10)) == 0


def test_within_class_eigenvalues_closed_form():
    """lambda_H + (s^2/N) x {q (K-2 times), K p* q (once)}, s = ||w_k|| sqrt(K/(K-1))."""
    ufm = UFM(6, 40, 9, 1e-3, 1e-4, 1e-2, 0.2)
    t = ufm.theorem1()
    K, N = 6, 240
    p_star = t["confidence"]
    q = (1 - p_star) / (K - 1)
    s2 = t["w_norm"] ** 2 * K / (K - 1)
    within = reduced_spectrum(ufm).select("within/span")
    values = dict(zip(np.round(within.eigenvalues / ufm.lambda_H, 10), within.multiplicities))
    expected = {round(1 + s2 * q / N / ufm.lambda_H, 10): K * (K - 2) * 39,
                round(1 + s2 * K * p_star * q / N / ufm.lambda_H, 10): K * 39}
    assert values == expected


@pytest.mark.parametrize("args", [(4, 3, 5, 1e-2, 3e-3, 1e-2, 0.0), (5, 2, 6, 1e-3, 1e-2, 0.0, 0.3),
                                  (6, 4, 8, 5e-3, 5e-3, 5e-3, 0.1), (10, 20, 16, 1e-3, 1e-3, 1e-2, 0.2)])
def test_lanczos_matches_reduced_extremes(args):
    ufm = UFM(*args)
    sol = ufm.closed_form()
    lam_max, lam_min = lanczos_extremes(ufm, sol.W, sol.H, sol.b)
    spectrum = reduced_spectrum(ufm)
    assert math.isclose(lam_max, spectrum.max, rel_tol=1e-8)
    assert math.isclose(lam_min, spectrum.min_nonzero(), rel_tol=1e-6)


def test_logit_condition_number():
    for delta in (0.0, 0.1, 0.3):
        ufm = UFM(10, 50, 12, 1e-3, 1e-4, 1e-2, delta)
        kappa = condition_numbers(ufm)
        sol = ufm.closed_form()
        z = (sol.W @ sol.class_means[:, 0]).detach()
        S = torch.autograd.functional.hessian(
            lambda v: F.cross_entropy(v[None], torch.tensor([0]), label_smoothing=delta), z)
        eig = torch.linalg.eigvalsh(S).numpy()[1:]  # drop the zero along 1
        assert math.isclose(kappa.logit, eig.max() / eig.min(), rel_tol=1e-9)
        assert math.isclose(kappa.logit, 10 * sol.confidence, rel_tol=1e-9)
        assert math.isclose(kappa.logit_analytic, 10 * (1 - 9 * ufm.beta / 10), rel_tol=1e-12)


def test_condition_numbers_against_dense():
    for args in SMALL[3:6]:
        ufm = UFM(*args)
        dense = dense_spectra(ufm)
        kappa = condition_numbers(ufm)
        full = dense["full"]
        positive = full[full > 1e-9 * full.max()]
        assert math.isclose(kappa.full, positive.max() / positive.min(), rel_tol=1e-8)
        assert kappa.num_zero == kappa.symmetry_zeros == expected_zeros(ufm)
        assert math.isclose(kappa.weights, dense["W"].max() / dense["W"].min(), rel_tol=1e-8)
        data = np.abs(dense["data"])
        data = data[data > 1e-9 * data.max()]
        assert math.isclose(kappa.data, data.max() / data.min(), rel_tol=1e-8)
        assert kappa.data_negative == int((dense["data"] < -1e-9 * np.abs(dense["data"]).max()).sum())


def test_paper_scale():
    """25.6 million variables: the multiplicities add up and the structure is as derived."""
    ufm = UFM(10, 5000, 512, 1e-3, 1e-6, 1e-2, 0.1)
    spectrum = reduced_spectrum(ufm)
    assert spectrum.dim == ufm.num_parameters == 10 * 512 + 512 * 50000 + 10
    assert spectrum.num_zero() == 9 * 8 // 2 + 9 * 503
    assert spectrum.eigenvalues.min() > -1e-12 * spectrum.max
    assert math.isclose(spectrum.select("within/outside").eigenvalues[0], 1e-6)
    kappas = [condition_numbers(ufm.replace(delta=delta)) for delta in (0.0, 0.1, 0.3)]
    assert kappas[0].logit > kappas[1].logit > kappas[2].logit
    assert all(k.num_zero == k.symmetry_zeros for k in kappas)


def test_spectrum_helpers():
    spectrum = Spectrum(np.array([-1.0, 0.0, 2.0]), np.array([1, 3, 2]), ("a", "b", "a"))
    assert spectrum.dim == 6
    assert spectrum.expand().tolist() == [-1.0, 0.0, 0.0, 0.0, 2.0, 2.0]
    assert spectrum.num_zero() == 3 and spectrum.num_negative() == 1
    assert spectrum.min_nonzero() == 1.0 and spectrum.max == 2.0
    assert spectrum.select("a").dim == 3


def test_bad_input():
    with pytest.raises(ValueError, match="hessian"):
        reduced_spectrum(UFM(3, 2, 3, 1e-2, 1e-2), hessian="loss")
    with pytest.raises(ValueError, match="dim"):
        reduced_spectrum(UFM(5, 2, 3, 1e-2, 1e-2))
    with pytest.raises(ValueError, match="ufm"):
        condition_numbers("not a problem")
    ufm = UFM(3, 2, 3, 1e-2, 1e-2)
    W, H, b = ufm.initial_point()
    with pytest.raises(ValueError, match="b must have shape"):
        dense_hessian(ufm, W, H, b[:2])
    with pytest.raises(ValueError, match="theta"):
        unflatten(ufm, torch.zeros(5))
