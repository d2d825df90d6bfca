"""The book's figures of training runs, one function each (chapters 3, 4, 5 and 9).

Every function takes :class:`~nclab.train.RunResult` objects and returns a
:class:`matplotlib.figure.Figure` built without pyplot: nothing is shown or kept open, so the
functions work the same in a notebook (make the figure the cell's last value to display it), in
a script and on a headless machine (``fig.savefig("curves.png")``).

Runs are coloured by δ: cross-entropy (δ = 0) in black, label smoothing in a purple-to-orange ramp;
several seeds of one δ share a colour.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from .train import RunResult

__all__ = ["training_curves", "nc1_vs_nc2", "delta_summary", "delta_label"]


def delta_label(delta: float) -> str:
    """Legend text of a run: "CE" for δ = 0, "LS δ=0.05" otherwise."""
    return "CE" if delta == 0 else f"LS δ={delta:g}"


def _check_results(results) -> list[RunResult]:
    if isinstance(results, RunResult):
        results = [results]
    results = list(results)
    if not results or not all(isinstance(r, RunResult) for r in results):
        raise ValueError("results must be a RunResult or a non-empty list of RunResult")
    if any(not r.history for r in results):
        raise ValueError("every result must have at least one logged epoch")
    return results


def _colours(deltas) -> dict[float, tuple]:
    """Black for CE, then a ramp over the positive δ values."""
    positive = sorted(d for d in set(deltas) if d > 0)
    ramp = colormaps["plasma"]
    colours = {0.0: (0.0, 0.0, 0.0, 1.0)}
    for i, d in enumerate(positive):
        colours[d] = ramp(0.55 if len(positive) == 1 else 0.25 + 0.6 * i / (len(positive) - 1))
    return colours


def training_curves(results) -> Figure:
    """Errors, NC1, NC2, NC3 and norms over the epochs: the CE-versus-LS picture (chapter 3).

    Panels: train and test error; NC1 = tr(Σ_W Σ_B†)/K (log scale); NC2 in the paper's
    classifier-feature form (``nc2_wh``); NC3 (self-duality); and the mean norms of the
    classifier rows ‖w_k‖ (solid) and the centred class means ‖μ_k − μ_G‖ (dashed).

    Parameters
    ----------
    results : a RunResult or a list of them (e.g. CE and LS runs, several seeds)

    Returns
    -------
    matplotlib.figure.Figure
    """
    results = _check_results(results)
    colours = _colours(r.config.delta for r in results)
    fig = Figure(figsize=(13, 7), layout="constrained")
    axes = fig.subplots(2, 3)
    panels = [("train_error", "train error"), ("test_error", "test error"),
              ("nc1", "NC1  tr(Σ_W Σ_B†)/K"), ("nc2_wh", "NC2  (W M̃ᵀ vs simplex ETF)"),
              ("nc3", "NC3  ‖W/‖W‖ − M̃/‖M̃‖‖")]
    labelled = set()
    for r in results:
        delta = r.config.delta
        label = None if delta in labelled else delta_label(delta)
        labelled.add(delta)
        style = dict(color=colours[delta], alpha=0.85, lw=1.5)
        for ax, (key, _) in zip(axes.flat, panels):
            ax.plot(r.epochs, r.series(key), label=label, **style)
        axes[1, 2].plot(r.epochs, r.series("w_norm"), label=label, **style)
        axes[1, 2].plot(r.epochs, r.series("h_norm"), ls="--", **style)
    for ax, (key, title) in zip(axes.flat, panels):
        ax.set_title(title)
        ax.set_ylabel(key.replace("_", " "))
    axes[0, 2].set_yscale("log")
    axes[1, 2].set_title("norms: ‖w_k‖ (solid), ‖μ_k − μ_G‖ (dashed)")
    axes[1, 2].set_ylabel("mean norm")
    for ax in axes.flat:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(title=f"{results[0].config.model} on {results[0].config.dataset}")
    return fig


def nc1_vs_nc2(results) -> Figure:
    """NC1 against NC2, one point per logged epoch, coloured by test error (chapter 4).

    At equal within-class variability (NC1), label smoothing sits closer to the simplex ETF
    (lower NC2). Markers distinguish δ; colour is the test error at that epoch.

    Parameters
    ----------
    results : a RunResult or a list of them

    Returns
    -------
    matplotlib.figure.Figure
    """
    results = _check_results(results)
    fig = Figure(figsize=(7, 5.5), layout="constrained")
    ax = fig.subplots()
    errors = np.concatenate([r.series("test_error") for r in results])
    norm = Normalize(vmin=np.nanmin(errors), vmax=np.nanmax(errors))
    markers = "os^Dvp*hX<>"
    deltas = sorted({r.config.delta for r in results})
    scatter = None
    labelled = set()
    for r in results:
        delta = r.config.delta
        scatter = ax.scatter(r.series("nc1"), r.series("nc2_wh"), c=r.series("test_error"), norm=norm,
                             cmap="viridis", marker=markers[deltas.index(delta) % len(markers)],
                             s=28, edgecolors="k", linewidths=0.3,
                             label=None if delta in labelled else delta_label(delta))
        labelled.add(delta)
    ax.set_xscale("log")
    ax.set_xlabel("NC1  tr(Σ_W Σ_B†)/K  (log)")
    ax.set_ylabel("NC2  (W M̃ᵀ vs simplex ETF)")
    ax.set_title("NC1 vs NC2 over training")
    ax.grid(alpha=0.3)
    legend = ax.legend()
    for handle in legend.legend_handles:
        handle.set_facecolor("white")
    fig.colorbar(scatter, ax=ax, label="test error")
    return fig


def delta_summary(results) -> Figure:
    """Final-epoch measures against δ, mean ± std over seeds (chapters 3 and 5).

    Panels: test error; NC1 (log); NC2 (``nc2_wh``) and NC3; norms ‖w_k‖ and ‖μ_k − μ_G‖;
    test ECE before and after temperature scaling; the fitted temperature T.

    Parameters
    ----------
    results : RunResults of several δ (and seeds)

    Returns
    -------
    matplotlib.figure.Figure
    """
    results = _check_results(results)
    by_delta: dict[float, list[dict]] = defaultdict(list)
    for r in results:
        by_delta[r.config.delta].append(r.final)
    deltas = np.array(sorted(by_delta))

    def stat(key):
        values = [np.array([np.nan if f.get(key) is None else f[key] for f in by_delta[d]], float)
                  for d in deltas]
        return np.array([np.nanmean(v) for v in values]), np.array([np.nanstd(v) for v in values])

    fig = Figure(figsize=(13, 7), layout="constrained")
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
            mean, std = stat(key)
            ax.errorbar(deltas, mean, yerr=std, marker="o", capsize=3, label=label)
        ax.set_xlabel("δ")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if log:
            ax.set_yscale("log")
        if len(series) > 1:
            ax.legend()
    seeds = max(len(v) for v in by_delta.values())
    fig.suptitle(f"final epoch against δ ({results[0].config.model} on {results[0].config.dataset}, "
                 f"{seeds} seed{'s' if seeds > 1 else ''} per δ)")
    return fig
