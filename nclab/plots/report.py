"""Figures of any set of training runs, as ``python -m nclab report`` draws them (chapters 3, 4 and 9).

They take :class:`~nclab.train.RunResult` objects of any data set, model and number of seeds:
:func:`training_curves` draws every run over the epochs, :func:`delta_summary` the final epoch
against δ. Cross-entropy (δ = 0) is black, label smoothing a purple-to-orange ramp; the seeds of
one δ share its colour.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..tables import by_delta, _check_results, delta_label
from ._base import curve_series, delta_colours, final_mean_std, label_curve_panel, prepare

__all__ = ["training_curves", "delta_summary"]

_PANELS = ("train_error", "test_error", "nc1", "nc2_wh", "nc3", "norms")


def training_curves(results, fig: Figure | None = None) -> Figure:
    """Errors, NC1, NC2, NC3 and norms over the epochs, one line per run (chapters 3 and 9).

    Panels: train and test error; NC1 = tr(Σ_W Σ_B†)/K (log scale); NC2 in the paper's
    classifier-feature form (``nc2_wh``); NC3 (self-duality); and the mean norms of the
    classifier rows ‖w_k‖ (solid) and the centred class means ‖μ_k − μ_G‖ (dashed).
    :func:`nclab.plots.empirical.training_curves_spread` draws the mean over seeds instead.

    Parameters
    ----------
    results : a RunResult or a list of them (e.g. CE and LS runs, several seeds)
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.

    Examples
    --------
    >>> fig = training_curves(nclab.runs.load_results("runs/"))   # doctest: +SKIP
    >>> fig.savefig("curves.png")                                  # doctest: +SKIP
    """
    results = _check_results(results)
    colours = delta_colours(r.config.delta for r in results)
    fig = prepare(fig, (13, 7))
    axes = fig.subplots(2, 3)
    labelled = set()
    for r in results:
        delta = r.config.delta
        label = None if delta in labelled else delta_label(delta)
        labelled.add(delta)
        for ax, key in zip(axes.flat, _PANELS):
            for name, style in curve_series(key):
                ax.plot(r.epochs, r.series(name), style, color=colours[delta], alpha=0.85, lw=1.5,
                        label=label if style == "-" else None)
    for ax, key in zip(axes.flat, _PANELS):
        label_curve_panel(ax, key)
    axes[0, 0].legend(title=f"{results[0].config.model} on {results[0].config.dataset}")
    return fig


def delta_summary(results, fig: Figure | None = None) -> Figure:
    """Final-epoch measures against δ, mean ± std over seeds (chapters 4 and 5).

    Panels: test error; NC1 (log); NC2 (``nc2_wh``) and NC3; norms ‖w_k‖ and ‖μ_k − μ_G‖;
    test ECE before and after temperature scaling; the fitted temperature T.

    Parameters
    ----------
    results : RunResults of several δ (and seeds)
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    groups = by_delta(results)
    deltas = np.array(list(groups))
    fig = prepare(fig, (13, 7))
    axes = fig.subplots(2, 3)
    panels = [
        (axes[0, 0], [("test_error", "test error")], "test error", False),
        (axes[0, 1], [("nc1", "NC1")], "NC1 (log)", True),
        (axes[0, 2], [("nc2_wh", "NC2 (W M̃ᵀ)"), ("nc3", "NC3")], "distance to collapse", False),
        (axes[1, 0], [("w_norm", "‖w_k‖"), ("h_norm", "‖μ_k − μ_G‖")], "mean norm", False),
        (axes[1, 1], [("test_ece", "before"), ("test_ece_scaled", "after temperature scaling")],
         "test ECE", False),
        (axes[1, 2], [("temperature", "T")], "fitted temperature T", False),
    ]
    for ax, series, ylabel, log in panels:
        for key, label in series:
            mean, std = final_mean_std(groups, key)
            ax.errorbar(deltas, mean, yerr=std, marker="o", capsize=3, label=label)
        ax.set_xlabel("δ")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if log:
            ax.set_yscale("log")
        if len(series) > 1:
            ax.legend()
    seeds = max(len(runs) for runs in groups.values())
    first = next(iter(groups.values()))[0].config
    fig.suptitle(f"final epoch against δ ({first.model} on {first.dataset}, "
                 f"{seeds} seed{'s' if seeds > 1 else ''} per δ)")
    return fig
