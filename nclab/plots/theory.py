"""The figures of the theory chapters (6-8): the unconstrained feature model, its Hessian and
gradient descent on it, and the drawings of one δ that the δ explorers step through.

Every function draws into ``fig`` (a :class:`matplotlib.figure.Figure` or
:class:`~matplotlib.figure.SubFigure`, cleared first) or into a new constrained-layout Figure,
never through pyplot, and returns it: make it a cell's last value to show it. The figures of one
δ (:func:`targets_and_loss`, :func:`ufm_geometry`, :func:`theorem1_at_delta`,
:func:`theory_at_delta`, :func:`conditioning_at_delta`) take δ first, so that
:func:`nclab.widgets.delta_explorer` can redraw them for every δ of its slider; the composite ones
place the figures of chapters 6 and 7 side by side in SubFigures. Heavy numbers are cached, so
each frame is quick to draw.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .. import losses
from .._checks import check_delta, check_num_classes
from ..descent import distances
from ..hessian import condition_numbers, reduced_spectrum
from .._deltas import delta_label
from ..ufm import UFM, simplex_basis, theorem1_curves
from ._base import prepare

__all__ = ["theorem1_vs_delta", "hessian_eigenvalues", "spectrum_by_mode", "condition_numbers_vs_delta",
           "gd_convergence", "KAPPA_LABELS", "targets_and_loss", "ufm_geometry", "theorem1_at_delta",
           "theory_at_delta", "conditioning_at_delta"]

#: Display names of the condition numbers of :class:`nclab.hessian.ConditionNumbers` (chapter 7).
KAPPA_LABELS = {
    "full": "full Hessian in (W, H, b)",
    "weights": "Hessian in W alone",
    "data": "loss term alone (no weight decay)",
    "logit": "softmax Hessian in the logits",
    "nc1": "λ_max / slowest within-class rate",
}
# Colours of the Hessian modes of nclab.hessian.Spectrum, by the start of their label.
_MODE_COLOURS = {"within/span": ("C3", "within-class, inside span(W)"),
                 "within/outside": ("C1", "within-class, outside span(W)"),
                 "mean/outside": ("C2", "class means and W, outside span(W)"),
                 "mean/": ("C0", "class means, W and b, inside span(W)")}
# A legend under the axes, for panels whose curves fill the whole plot.
_LEGEND_BELOW = dict(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
_GD_QUANTITIES = {"objective_gap": "objective gap f − f*", "nc1": "NC1",
                  "w_norm": "relative error of mean ‖w_k‖", "h_norm": "relative error of mean ‖μ_k‖"}


def theorem1_vs_delta(curves: dict, measured: dict | None = None, highlight: float | None = None,
                      fig: Figure | None = None) -> Figure:
    """Theorem 1 against δ: the norms, the logit margin and the training confidence (chapter 6).

    Panels: the per-class norms ‖w_k‖ and ‖μ_k‖; the margin z_y − z_j = log(K/β − K + 1); the
    softmax confidence on the true class p*(β) = 1 − (K − 1)β/K. Where β ≥ 1 the minimizer is
    W = H = 0 (margin 0, confidence 1/K) and the region is shaded.

    Parameters
    ----------
    curves : the dict of :func:`nclab.ufm.theorem1_curves` (arrays over δ)
    measured : optional dict with arrays "delta", "w_norm", "h_norm", "margin", "confidence"
        (e.g. from a numerical solver), drawn as open markers
    highlight : optional δ, marked by a dotted line and dots on the curves
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    deltas = np.asarray(curves["delta"], dtype=np.float64)
    fig = prepare(fig, (10, 3.4))
    ax_norm, ax_margin, ax_conf = fig.subplots(1, 3)
    panels = ((ax_norm, [("w_norm", "C0", "‖w_k‖"), ("h_norm", "C1", "‖μ_k‖")]),
              (ax_margin, [("margin", "C2", "log(K/β − K + 1)")]),
              (ax_conf, [("confidence", "C3", "p*(β) = 1 − (K−1)β/K")]))
    trivial = np.asarray(curves["beta"]) >= 1
    for ax, series in panels:
        if trivial.any():
            ax.axvspan(deltas[trivial].min(), deltas.max(), color="0.9", label="β ≥ 1: W = H = 0")
        for key, colour, label in series:
            ax.plot(deltas, curves[key], color=colour, label=f"{label} (Theorem 1)")
            if measured is not None:
                ax.plot(measured["delta"], measured[key], "o", mfc="none", color=colour, label=f"{label} (solver)")
            if highlight is not None:
                i = int(np.argmin(np.abs(deltas - highlight)))
                ax.plot(deltas[i], curves[key][i], "o", color="k", ms=5, zorder=5)
        if highlight is not None:
            ax.axvline(highlight, color="0.4", lw=0.8, ls=":")
        ax.set_xlabel("label smoothing δ")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_norm.set(ylabel="norm", title="per-class norms", ylim=(0, None))
    ax_margin.set(ylabel="logit margin z_y − z_j", title="margin", ylim=(0, None))
    ax_conf.set(ylabel="softmax probability of the true class", title="training confidence", ylim=(0, 1.02))
    return fig


def hessian_eigenvalues(eigenvalues, reference=None, rtol: float = 1e-9, title: str | None = None,
                        fig: Figure | None = None) -> Figure:
    """All eigenvalues of a (small, dense) Hessian, sorted, with its zeros visible (chapter 7).

    Eigenvalues whose absolute value is at most rtol times the largest absolute value count as
    zero: they are drawn in red at the bottom of the log axis and counted in the legend. The
    others are drawn at their absolute value (negative ones, if any, as triangles).

    Parameters
    ----------
    eigenvalues : array of eigenvalues (e.g. ``torch.linalg.eigvalsh`` of a dense Hessian)
    reference : optional array of the same length (e.g. ``Spectrum.expand()``), drawn as crosses
    rtol : relative threshold below which an eigenvalue counts as zero
    title : axes title
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    values = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())
    scale = float(np.abs(values).max())
    zero = np.abs(values) <= rtol * scale
    floor = 10 ** np.floor(np.log10(np.abs(values[~zero]).min())) / 10
    index = np.arange(1, len(values) + 1)
    fig = prepare(fig, (8, 3.8))
    ax = fig.subplots()
    positive, negative = ~zero & (values > 0), ~zero & (values < 0)
    ax.plot(index[positive], values[positive], "o", ms=4, color="C0", label=f"λ > 0 ({positive.sum()})")
    if negative.any():
        ax.plot(index[negative], -values[negative], "v", ms=4, color="C4", label=f"|λ|, λ < 0 ({negative.sum()})")
    ax.plot(index[zero], np.full(zero.sum(), floor), "o", ms=4, color="C3",
            label=f"zero, |λ| ≤ {rtol:g}·max|λ| ({zero.sum()})")
    if reference is not None:
        ref = np.sort(np.asarray(reference, dtype=np.float64).ravel())
        shown = np.abs(ref) > rtol * scale
        ax.plot(index[shown], np.abs(ref[shown]), "x", ms=5, color="k", label="reduced spectrum")
    ax.set_yscale("log")
    ax.set(xlabel="eigenvalue index (sorted)", ylabel="eigenvalue |λ| (log)", title=title or "Hessian eigenvalues")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def spectrum_by_mode(spectrum, xlim: tuple[float, float] | None = None, title: str | None = None,
                     fig: Figure | None = None) -> Figure:
    """A Hessian spectrum with multiplicities, coloured by the kind of mode (chapter 7).

    Each distinct eigenvalue is a stem at λ (log axis) whose height is its multiplicity (log
    axis). Zero eigenvalues (the rotation symmetry) are left out and counted in the title; the
    largest and the smallest nonzero eigenvalue are marked.

    Parameters
    ----------
    spectrum : :class:`nclab.hessian.Spectrum` (e.g. from :func:`nclab.hessian.reduced_spectrum`)
    xlim : fixed eigenvalue range, to compare several δ
    title : axes title
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    fig = prepare(fig, (7, 4.2))
    ax = fig.subplots()
    zero = np.abs(spectrum.eigenvalues) <= 1e-9 * spectrum.abs_max
    drawn = set()
    for value, mult, mode, is_zero in zip(spectrum.eigenvalues, spectrum.multiplicities, spectrum.modes, zero):
        if is_zero:
            continue
        prefix = next(p for p in _MODE_COLOURS if mode.startswith(p))
        colour, label = _MODE_COLOURS[prefix]
        ax.vlines(abs(value), 0.8, mult, color=colour, lw=1.5, label=None if prefix in drawn else label)
        ax.plot(abs(value), mult, "o", ms=4, color=colour)
        drawn.add(prefix)
    lam_max, lam_min = spectrum.max, spectrum.min_nonzero()
    ax.axvline(lam_max, color="k", ls="--", lw=0.8, label=f"λ_max = {lam_max:.3g}")
    ax.axvline(lam_min, color="k", ls=":", lw=0.8, label=f"λ_min+ = {lam_min:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(0.8, None)
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set(xlabel="eigenvalue λ (log)", ylabel="multiplicity (log)",
           title=title or f"{spectrum.dim} eigenvalues, {spectrum.num_zero()} of them zero (not shown)")
    ax.grid(alpha=0.3)
    ax.legend(**_LEGEND_BELOW)
    return fig


def condition_numbers_vs_delta(kappas, keys=tuple(KAPPA_LABELS), title: str | None = None,
                               fig: Figure | None = None) -> Figure:
    """Several condition numbers of the UFM Hessian at the minimizer against δ, log scale (chapter 7).

    Parameters
    ----------
    kappas : list of :class:`nclab.hessian.ConditionNumbers`, one per δ
    keys : which definitions to draw, among the keys of ``KAPPA_LABELS``
    title : axes title
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    kappas = sorted(kappas, key=lambda k: k.delta)
    unknown = [key for key in keys if key not in KAPPA_LABELS]
    if not kappas or unknown:
        raise ValueError(f"kappas must be a non-empty list and keys among {list(KAPPA_LABELS)}, got {list(keys)}")
    deltas = [k.delta for k in kappas]
    fig = prepare(fig, (7, 4.6))
    ax = fig.subplots()
    markers = "osD^v"
    for i, key in enumerate(keys):
        ax.plot(deltas, [getattr(k, key) for k in kappas], marker=markers[i % len(markers)], ms=4,
                color=f"C{i}", label=KAPPA_LABELS[key])
    ax.set_yscale("log")
    ax.set(xlabel="label smoothing δ", ylabel="condition number κ (log)",
           title=title or "condition numbers at the minimizer")
    ax.grid(alpha=0.3, which="both")
    ax.legend(**_LEGEND_BELOW)
    return fig


def gd_convergence(result, problem, quantities=tuple(_GD_QUANTITIES), highlight: float | None = None,
                   fig: Figure | None = None) -> Figure:
    """Gradient descent on the UFM for several δ: distance to Theorem 1's minimizer per step (chapter 7).

    One panel per quantity, two per row, one line per δ, log scale: the objective gap f − f*
    (f* of the closed form), NC1, and the relative errors of the mean norms ‖w_k‖ and ‖μ_k‖
    (absolute values where β ≥ 1 and the minimizer is 0), as :func:`nclab.descent.distances`
    measures them.

    Parameters
    ----------
    result : :class:`nclab.descent.ConvergenceResult` from :func:`nclab.descent.convergence_experiment`
    problem : the :class:`nclab.ufm.UFM` it ran (any δ; the minimizers are taken at each δ)
    quantities : panels, among "objective_gap", "nc1", "w_norm", "h_norm"
    highlight : optional δ drawn thick in black, the others thin
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    unknown = [q for q in quantities if q not in _GD_QUANTITIES]
    if not quantities or unknown:
        raise ValueError(f"quantities must be among {list(_GD_QUANTITIES)}, got {list(quantities)}")
    deltas = sorted(result.trajectories)
    chosen = None if highlight is None else min(deltas, key=lambda d: abs(d - highlight))
    rows = -(-len(quantities) // 2)
    fig = prepare(fig, (9, 3.3 * rows))
    axes = np.atleast_1d(fig.subplots(rows, min(2, len(quantities)))).ravel()
    ramp = colormaps["plasma"]
    for i, delta in enumerate(deltas):
        traj = result.trajectories[delta]
        series = distances(traj, problem.replace(delta=delta).closed_form())
        style = dict(color=ramp(0.8 * i / max(len(deltas) - 1, 1)), lw=1.3, label=delta_label(delta))
        if delta == chosen:
            style.update(color="k", lw=2.4, zorder=5)
        elif chosen is not None:
            style.update(alpha=0.35, lw=1.0)
        for ax, key in zip(axes, quantities):
            ax.plot(traj.step, np.maximum(series[key], 1e-17), **style)
    for ax, key in zip(axes, quantities):
        ax.axhline(result.thresholds[key], color="0.5", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set(xlabel="gradient-descent step", ylabel=_GD_QUANTITIES[key], title=_GD_QUANTITIES[key])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, title="δ (dashed: threshold)", title_fontsize=7)
    return fig


# figures of one δ, for the δ explorers (chapters 1, 6-8) ------------------------------


def _class_bars(ax, grey: tuple, blue: tuple, ylabel: str, title: str) -> None:
    """Two probability vectors over the classes side by side, each a (values, label) pair: a grey
    reference and a blue one."""
    K = len(grey[0])
    for offset, (values, label), colour in ((-0.2, grey, "0.75"), (0.2, blue, "C0")):
        ax.bar(np.arange(K) + offset, values, width=0.4, color=colour, label=label)
    ax.set(xlabel="class", ylabel=ylabel, ylim=(0, 1.05), xticks=range(K), title=title)
    ax.legend(loc="upper right", fontsize=8)


def targets_and_loss(delta: float, num_classes: int = 5, fig: Figure | None = None) -> Figure:
    """Smoothed target and the LS loss against the logit margin, for one δ (chapters 1 and 8).

    Left: the smoothed target q = (1 − δ) e_0 + δ/K for a sample of class 0, beside the one-hot
    target. Right: the loss of logits whose true class leads every other class by m, for CE (grey)
    and for LS at δ, with the optimal margin m*(δ) = log(1 + K(1 − δ)/δ) and confidence marked.

    Parameters
    ----------
    delta : smoothing in [0, 1)
    num_classes : K >= 2
    fig : a Figure or SubFigure to draw into (cleared first); default a new 9 x 3.6 inch Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.

    Examples
    --------
    >>> fig = targets_and_loss(0.1)
    >>> [ax.get_title() for ax in fig.axes]
    ['targets for a sample of class 0', 'loss against the margin']
    >>> nclab.widgets.delta_explorer(targets_and_loss, deltas=[0.0, 0.1, 0.2])  # doctest: +SKIP
    """
    delta, K = check_delta(delta), check_num_classes(num_classes)
    fig = prepare(fig, (9.0, 3.6))
    ax_q, ax_loss = fig.subplots(1, 2)
    q = losses.smoothed_targets([0], K, delta)[0].numpy()
    _class_bars(ax_q, (np.eye(K)[0], "one-hot (CE)"), (q, "smoothed target q"), "target probability",
                "targets for a sample of class 0")
    m = np.linspace(0, 12, 300)
    ax_loss.plot(m, losses.margin_loss(m, K, 0.0), color="0.6", label="CE (δ = 0)")
    ax_loss.plot(m, losses.margin_loss(m, K, delta), color="C0", label="LS")
    m_star = losses.optimal_margin(K, delta)
    if math.isfinite(m_star):
        ax_loss.plot(m_star, losses.margin_loss(m_star, K, delta), "o", color="C3",
                     label=f"m*(δ) = {m_star:.2f}, p*(δ) = {1 - (K - 1) * delta / K:.2f}")
    ax_loss.set(xlabel="logit margin m = z_y − z_j", ylabel="loss", ylim=(0, 1.8), title="loss against the margin")
    ax_loss.legend(loc="upper right", fontsize=8)
    return fig


def _etf_directions(num_classes: int) -> tuple[np.ndarray, float]:
    """Unit vectors of a K-point simplex ETF in 2-D (K = 2, 3), 3-D (K = 4), or their projection
    onto a plane (K >= 5): the plane of the first Fourier mode, where the K points form a regular
    polygon of radius sqrt(2/(K-1)). Returns (K x dims array, length factor of the drawing)."""
    K = num_classes
    if K <= 4:
        Q = simplex_basis(K).numpy()
        directions = Q / np.linalg.norm(Q, axis=1, keepdims=True)
        return (np.hstack([directions, np.zeros((K, 1))]) if K == 2 else directions), 1.0
    angles = 2 * np.pi * np.arange(K) / K + np.pi / 2
    factor = math.sqrt(2 / (K - 1))
    return factor * np.stack([np.cos(angles), np.sin(angles)], axis=1), factor


def _draw_etf(ax, num_classes: int, w_norm: float, h_norm: float, reference: tuple[float, float]) -> None:
    """Classifier rows (arrows) and class means (dots) of Theorem 1's minimizer on ``ax``, with the
    configuration of ``reference`` norms (e.g. δ = 0) in grey, on a fixed axis range."""
    K = num_classes
    points, factor = _etf_directions(K)
    three_d = points.shape[1] == 3
    ring = list(range(K)) + [0]
    pairs = [(i, j) for i in range(K) for j in range(i + 1, K)] if three_d else list(zip(ring, ring[1:]))
    for norm, style in ((reference[1], dict(color="0.7", ls="--", lw=0.8)), (h_norm, dict(color="0.3", lw=1.0))):
        for i, j in pairs:
            ax.plot(*np.stack([points[i], points[j]]).T * norm, **style)
    for k in range(K):
        colour = f"C{k % 10}"
        ax.plot(*(points[k] * reference[0])[:, None], "o", mfc="none", color="0.6", ms=5)
        if three_d:
            ax.quiver(0, 0, 0, *(points[k] * w_norm), color=colour, lw=2, arrow_length_ratio=0.12)
        else:
            ax.annotate("", xy=points[k] * w_norm, xytext=(0, 0),
                        arrowprops=dict(arrowstyle="-|>", color=colour, lw=2))
        ax.plot(*(points[k] * h_norm)[:, None], "o", color=colour, ms=9, mec="k", zorder=5)
    limit = 1.15 * max(reference) * factor
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    if three_d:
        ax.set_zlim(-limit, limit)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=18, azim=35)
        ax.set(xlabel="feature 1", ylabel="feature 2", zlabel="feature 3")
    else:
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        names = ("feature 1", "feature 2") if factor == 1.0 else ("projection 1", "projection 2")
        ax.set(xlabel=names[0], ylabel=names[1])
    ax.plot([], [], "o", color="C0", mec="k", label="class means μ_k")
    ax.plot([], [], "-", color="C0", lw=2, label="classifier rows w_k")
    ax.plot([], [], "o", mfc="none", color="0.6", label="w_k at δ = 0")
    ax.plot([], [], "--", color="0.7", label="μ_k at δ = 0")
    ax.legend(fontsize=7, loc="upper left" if three_d else "lower left")


def ufm_geometry(delta: float, num_classes: int = 3, per_class: int = 100, lambda_W: float = 5e-2,
                 lambda_H: float = 5e-4, fig: Figure | None = None) -> Figure:
    """The UFM minimizer of Theorem 1 drawn to scale, for one δ (chapters 6 and 8).

    Left: the class means μ_k (dots) and the classifier rows w_k (arrows) of the minimizer; they
    point the same way (self-duality) and form a simplex ETF whose size follows the closed-form
    norms. K = 3 is a triangle in the plane, K = 4 a tetrahedron in 3-D; for K >= 5 the picture is a
    projection onto a plane (a regular polygon). The axes are fixed and the δ = 0 configuration is
    drawn in grey, so the shrinking with δ is visible; at β >= 1 everything sits at the origin.
    Right: the softmax output of the minimizer for a sample of class 0, p*(β) on the true class,
    against the smoothed target q.

    Parameters
    ----------
    delta : smoothing in [0, 1)
    num_classes : K >= 2
    per_class, lambda_W, lambda_H : the UFM (see :class:`nclab.ufm.UFM`); the defaults make
        ‖w_k‖ = ‖μ_k‖ (n lambda_H = lambda_W) and reach β = 1 at δ = 1 − K sqrt(n lambda_W lambda_H)
        (0.85 for K = 3)
    fig : a Figure or SubFigure to draw into (cleared first); default a new 9.5 x 4.4 inch Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.

    Examples
    --------
    >>> fig = ufm_geometry(0.3, num_classes=4)
    >>> fig.axes[0].name
    '3d'
    """
    delta, K = check_delta(delta), check_num_classes(num_classes)
    t = theorem1_curves(K, per_class, lambda_W, lambda_H, [0.0, delta])
    fig = prepare(fig, (9.5, 4.4))
    grid = fig.add_gridspec(1, 2, width_ratios=(1.25, 1))
    ax_geo = fig.add_subplot(grid[0], projection="3d" if K == 4 else None)
    _draw_etf(ax_geo, K, t["w_norm"][1], t["h_norm"][1], (t["w_norm"][0], t["h_norm"][0]))
    beta = t["beta"][1]
    ax_geo.set_title(f"K = {K}: β = {beta:.3f}, ‖w_k‖ = {t['w_norm'][1]:.2f}, ‖μ_k‖ = {t['h_norm'][1]:.2f}"
                     + ("  (β ≥ 1: W = H = 0)" if beta >= 1 else ""), fontsize=9)
    ax_p = fig.add_subplot(grid[1])
    confidence = t["confidence"][1]
    p = np.full(K, (1 - confidence) / (K - 1))
    p[0] = confidence
    q = np.full(K, delta / K)
    q[0] += 1 - delta
    _class_bars(ax_p, (q, "smoothed target q"), (p, f"softmax at the minimizer (p*(β) = {confidence:.3f})"),
                "probability", f"a sample of class 0: margin {t['margin'][1]:.2f}")
    return fig


def _curve_grid(delta: float, max_delta: float) -> np.ndarray:
    return np.union1d(np.linspace(0.0, max(max_delta, delta), 181), [delta])


def theorem1_at_delta(delta: float, num_classes: int = 10, per_class: int = 5000, lambda_W: float = 1e-3,
                      lambda_H: float = 1e-6, max_delta: float = 0.5, fig: Figure | None = None) -> Figure:
    """Theorem 1 against δ with δ marked, above the minimizer itself (chapter 6).

    Top: the norms, margin and confidence of :func:`theorem1_vs_delta`, the chosen δ marked.
    Bottom: the minimizer of :func:`ufm_geometry` at δ (a plane projection for
    K >= 5) and its softmax output. Defaults: the paper's setting K = 10, n = 5000,
    lambda_W = 1e-3, lambda_H = 1e-6. Drawn for a figure of about 9.5 x 7 inches.

    Parameters
    ----------
    delta : smoothing in [0, 1)
    num_classes, per_class, lambda_W, lambda_H : the UFM (see :class:`nclab.ufm.UFM`)
    max_delta : right end of the δ axis
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure of that size

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into: two SubFigures, one above the other.
    """
    delta, K = check_delta(delta), check_num_classes(num_classes)
    curves = theorem1_curves(K, per_class, lambda_W, lambda_H, _curve_grid(delta, max_delta))
    fig, top, bottom = _above_and_below(fig, 1.25)
    theorem1_vs_delta(curves, highlight=delta, fig=top)
    ufm_geometry(delta, K, per_class, lambda_W, lambda_H, fig=bottom)
    return fig


@lru_cache(maxsize=256)
def _condition_numbers(problem: UFM, delta: float):
    return condition_numbers(problem.replace(delta=delta))


@lru_cache(maxsize=64)
def _reduced_spectrum(problem: UFM, delta: float):
    return reduced_spectrum(problem.replace(delta=delta))


def theory_at_delta(delta: float, num_classes: int = 10, per_class: int = 5000, dim: int = 512,
                    lambda_W: float = 1e-3, lambda_H: float = 1e-6, lambda_b: float = 1e-2,
                    kappa_deltas=tuple(np.round(np.linspace(0.0, 0.9, 10), 2)),
                    fig: Figure | None = None) -> Figure:
    """Everything Theorem 1 and the Hessian say about one δ (chapter 8).

    Top: per-class norms, logit margin, training confidence p*(β) = 1 − (K − 1)β/K with the
    training calibration error 1 − p*(β) (every training sample is classified correctly at the
    minimizer, with confidence p*(β)). Bottom: the condition numbers of
    :func:`nclab.hessian.condition_numbers` on the grid ``kappa_deltas`` (computed once and
    cached) with δ marked, and the Hessian spectrum at δ. Defaults: the paper's CIFAR-10 scale,
    K = 10, n = 5000, d = 512. Drawn for a figure of about 9.5 x 7 inches.

    Parameters
    ----------
    delta : smoothing in [0, 1)
    num_classes, per_class, dim, lambda_W, lambda_H, lambda_b : the UFM (see :class:`nclab.ufm.UFM`)
    kappa_deltas : δ grid of the condition-number panel
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure of that size

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into: a SubFigure above two side by side.
    """
    delta = check_delta(delta)
    problem = UFM(num_classes, per_class, dim, lambda_W, lambda_H, lambda_b)
    grid = [check_delta(d, "kappa_deltas") for d in kappa_deltas]
    curves = theorem1_curves(problem.num_classes, per_class, lambda_W, lambda_H, _curve_grid(delta, max(grid)))
    fig, top, bottom = _above_and_below(fig, 1.15)
    theorem1_vs_delta(curves, highlight=delta, fig=top)
    ax_conf = top.axes[2]
    ax_conf.plot(curves["delta"], 1 - curves["confidence"], color="C4", ls="--", label="training ECE = 1 − p*(β)")
    ax_conf.legend(fontsize=7)
    _kappas_and_spectrum(bottom, problem, delta, grid, "condition numbers (chapter 7)",
                         f"Hessian spectrum at δ = {delta:g}")
    return fig


def _above_and_below(fig, lower: float) -> tuple:
    """``fig`` prepared (a new one is 9.5 x 7 inches), and two SubFigures in it, one above the other
    (heights 1 and ``lower``)."""
    fig = prepare(fig, (9.5, 7))
    return (fig, *fig.subfigures(2, 1, height_ratios=(1, lower)))


def _kappas_and_spectrum(fig, problem, delta: float, grid, kappa_title: str, spectrum_title: str) -> None:
    """Side by side in ``fig``: the condition numbers over ``grid`` with ``delta`` marked, and the Hessian
    spectrum at ``delta`` on an eigenvalue axis that holds the spectra of the whole grid."""
    left, right = fig.subfigures(1, 2)
    _draw_kappas(left, problem, delta, grid, kappa_title)
    spectrum_by_mode(_reduced_spectrum(problem, delta), xlim=_spectrum_range(problem, grid), fig=right,
                     title=spectrum_title)


def _spectrum_range(problem, deltas) -> tuple[float, float]:
    """An eigenvalue axis that holds the nonzero spectra of all ``deltas``."""
    kappas = [_condition_numbers(problem, d) for d in deltas]
    return min(k.full_min for k in kappas) / 2, max(k.full_max for k in kappas) * 2


def _draw_kappas(fig, problem, delta: float, grid, title: str) -> None:
    """The condition numbers over ``grid`` with the values at ``delta`` marked."""
    kappas = [_condition_numbers(problem, d) for d in sorted(set(grid) | {delta})]
    condition_numbers_vs_delta(kappas, fig=fig, title=title)
    ax = fig.axes[0]
    ax.axvline(delta, color="0.4", lw=0.8, ls=":")
    current = _condition_numbers(problem, delta)
    for i, key in enumerate(KAPPA_LABELS):
        ax.plot(delta, getattr(current, key), "o", color=f"C{i}", mec="k", ms=6, zorder=5)


def conditioning_at_delta(delta: float, result, problem: UFM, fig: Figure | None = None) -> Figure:
    """Gradient descent, the condition numbers and the Hessian spectrum, for one δ (chapter 7).

    Top: the objective gap and NC1 of gradient descent (:func:`gd_convergence`),
    the chosen δ in black. Bottom: the condition numbers of every δ of ``result`` with the chosen
    one marked, and the exact spectrum of the Hessian at that δ's minimizer
    (:func:`nclab.hessian.reduced_spectrum`) on an eigenvalue axis shared by all δ. The δ drawn
    is the one of ``result`` nearest to ``delta``. Drawn for a figure of about 9.5 x 7 inches.

    Parameters
    ----------
    delta : smoothing in [0, 1)
    result : :class:`nclab.descent.ConvergenceResult` of :func:`nclab.descent.convergence_experiment`
    problem : the :class:`nclab.ufm.UFM` that ``result`` ran (any δ)
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure of that size

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into: a SubFigure above two side by side.

    Examples
    --------
    >>> explore = functools.partial(conditioning_at_delta, result=result, problem=problem)  # doctest: +SKIP
    >>> nclab.widgets.delta_explorer(explore, deltas=sorted(result.trajectories))          # doctest: +SKIP
    """
    delta = check_delta(delta)
    deltas = sorted(result.trajectories)
    nearest = min(deltas, key=lambda d: abs(d - delta))
    fig, top, bottom = _above_and_below(fig, 1.15)
    gd_convergence(result, problem, quantities=("objective_gap", "nc1"), highlight=nearest, fig=top)
    spectrum = _reduced_spectrum(problem, nearest)
    _kappas_and_spectrum(bottom, problem, nearest, deltas, "condition numbers at the minimizer",
                         f"Hessian at δ = {nearest:g}: κ = {spectrum.max / spectrum.min_nonzero():.3g}")
    return fig
