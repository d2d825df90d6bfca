"""Tests for nclab.ufm: Theorem 1's closed form against brute force and numerical optimisation."""

import math

import numpy as np
import pytest
import torch

from nclab.descent import default_lr
from nclab.ufm import UFM, simplex_basis, theorem1_curves


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def brute_force_objective(ufm, W, H, b):
    """The UFM objective written out sample by sample, with smoothed targets by hand."""
    K, N = ufm.num_classes, ufm.num_samples
    total = 0.0
    for i in range(N):
        y = i // ufm.per_class
        z = W @ H[:, i] + b
        log_p = z - torch.logsumexp(z, dim=0)
        target = torch.full((K,), ufm.delta / K, dtype=W.dtype)
        target[y] += 1 - ufm.delta
        total = total - (target * log_p).sum()
    reg = ufm.lambda_W * W.square().sum() + ufm.lambda_H * H.square().sum() + ufm.lambda_b * b.square().sum()
    return total / N + reg / 2


def etf_gap(vectors):
    """Distance of the normalised Gram matrix of the rows of ``vectors`` from the simplex ETF's."""
    K = vectors.shape[0]
    gram = vectors @ vectors.T
    etf = torch.eye(K, dtype=gram.dtype) - 1.0 / K
    return float((gram / gram.norm() - etf / etf.norm()).norm())


# Theorem 1 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("delta, w_ref, h_ref", [(0.0, 3.4987, 1.5647), (0.05, 3.1278, 1.3988), (0.1, 2.9371, 1.3135)])
def test_reference_values(delta, w_ref, h_ref):
    curves = theorem1_curves(10, 5000, 1e-3, 1e-6, [delta])
    assert round(float(curves["w_norm"][0]), 4) == w_ref
    assert round(float(curves["h_norm"][0]), 4) == h_ref
    # the explicit minimizer has exactly these per-class norms (d = 9 keeps H small)
    sol = UFM(10, 5000, 9, 1e-3, 1e-6, 1e-2, delta).closed_form()
    assert np.allclose(sol.W.norm(dim=1).numpy(), w_ref, atol=5e-5)
    assert np.allclose(sol.class_means.norm(dim=0).numpy(), h_ref, atol=5e-5)


def test_closed_form_structure_and_scalars():
    ufm = UFM(5, 3, 7, 2e-3, 5e-3, 1e-2, 0.2)
    sol = ufm.closed_form()
    K, n = 5, 3
    means = sol.class_means
    assert torch.allclose(sol.H, means.repeat_interleave(n, dim=1))  # NC1, class-major columns
    assert torch.allclose(means.sum(dim=1), torch.zeros(7, dtype=torch.float64), atol=1e-14)
    assert torch.allclose(sol.W, math.sqrt(n * ufm.lambda_H / ufm.lambda_W) * means.T)  # NC3
    assert etf_gap(sol.W) < 1e-14 and etf_gap(means.T) < 1e-14  # NC2
    assert torch.equal(sol.b, torch.zeros(K, dtype=torch.float64))
    # margin and confidence read off the logits
    logits = (sol.W @ means).T
    p = logits.softmax(dim=1)
    beta = ufm.delta + K * math.sqrt(n * ufm.lambda_W * ufm.lambda_H)
    assert math.isclose(float(logits[0, 0] - logits[0, 1]), math.log(K / beta - K + 1), rel_tol=1e-12)
    assert math.isclose(float(p[0, 0]), 1 - (K - 1) * beta / K, rel_tol=1e-12)
    assert math.isclose(sol.margin, float(logits[0, 0] - logits[0, 1]), rel_tol=1e-12)
    assert math.isclose(sol.objective, float(brute_force_objective(ufm, sol.W, sol.H, sol.b)), rel_tol=1e-13)


def test_gradient_vanishes_at_closed_form():
    for args in [(4, 3, 5, 1e-2, 3e-3, 1e-2, 0.0), (10, 50, 12, 1e-3, 1e-4, 0.0, 0.3), (3, 1, 2, 1e-2, 1e-2, 1e-2, 0.5)]:
        ufm = UFM(*args)
        sol = ufm.closed_form()
        params = [t.clone().requires_grad_(True) for t in (sol.W, sol.H, sol.b)]
        grads = torch.autograd.grad(brute_force_objective(ufm, *params), params)
        assert math.sqrt(sum(float(g.square().sum()) for g in grads)) < 1e-9


def test_trivial_regime():
    ufm = UFM(4, 10, 5, 0.1, 0.1, 1e-2, 0.1)  # beta = 0.1 + 4 * sqrt(10) * 0.1 > 1
    assert ufm.beta >= 1
    sol = ufm.closed_form()
    assert float(sol.W.abs().max()) == 0 and float(sol.H.abs().max()) == 0
    assert sol.margin == 0 and math.isclose(sol.confidence, 0.25)
    curves = theorem1_curves(4, 10, 0.1, 0.1, [0.0, 0.5])
    assert np.all(curves["w_norm"] == 0) and np.allclose(curves["confidence"], 0.25)
    numerical, traj = ufm.solve("lbfgs", steps=300, seed=3, init_scale=1.0)
    assert traj.grad_norm[-1] < 1e-8
    assert float(numerical.W.norm()) < 1e-6 and float(numerical.H.norm()) < 1e-6
    assert numerical.objective >= sol.objective * (1 - 1e-12)
    assert math.isclose(numerical.objective, sol.objective, rel_tol=1e-12)


def test_theorem1_curves_vectorised():
    deltas = np.linspace(0, 0.9, 7)
    curves = theorem1_curves(10, 100, 1e-3, 1e-4, deltas)
    assert curves["w_norm"].shape == (7,)
    for delta, w, h, conf in zip(deltas, curves["w_norm"], curves["h_norm"], curves["confidence"]):
        t = UFM(10, 100, 16, 1e-3, 1e-4, 0.0, delta).theorem1()
        assert math.isclose(w, t["w_norm"]) and math.isclose(h, t["h_norm"]) and math.isclose(conf, t["confidence"])
    assert np.all(np.diff(curves["w_norm"]) <= 0) and np.all(np.diff(curves["margin"]) <= 0)


def test_simplex_basis():
    for K in (2, 3, 10):
        Q = simplex_basis(K)
        assert torch.allclose(Q.T @ Q, torch.eye(K - 1, dtype=torch.float64), atol=1e-14)
        assert torch.allclose(Q @ Q.T, torch.eye(K, dtype=torch.float64) - 1.0 / K, atol=1e-14)


def test_labels_and_objective_match_brute_force():
    ufm = UFM(3, 4, 5, 1e-2, 2e-2, 3e-2, 0.3)
    assert ufm.labels().tolist() == [0] * 4 + [1] * 4 + [2] * 4
    W, H, b = ufm.initial_point(seed=7, scale=1.0)
    assert math.isclose(float(ufm.objective(W, H, b)), float(brute_force_objective(ufm, W, H, b)), rel_tol=1e-13)
    means = H.reshape(5, 3, 4).mean(dim=2)
    assert math.isclose(float(ufm.collapsed_objective(W, means, b)),
                        float(brute_force_objective(ufm, W, ufm.expand_means(means), b)), rel_tol=1e-13)


# numerical optimisation agrees with the closed form ----------------------------------------------


def random_problems(count=20, seed=0):
    """Random problems with beta < 0.9, plus three with beta > 1 (where the minimizer is 0)."""
    rng = np.random.default_rng(seed)
    problems = []
    while len(problems) < count:
        K = int(rng.integers(3, 11))
        d = int(rng.integers(K, K + 4))
        n = int(rng.choice([1, 2, 5, 10, 20, 50]))
        lam_W, lam_H = 10 ** rng.uniform(-5, -2, size=2)
        lam_b = float(rng.choice([0.0, 1e-3, 1e-2]))
        delta = float(rng.choice([0.0, 0.05, 0.1, 0.2, 0.3, 0.5]))
        ufm = UFM(K, n, d, lam_W, lam_H, lam_b, delta)
        if ufm.beta < 0.9:
            problems.append(ufm)
    return problems + [UFM(10, 50, 12, 1e-2, 1e-2, 0.0, 0.5), UFM(9, 50, 9, 1e-2, 1e-2, 1e-2, 0.5),
                       UFM(10, 50, 10, 1e-2, 1e-2, 1e-3, 0.5)]


@pytest.mark.parametrize("ufm", random_problems(), ids=lambda u: f"K{u.num_classes}n{u.per_class}b{u.beta:.2f}")
def test_lbfgs_reaches_closed_form(ufm):
    best = ufm.closed_form()
    sol, traj = ufm.solve("lbfgs", steps=600, seed=11, init_scale=0.3, log_every=10**6)
    assert sol.objective >= best.objective * (1 - 1e-12)
    assert math.isclose(sol.objective, best.objective, rel_tol=1e-9)
    assert traj.grad_norm[-1] < 1e-6
    if ufm.beta >= 1:
        assert float(sol.W.norm()) < 1e-4 and float(sol.H.norm()) < 1e-4
        return
    means = sol.class_means
    w_norms, h_norms = sol.W.norm(dim=1), means.norm(dim=0)
    assert float((w_norms / best.w_norm - 1).abs().max()) < 1e-5
    assert float((h_norms / best.h_norm - 1).abs().max()) < 1e-5
    assert etf_gap(sol.W) < 1e-5 and etf_gap(means.T) < 1e-5
    assert float((sol.H - ufm.expand_means(means)).norm() / means.norm()) < 1e-4  # collapse
    ratio = math.sqrt(ufm.per_class * ufm.lambda_H / ufm.lambda_W)
    assert float((sol.W - ratio * means.T).norm() / sol.W.norm()) < 1e-4  # self-duality
    if ufm.lambda_b > 0:
        assert float(sol.b.abs().max()) < 1e-5 * best.w_norm
    else:  # any b proportional to 1 is optimal: only the centred bias must vanish
        assert float((sol.b - sol.b.mean()).abs().max()) < 1e-5 * best.w_norm
    assert traj.nc1[-1] < 1e-8 and traj.nc2_wh[-1] < 1e-5 and traj.nc3[-1] < 1e-5


def test_lbfgs_gradient_reaches_1e_9_on_a_well_conditioned_problem():
    ufm = UFM(4, 5, 6, 5e-3, 5e-3, 5e-3, 0.1)
    sol, traj = ufm.solve("lbfgs", steps=500, log_every=10**6)
    assert traj.grad_norm[-1] < 3e-9
    assert abs(sol.objective - ufm.closed_form().objective) < 1e-14


def test_gradient_descent_at_one_over_lambda_max_converges():
    ufm = UFM(4, 5, 6, 5e-3, 5e-3, 5e-3, 0.1)
    best = ufm.closed_form()
    lr = default_lr(ufm)
    sol, traj = ufm.solve("gd", steps=2000, lr=lr, log_every=50, tol=1e-11)
    assert traj.grad_norm[-1] <= 1e-11
    assert math.isclose(sol.w_norm, best.w_norm, rel_tol=1e-8)
    assert traj.step[0] == 0 and np.all(np.diff(traj.step) > 0)
    assert np.all(np.diff(traj.objective) <= 1e-15)  # monotone descent with step 1/lambda_max
    # one gradient step by hand from the same start
    W, H, b = ufm.initial_point(seed=0, scale=0.1)
    params = [t.clone().requires_grad_(True) for t in (W, H, b)]
    grads = torch.autograd.grad(brute_force_objective(ufm, *params), params)
    stepped = [t - lr * g for t, g in zip((W, H, b), grads)]
    one, _ = ufm.solve("gd", steps=1, lr=lr, init=(W, H, b))
    assert all(torch.allclose(a, e, atol=1e-14) for a, e in zip((one.W, one.H, one.b), stepped))


# bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, name", [
    ({"num_classes": 1}, "num_classes"), ({"num_classes": 2.5}, "num_classes"),
    ({"per_class": 0}, "per_class"), ({"dim": 0}, "dim"),
    ({"lambda_W": 0.0}, "lambda_W"), ({"lambda_H": -1e-3}, "lambda_H"), ({"lambda_b": -1.0}, "lambda_b"),
    ({"lambda_W": float("nan")}, "lambda_W"), ({"delta": 1.0}, "delta"), ({"delta": -0.1}, "delta"),
])
def test_bad_parameters(changes, name):
    args = dict(num_classes=4, per_class=2, dim=4, lambda_W=1e-3, lambda_H=1e-3, lambda_b=0.0, delta=0.0)
    args.update(changes)
    with pytest.raises(ValueError, match=name):
        UFM(**args)


def test_bad_calls():
    ufm = UFM(5, 2, 3, 1e-3, 1e-3)
    with pytest.raises(ValueError, match="dim must be >= num_classes - 1"):
        ufm.closed_form()
    ufm = UFM(3, 2, 3, 1e-3, 1e-3)
    W, H, b = ufm.initial_point()
    with pytest.raises(ValueError, match="H must have shape"):
        ufm.objective(W, H[:, :-1], b)
    with pytest.raises(ValueError, match="method"):
        ufm.solve("adam")
    with pytest.raises(ValueError, match="init"):
        ufm.solve(init="zeros")
    with pytest.raises(ValueError, match="needs a step size lr"):
        ufm.solve("gd")
    with pytest.raises(ValueError, match="deltas"):
        theorem1_curves(3, 2, 1e-3, 1e-3, [0.1, 1.2])


def test_theorem1_questions_need_its_premise():
    short = UFM(num_classes=4, per_class=5, dim=2, lambda_W=1e-3, lambda_H=1e-3)
    for question in (short.theorem1, short.minimizer_scales, short.closed_form):
        with pytest.raises(ValueError, match=r"dim must be >= num_classes - 1 = 3 for Theorem 1"):
            question()
    # The problem itself is still there to be solved numerically.
    assert short.replace(dim=3).theorem1()["beta"] == pytest.approx(short.beta)
