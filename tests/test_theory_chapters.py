"""The figures and delta explorers of the theory chapters (6-8), checked against independent math."""

import functools
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from matplotlib.figure import Figure, SubFigure

from nclab import descent, hessian, plots, tables, ufm, widgets


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def norms_by_hand(K, n, lambda_W, lambda_H, delta):
    """Theorem 1's per-class norms, typed from the statement."""
    beta = delta + K * math.sqrt(n * lambda_W * lambda_H)
    if beta >= 1:
        return 0.0, 0.0
    margin = math.log(K / beta - K + 1)
    return (math.sqrt((K - 1) / K * math.sqrt(n * lambda_H / lambda_W) * margin),
            math.sqrt((K - 1) / K * math.sqrt(lambda_W / (n * lambda_H)) * margin))


def optimal_value_by_scalar_search(problem):
    """f* as the minimum of the scalar problem in the margin, found by SciPy."""
    K = problem.num_classes
    c = math.sqrt(problem.per_class * problem.lambda_W * problem.lambda_H)
    q_y = 1 - problem.delta + problem.delta / K

    def phi(m):
        return np.logaddexp(m, math.log(K - 1)) - q_y * m + (K - 1) * c * abs(m)

    return minimize_scalar(phi, bounds=(-5, 60), method="bounded", options={"xatol": 1e-12}).fun


def assert_labelled(fig):
    for ax in fig.axes:
        if ax.get_visible() and ax.has_data():
            assert ax.get_xlabel() and ax.get_ylabel(), f"unlabelled axes: {ax.get_title()!r}"


# plots ------------------------------------------------------------------------------------------


def test_theorem1_vs_delta_draws_the_closed_form_and_the_trivial_region():
    deltas = np.linspace(0, 0.95, 40)
    curves = ufm.theorem1_curves(4, 5, 2e-2, 2e-2, deltas)
    measured = {"delta": [0.1], "w_norm": [1.0], "h_norm": [0.5], "margin": [2.0], "confidence": [0.7]}
    fig = plots.theorem1_vs_delta(curves, measured=measured, highlight=0.3)
    assert len(fig.axes) == 3
    assert_labelled(fig)
    w_line = next(line for line in fig.axes[0].lines if line.get_label() == "‖w_k‖ (Theorem 1)")
    expected = [norms_by_hand(4, 5, 2e-2, 2e-2, d)[0] for d in deltas]
    np.testing.assert_allclose(w_line.get_ydata(), expected, rtol=1e-12, atol=1e-14)
    conf_line = next(line for line in fig.axes[2].lines if "Theorem 1" in line.get_label())
    beta = deltas + 4 * math.sqrt(5 * 2e-2 * 2e-2)
    np.testing.assert_allclose(conf_line.get_ydata(), np.where(beta < 1, 1 - 3 * beta / 4, 0.25), rtol=1e-12)
    shaded = [p for p in fig.axes[1].patches if p.get_label().startswith("β ≥ 1")]
    assert len(shaded) == 1
    assert shaded[0].get_x() == pytest.approx(deltas[beta >= 1].min())


def test_hessian_eigenvalues_counts_the_zeros():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(0.1, 2.0, 20), np.zeros(7), [1e-13, -1e-13], [-0.5]])
    fig = plots.hessian_eigenvalues(values, reference=values)
    assert_labelled(fig)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert any(label.startswith("zero") and label.endswith("(9)") for label in labels)
    assert "λ > 0 (20)" in labels and "|λ|, λ < 0 (1)" in labels
    assert fig.axes[0].get_yscale() == "log"


def test_spectrum_by_mode_stems_are_multiplicities_and_zeros_are_left_out():
    spectrum = hessian.Spectrum(np.array([0.0, 0.005, 0.02, 0.1]), np.array([12, 400, 9, 3]),
                                ("mean/outside", "within/outside", "within/span", "mean/trivial"))
    fig = plots.spectrum_by_mode(spectrum, xlim=(1e-3, 1))
    assert_labelled(fig)
    ax = fig.axes[0]
    dots = {round(float(line.get_xdata()[0]), 6): float(line.get_ydata()[0]) for line in ax.lines
            if line.get_marker() == "o"}
    assert dots == {0.005: 400, 0.02: 9, 0.1: 3}
    assert "12 of them zero" in ax.get_title()
    assert ax.get_xlim() == pytest.approx((1e-3, 1))


def test_condition_numbers_vs_delta_logit_line_is_K_p_star():
    problem = ufm.UFM(3, 2, 3, 1e-2, 1e-2, 1e-2)
    deltas = [0.0, 0.2, 0.4]
    kappas = [hessian.condition_numbers(problem.replace(delta=d)) for d in deltas]
    fig = plots.condition_numbers_vs_delta(kappas)
    assert_labelled(fig)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert set(lines) == set(plots.KAPPA_LABELS.values())
    beta = np.array(deltas) + 3 * math.sqrt(2 * 1e-2 * 1e-2)
    np.testing.assert_allclose(lines[plots.KAPPA_LABELS["logit"]].get_ydata(), 3 - 2 * beta, rtol=1e-9)
    with pytest.raises(ValueError, match="keys"):
        plots.condition_numbers_vs_delta(kappas, keys=["bogus"])


@pytest.fixture(scope="module")
def small_run():
    problem = ufm.UFM(3, 2, 3, 2e-2, 2e-2, 2e-2)
    result = descent.convergence_experiment(deltas=(0.0, 0.2), num_classes=3, per_class=2, dim=3, lambda_W=2e-2,
                                            lambda_H=2e-2, lambda_b=2e-2, steps=60, log_every=5, lr="shared")
    return problem, result


def test_gd_convergence_plots_the_gap_to_the_scalar_optimum(small_run):
    problem, result = small_run
    fig = plots.gd_convergence(result, problem, highlight=0.2)
    assert len(fig.axes) == 4
    assert_labelled(fig)
    for delta, traj in result.trajectories.items():
        line = next(line for line in fig.axes[0].lines if line.get_label() == tables.delta_label(delta))
        f_star = optimal_value_by_scalar_search(problem.replace(delta=delta))
        np.testing.assert_allclose(line.get_xdata(), traj.step)
        gap = traj.objective - f_star
        shown = gap > 1e-9  # below that the plotted value is clipped and the scalar search's accuracy ends
        np.testing.assert_allclose(line.get_ydata()[shown], gap[shown], rtol=1e-6)
    highlighted = [line for line in fig.axes[1].lines if line.get_linewidth() > 2]
    assert [line.get_label() for line in highlighted] == [tables.delta_label(0.2)]
    with pytest.raises(ValueError, match="quantities"):
        plots.gd_convergence(result, problem, quantities=["loss"])


# explorers ------------------------------------------------------------------------------------


def titled(fig, start):
    """The axes of ``fig`` whose title starts with ``start``."""
    return next(ax for ax in fig.axes if ax.get_title().startswith(start))


def drawn(draw, delta, figsize=(10, 4)):
    """``draw`` of one δ, into a figure of ``figsize`` as a δ explorer hands it over."""
    fig = Figure(figsize=figsize, layout="constrained")
    assert draw(delta, fig=fig) is fig
    return fig


@pytest.mark.parametrize("K", [3, 4, 6])
@pytest.mark.parametrize("delta", [0.3, 0.9])
def test_geometry_is_a_simplex_of_the_closed_form_size(K, delta):
    n, lam_W, lam_H = 100, 5e-2, 5e-4
    fig = drawn(functools.partial(plots.ufm_geometry, num_classes=K), delta)
    assert_labelled(fig)
    ax = fig.axes[0]
    means = np.array([np.concatenate([np.atleast_1d(c) for c in (line.get_data_3d() if K == 4 else line.get_data())])
                      for line in ax.lines if line.get_markersize() == 9])
    assert len(means) == K
    w_ref, h_ref = norms_by_hand(K, n, lam_W, lam_H, delta)
    projection = 1.0 if K <= 4 else math.sqrt(2 / (K - 1))  # K >= 5 is drawn projected onto a plane
    np.testing.assert_allclose(np.linalg.norm(means, axis=1), h_ref * projection, atol=1e-12)
    if h_ref > 0 and K <= 4:
        unit = means / np.linalg.norm(means, axis=1, keepdims=True)
        cosines = (unit @ unit.T)[np.triu_indices(K, 1)]
        np.testing.assert_allclose(cosines, -1 / (K - 1), atol=1e-12)
    if K != 4:
        arrows = np.array([a.xy for a in ax.texts])
        np.testing.assert_allclose(np.linalg.norm(arrows, axis=1), w_ref * projection, atol=1e-12)
    softmax = fig.axes[1].patches[K:]  # second bar group: the softmax output at the minimizer
    beta = delta + K * math.sqrt(n * lam_W * lam_H)
    p_star = 1 - (K - 1) * beta / K if beta < 1 else 1 / K
    assert softmax[0].get_height() == pytest.approx(p_star)
    assert sum(bar.get_height() for bar in softmax) == pytest.approx(1.0)


def test_geometry_axes_do_not_move_with_delta():
    limits = [drawn(plots.ufm_geometry, d).axes[0].get_xlim() for d in (0.0, 0.5)]
    assert limits[0] == limits[1]


@pytest.mark.slow
def test_every_explorer_draws_every_delta_with_labelled_axes(small_run):
    problem, result = small_run
    summary = functools.partial(plots.theory_at_delta, num_classes=3, per_class=4, dim=3, lambda_W=1e-2,
                                lambda_H=1e-2, lambda_b=1e-2, kappa_deltas=(0.0, 0.5))
    explorers = {
        "targets": plots.targets_and_loss,
        "geometry": plots.ufm_geometry,
        "geometry K=4": functools.partial(plots.ufm_geometry, num_classes=4),
        "theorem1": functools.partial(plots.theorem1_at_delta, num_classes=3, per_class=4, lambda_W=1e-2,
                                      lambda_H=1e-2),
        "summary": summary,
        "conditioning": functools.partial(plots.conditioning_at_delta, result=result, problem=problem),
    }
    for name, draw in explorers.items():
        for delta in (0.0, 0.2, 0.9):  # 0.9: beta >= 1 for the small problems
            fig = drawn(draw, delta, (9.5, 7))
            assert len(fig.axes) >= 2, name
            assert_labelled(fig)
        # without a figure, a new one of the size the explorers use, and pyplot is left alone
        fig = draw(0.2)
        assert isinstance(fig, Figure) and fig.get_size_inches()[0] >= 9, name
        assert plt.get_fignums() == []


def test_composite_explorers_place_the_chapter_figures_in_subfigures(small_run):
    problem, result = small_run
    fig = plots.theorem1_at_delta(0.1, num_classes=3, per_class=4, lambda_W=1e-2, lambda_H=1e-2)
    top, bottom = fig.subfigs
    assert isinstance(top, SubFigure) and [ax.get_title() for ax in top.axes] == \
        ["per-class norms", "margin", "training confidence"]
    assert len(bottom.axes) == 2
    fig = plots.conditioning_at_delta(0.2, result, problem)
    top, bottom = fig.subfigs
    assert [ax.get_title() for ax in top.axes] == ["objective gap f − f*", "NC1"]
    left, right = bottom.subfigs
    assert left.axes[0].get_title() == "condition numbers at the minimizer"
    assert right.axes[0].get_title().startswith("Hessian at δ = 0.2")


def test_theory_figures_draw_into_a_given_subfigure_and_clear_it(small_run):
    problem, result = small_run
    curves = ufm.theorem1_curves(4, 5, 2e-2, 2e-2, np.linspace(0, 0.9, 30))
    spectrum = hessian.reduced_spectrum(problem.replace(delta=0.1))
    kappas = [hessian.condition_numbers(problem.replace(delta=d)) for d in (0.0, 0.2)]
    draws = [lambda f: plots.theorem1_vs_delta(curves, fig=f),
             lambda f: plots.hessian_eigenvalues(spectrum.expand(), fig=f),
             lambda f: plots.spectrum_by_mode(spectrum, fig=f),
             lambda f: plots.condition_numbers_vs_delta(kappas, fig=f),
             lambda f: plots.gd_convergence(result, problem, fig=f)]
    parent = Figure(figsize=(12, 8), layout="constrained")
    for draw, sub in zip(draws, parent.subfigures(1, len(draws))):
        sub.add_subplot().set_title("stale")
        assert draw(sub) is sub
        assert sub.axes and all(ax.get_title() != "stale" for ax in sub.axes)
    assert plt.get_fignums() == []


def test_static_player_of_a_theory_explorer_has_one_frame_per_delta():
    html = widgets.delta_explorer(plots.ufm_geometry, deltas=[0.0, 0.5, 0.9], static=True, figsize=(6, 3))
    assert html.data.count("data:image/png;base64") == 3


def test_summary_marks_the_logit_condition_number_K_p_star():
    fig = drawn(functools.partial(plots.theory_at_delta, num_classes=3, per_class=4, dim=3, lambda_W=1e-2,
                                  lambda_H=1e-2, lambda_b=1e-2, kappa_deltas=(0.0, 0.5)), 0.25, (9.5, 7))
    ax = titled(fig, "condition numbers")
    logit = next(line for line in ax.lines if line.get_label() == plots.KAPPA_LABELS["logit"])
    beta = np.array([0.0, 0.25, 0.5]) + 3 * math.sqrt(4 * 1e-4)
    np.testing.assert_allclose(logit.get_ydata(), 3 - 2 * beta, rtol=1e-9)
    ece = next(line for line in fig.axes[2].lines if line.get_label().startswith("training ECE"))
    conf = next(line for line in fig.axes[2].lines if "Theorem 1" in line.get_label())
    np.testing.assert_allclose(ece.get_ydata() + conf.get_ydata(), 1.0)


def test_conditioning_uses_the_nearest_delta_that_was_run(small_run):
    problem, result = small_run
    fig = drawn(functools.partial(plots.conditioning_at_delta, result=result, problem=problem), 0.15, (9.5, 7))
    title = titled(fig, "Hessian").get_title()
    spectrum = hessian.reduced_spectrum(problem.replace(delta=0.2))
    assert "δ = 0.2" in title and f"κ = {spectrum.max / spectrum.min_nonzero():.3g}" in title
    thick = [line.get_label() for line in titled(fig, "NC1").lines if line.get_linewidth() > 2]
    assert thick == [tables.delta_label(0.2)]


def test_bad_input():
    fig = Figure()
    with pytest.raises(ValueError, match="delta"):
        plots.ufm_geometry(1.2, fig=fig)
    with pytest.raises(ValueError, match="num_classes"):
        plots.ufm_geometry(0.1, num_classes=1, fig=fig)
    with pytest.raises(ValueError, match="num_classes"):
        plots.targets_and_loss(0.1, num_classes=0, fig=fig)
    with pytest.raises(ValueError, match="kappa_deltas"):
        plots.theory_at_delta(0.1, kappa_deltas=(0.0, 1.5), fig=fig)
    with pytest.raises(ValueError, match="fig must be"):
        plots.ufm_geometry(0.1, fig=plt.gca())
