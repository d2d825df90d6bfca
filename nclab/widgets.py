"""Live delta explorers (chapters 1 and 6-8).

Every explorer in the book is a drawing function ``draw(fig, delta)`` that fills a Matplotlib
figure for one value of the smoothing parameter. :func:`delta_explorer` turns it into

- a live ipywidgets slider when a Jupyter kernel is attached (JupyterLab, Colab): moving the
  slider redraws the figure for the new delta;
- a kernel-free animation on the static book site (``NCLAB_STATIC=1``, set by ``make book``):
  the figure is drawn once per delta on a grid and stored as frames of a JavaScript player whose
  slider steps through delta. It needs no Python and no network.

The drawing functions below are the explorers of the theory chapters, collected in the delta
playground (chapter 8): smoothed targets and the loss (:func:`draw_targets_and_loss`), the
geometry of the UFM minimizer (:func:`draw_ufm_geometry`), Theorem 1's numbers
(:func:`draw_theorem1`, :func:`draw_delta_summary`) and the Hessian with gradient descent
(:func:`draw_conditioning`). Heavy numbers are cached, so each frame is quick to draw.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from functools import lru_cache

import matplotlib.pyplot as plt
import numpy as np

from ._checks import check_delta, check_num_classes

__all__ = ["delta_explorer", "is_static", "DEFAULT_DELTAS", "draw_targets_and_loss", "draw_ufm_geometry",
           "draw_theorem1", "draw_delta_summary", "draw_conditioning"]

DEFAULT_DELTAS = tuple(np.round(np.linspace(0.0, 0.5, 11), 3))

DrawFn = Callable[[plt.Figure, float], None]


def is_static() -> bool:
    """True when output is being rendered for the static site (environment ``NCLAB_STATIC=1``)."""
    return os.environ.get("NCLAB_STATIC", "0").strip().lower() in ("1", "true", "yes")


def _title(fig: plt.Figure, delta: float) -> None:
    label = "cross-entropy" if delta == 0 else "label smoothing"
    fig.suptitle(f"δ = {delta:.3g}  ({label})", fontsize=12)


def _static_player(draw: DrawFn, deltas: Sequence[float], figsize):
    from matplotlib.animation import FuncAnimation
    from IPython.display import HTML

    fig = plt.figure(figsize=figsize, layout="constrained")

    def frame(i: int):
        fig.clear()
        draw(fig, float(deltas[i]))
        _title(fig, float(deltas[i]))
        return []

    animation = FuncAnimation(fig, frame, frames=len(deltas), blit=False)
    html = animation.to_jshtml(fps=2, default_mode="once")
    plt.close(fig)
    note = (
        "<p style='font-size:0.85em;color:#555'>Drag the slider to step through "
        f"δ = {deltas[0]:g} … {deltas[-1]:g} (precomputed frames; run the chapter in Jupyter or "
        "Colab for the live version).</p>"
    )
    return HTML(note + html)


def _live_widget(draw: DrawFn, deltas: Sequence[float], figsize, start: int):
    import ipywidgets as widgets

    slider = widgets.SelectionSlider(
        options=[(f"{d:g}", float(d)) for d in deltas], value=float(deltas[start]),
        description="δ", continuous_update=False,
    )

    def update(delta: float) -> None:
        fig = plt.figure(figsize=figsize, layout="constrained")
        draw(fig, check_delta(delta))
        _title(fig, delta)
        plt.show()

    return widgets.interactive(update, delta=slider)


def delta_explorer(
    draw: DrawFn,
    deltas: Sequence[float] = DEFAULT_DELTAS,
    value: float | None = None,
    figsize: tuple[float, float] = (9.0, 3.6),
    static: bool | None = None,
):
    """Explore a figure as a function of the smoothing parameter delta.

    Parameters
    ----------
    draw : callable ``draw(fig, delta)`` that draws on an empty Matplotlib figure
    deltas : the grid of delta values (each in [0, 1)); the live slider and the static player
        both step through exactly these values
    value : starting delta (the grid value nearest to it); default the second grid value
    figsize : figure size in inches
    static : force the kernel-free player (True) or the live widget (False); default
        :func:`is_static`

    Returns
    -------
    An ``ipywidgets.interactive`` (live) or an ``IPython.display.HTML`` player (static); display
    it by leaving it as the last expression of a cell.

    Example
    -------
    >>> def draw(fig, delta):
    ...     ax = fig.add_subplot()
    ...     ax.bar(range(3), nclab.losses.smoothed_targets([0], 3, delta)[0])
    >>> nclab.widgets.delta_explorer(draw, deltas=[0, 0.1, 0.2])  # doctest: +SKIP
    """
    if not callable(draw):
        raise ValueError(f"draw must be a function draw(fig, delta), got {type(draw).__name__}")
    grid = [check_delta(d, "deltas") for d in deltas]
    if len(grid) == 0:
        raise ValueError("deltas must hold at least one value")
    if any(b <= a for a, b in zip(grid, grid[1:])):
        raise ValueError("deltas must be strictly increasing")
    target = grid[min(1, len(grid) - 1)] if value is None else check_delta(value, "value")
    start = int(np.argmin([abs(d - target) for d in grid]))
    use_static = is_static() if static is None else bool(static)
    if use_static:
        return _static_player(draw, grid, figsize)
    return _live_widget(draw, grid, figsize, start)


# explorers of the theory chapters (6-8) ---------------------------------------------------------


def draw_targets_and_loss(fig: plt.Figure, delta: float, num_classes: int = 5) -> None:
    """Smoothed target and the LS loss against the logit margin, for one δ (chapters 1 and 8).

    Left: the smoothed target q = (1 − δ) e_0 + δ/K for a sample of class 0, beside the one-hot
    target. Right: the loss of logits whose true class leads every other class by m, for CE (grey)
    and for LS at δ, with the optimal margin m* = log(1 + K(1 − δ)/δ) and confidence marked.

    Parameters
    ----------
    fig : the figure to draw on
    delta : smoothing in [0, 1)
    num_classes : K >= 2
    """
    from . import losses

    delta, K = check_delta(delta), check_num_classes(num_classes)
    ax_q, ax_loss = fig.subplots(1, 2)
    q = losses.smoothed_targets([0], K, delta)[0].numpy()
    ax_q.bar(np.arange(K) - 0.2, np.eye(K)[0], width=0.4, color="0.75", label="one-hot (CE)")
    ax_q.bar(np.arange(K) + 0.2, q, width=0.4, color="C0", label="smoothed target q")
    ax_q.set(xlabel="class", ylabel="target probability", ylim=(0, 1.05), xticks=range(K),
             title="targets for a sample of class 0")
    ax_q.legend(loc="upper right", fontsize=8)
    m = np.linspace(0, 12, 300)
    ax_loss.plot(m, losses.margin_loss(m, K, 0.0), color="0.6", label="CE (δ = 0)")
    ax_loss.plot(m, losses.margin_loss(m, K, delta), color="C0", label="LS")
    m_star = losses.optimal_margin(K, delta)
    if math.isfinite(m_star):
        ax_loss.plot(m_star, losses.margin_loss(m_star, K, delta), "o", color="C3",
                     label=f"m* = {m_star:.2f}, p* = {1 - (K - 1) * delta / K:.2f}")
    ax_loss.set(xlabel="logit margin m = z_y − z_j", ylabel="loss", ylim=(0, 1.8), title="loss against the margin")
    ax_loss.legend(loc="upper right", fontsize=8)


def _etf_directions(num_classes: int) -> tuple[np.ndarray, float]:
    """Unit vectors of a K-point simplex ETF in 2-D (K = 2, 3), 3-D (K = 4), or their projection
    onto a plane (K >= 5): the plane of the first Fourier mode, where the K points form a regular
    polygon of radius sqrt(2/(K-1)). Returns (K x dims array, length factor of the drawing)."""
    from .ufm import simplex_basis

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
    ax.plot([], [], "o", color="C0", mec="k", label="class means h̄_k")
    ax.plot([], [], "-", color="C0", lw=2, label="classifier rows w_k")
    ax.plot([], [], "o", mfc="none", color="0.6", label="w_k at δ = 0")
    ax.plot([], [], "--", color="0.7", label="h̄_k at δ = 0")
    ax.legend(fontsize=7, loc="upper left" if three_d else "lower left")


def draw_ufm_geometry(fig: plt.Figure, delta: float, num_classes: int = 3, per_class: int = 100,
                      lambda_W: float = 5e-2, lambda_H: float = 5e-4) -> None:
    """The UFM minimizer of Theorem 1 drawn to scale, for one δ (chapters 6 and 8).

    Left: the class means h̄_k (dots) and the classifier rows w_k (arrows) of the minimizer; they
    point the same way (self-duality) and form a simplex ETF whose size follows the closed-form
    norms. K = 3 is a triangle in the plane, K = 4 a tetrahedron in 3-D; for K >= 5 the picture is a
    projection onto a plane (a regular polygon). The axes are fixed and the δ = 0 configuration is
    drawn in grey, so the shrinking with δ is visible; at β >= 1 everything sits at the origin.
    Right: the softmax output of the minimizer for a sample of class 0, p* on the true class,
    against the smoothed target q.

    Parameters
    ----------
    fig : the figure to draw on
    delta : smoothing in [0, 1)
    num_classes : K >= 2
    per_class, lambda_W, lambda_H : the UFM (see :class:`nclab.ufm.UFM`); the defaults make
        ‖w_k‖ = ‖h̄_k‖ (n lambda_H = lambda_W) and reach β = 1 at δ = 1 − K sqrt(n lambda_W lambda_H)
        (0.85 for K = 3)
    """
    from .ufm import theorem1_curves

    delta, K = check_delta(delta), check_num_classes(num_classes)
    t = theorem1_curves(K, per_class, lambda_W, lambda_H, [0.0, delta])
    grid = fig.add_gridspec(1, 2, width_ratios=(1.25, 1))
    ax_geo = fig.add_subplot(grid[0], projection="3d" if K == 4 else None)
    _draw_etf(ax_geo, K, t["w_norm"][1], t["h_norm"][1], (t["w_norm"][0], t["h_norm"][0]))
    beta = t["beta"][1]
    ax_geo.set_title(f"K = {K}: β = {beta:.3f}, ‖w_k‖ = {t['w_norm'][1]:.2f}, ‖h̄_k‖ = {t['h_norm'][1]:.2f}"
                     + ("  (β ≥ 1: W = H = 0)" if beta >= 1 else ""), fontsize=9)
    ax_p = fig.add_subplot(grid[1])
    confidence = t["confidence"][1]
    p = np.full(K, (1 - confidence) / (K - 1))
    p[0] = confidence
    q = np.full(K, delta / K)
    q[0] += 1 - delta
    ax_p.bar(np.arange(K) - 0.2, q, width=0.4, color="0.75", label="smoothed target q")
    ax_p.bar(np.arange(K) + 0.2, p, width=0.4, color="C0", label=f"softmax at the minimizer (p* = {confidence:.3f})")
    ax_p.set(xlabel="class", ylabel="probability", ylim=(0, 1.05), xticks=range(K),
             title=f"a sample of class 0: margin {t['margin'][1]:.2f}")
    ax_p.legend(fontsize=8, loc="upper right")


def _curve_grid(delta: float, max_delta: float) -> np.ndarray:
    return np.union1d(np.linspace(0.0, max(max_delta, delta), 181), [delta])


def draw_theorem1(fig: plt.Figure, delta: float, num_classes: int = 10, per_class: int = 5000,
                  lambda_W: float = 1e-3, lambda_H: float = 1e-6, max_delta: float = 0.5) -> None:
    """Theorem 1 against δ with δ marked, above the minimizer itself (chapter 6).

    Top: the norms, margin and confidence of :func:`nclab.plots.theorem1_vs_delta`, the chosen δ
    marked. Bottom: the minimizer of :func:`draw_ufm_geometry` at δ (a plane projection for
    K >= 5) and its softmax output. Defaults: the paper's setting K = 10, n = 5000,
    lambda_W = 1e-3, lambda_H = 1e-6. Drawn for a figure of about 9.5 x 7 inches.

    Parameters
    ----------
    fig : the figure to draw on
    delta : smoothing in [0, 1)
    num_classes, per_class, lambda_W, lambda_H : the UFM (see :class:`nclab.ufm.UFM`)
    max_delta : right end of the δ axis
    """
    from .plots import theorem1_vs_delta
    from .ufm import theorem1_curves

    delta, K = check_delta(delta), check_num_classes(num_classes)
    curves = theorem1_curves(K, per_class, lambda_W, lambda_H, _curve_grid(delta, max_delta))
    top, bottom = fig.subfigures(2, 1, height_ratios=(1, 1.25))
    theorem1_vs_delta(curves, highlight=delta, fig=top)
    draw_ufm_geometry(bottom, delta, K, per_class, lambda_W, lambda_H)


@lru_cache(maxsize=256)
def _condition_numbers(problem, delta: float):
    from .hessian import condition_numbers

    return condition_numbers(problem.replace(delta=delta))


@lru_cache(maxsize=64)
def _reduced_spectrum(problem, delta: float):
    from .hessian import reduced_spectrum

    return reduced_spectrum(problem.replace(delta=delta))


def draw_delta_summary(fig: plt.Figure, delta: float, num_classes: int = 10, per_class: int = 5000,
                       dim: int = 512, lambda_W: float = 1e-3, lambda_H: float = 1e-6, lambda_b: float = 1e-2,
                       kappa_deltas: Sequence[float] = tuple(np.round(np.linspace(0.0, 0.9, 10), 2))) -> None:
    """Everything Theorem 1 and the Hessian say about one δ (chapter 8).

    Top: per-class norms, logit margin, training confidence p* = 1 − (K − 1)β/K with the
    training calibration error 1 − p* (every training sample is classified correctly at the
    minimizer, with confidence p*). Bottom: the condition numbers of
    :func:`nclab.hessian.condition_numbers` on the grid ``kappa_deltas`` (computed once and
    cached) with δ marked, and the Hessian spectrum at δ. Defaults: the paper's CIFAR-10 scale,
    K = 10, n = 5000, d = 512. Drawn for a figure of about 9.5 x 7 inches.

    Parameters
    ----------
    fig : the figure to draw on
    delta : smoothing in [0, 1)
    num_classes, per_class, dim, lambda_W, lambda_H, lambda_b : the UFM (see :class:`nclab.ufm.UFM`)
    kappa_deltas : δ grid of the condition-number panel
    """
    from .plots import spectrum_by_mode, theorem1_vs_delta
    from .ufm import UFM, theorem1_curves

    delta = check_delta(delta)
    problem = UFM(num_classes, per_class, dim, lambda_W, lambda_H, lambda_b)
    grid = [check_delta(d, "kappa_deltas") for d in kappa_deltas]
    curves = theorem1_curves(problem.num_classes, per_class, lambda_W, lambda_H, _curve_grid(delta, max(grid)))
    top, bottom = fig.subfigures(2, 1, height_ratios=(1, 1.15))
    theorem1_vs_delta(curves, highlight=delta, fig=top)
    ax_conf = top.axes[2]
    ax_conf.plot(curves["delta"], 1 - curves["confidence"], color="C4", ls="--", label="training ECE = 1 − p*")
    ax_conf.legend(fontsize=7)
    left, right = bottom.subfigures(1, 2)
    _draw_kappas(left, problem, delta, grid, "condition numbers (chapter 7)")
    spectrum_by_mode(_reduced_spectrum(problem, delta), xlim=_spectrum_range(problem, grid), fig=right,
                     title=f"Hessian spectrum at δ = {delta:g}")


def _spectrum_range(problem, deltas) -> tuple[float, float]:
    """An eigenvalue axis that holds the nonzero spectra of all ``deltas``."""
    kappas = [_condition_numbers(problem, d) for d in deltas]
    return min(k.full_min for k in kappas) / 2, max(k.full_max for k in kappas) * 2


def _draw_kappas(fig, problem, delta: float, grid, title: str) -> None:
    """The condition numbers over ``grid`` with the values at ``delta`` marked."""
    from .plots import KAPPA_LABELS, condition_numbers_vs_delta

    kappas = [_condition_numbers(problem, d) for d in sorted(set(grid) | {delta})]
    condition_numbers_vs_delta(kappas, fig=fig, title=title)
    ax = fig.axes[0]
    ax.axvline(delta, color="0.4", lw=0.8, ls=":")
    current = _condition_numbers(problem, delta)
    for i, key in enumerate(KAPPA_LABELS):
        ax.plot(delta, getattr(current, key), "o", color=f"C{i}", mec="k", ms=6, zorder=5)


def draw_conditioning(fig: plt.Figure, delta: float, result, problem) -> None:
    """Gradient descent, the condition numbers and the Hessian spectrum, for one δ (chapter 7).

    Top: the objective gap and NC1 of gradient descent (:func:`nclab.plots.gd_convergence`),
    the chosen δ in black. Bottom: the condition numbers of every δ of ``result`` with the chosen
    one marked, and the exact spectrum of the Hessian at that δ's minimizer
    (:func:`nclab.hessian.reduced_spectrum`) on an eigenvalue axis shared by all δ. The δ drawn
    is the one of ``result`` nearest to ``delta``. Drawn for a figure of about 9.5 x 7 inches.

    Parameters
    ----------
    fig : the figure to draw on
    delta : smoothing in [0, 1)
    result : :class:`nclab.ufm.ConvergenceResult` of :func:`nclab.ufm.convergence_experiment`
    problem : the :class:`nclab.ufm.UFM` that ``result`` ran (any δ)
    """
    from .plots import gd_convergence, spectrum_by_mode

    delta = check_delta(delta)
    deltas = sorted(result.trajectories)
    nearest = min(deltas, key=lambda d: abs(d - delta))
    top, bottom = fig.subfigures(2, 1, height_ratios=(1, 1.15))
    gd_convergence(result, problem, quantities=("objective_gap", "nc1"), highlight=nearest, fig=top)
    left, right = bottom.subfigures(1, 2)
    _draw_kappas(left, problem, nearest, deltas, "condition numbers at the minimizer")
    spectrum = _reduced_spectrum(problem, nearest)
    spectrum_by_mode(spectrum, xlim=_spectrum_range(problem, deltas), fig=right,
                     title=f"Hessian at δ = {nearest:g}: κ = {spectrum.max / spectrum.min_nonzero():.3g}")
