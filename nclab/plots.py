"""The book's figures of training runs, one function each, and the tables printed beside them (chapters 2-5 and 9).

Every function takes :class:`~nclab.train.RunResult` objects and returns a
:class:`matplotlib.figure.Figure` built without pyplot: nothing is shown or kept open, so the
functions work the same in a notebook (make the figure the cell's last value to display it), in
a script and on a headless machine (``fig.savefig("curves.png")``).

Runs are coloured by δ: cross-entropy (δ = 0) in black, label smoothing in a purple-to-orange ramp;
several seeds of one δ share a colour. The figures of chapters 2-5 also draw into a given figure
(``fig=``), which is how the δ widgets of :mod:`nclab.widgets` redraw them, and :class:`Table`
holds per-seed numbers that print as mean ± std.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from .calibration import accuracy, ece, fit_temperature, prediction_entropy, reliability_bins
from .metrics import FeatureStats, nc1
from .runs import SWEEP_DELTAS, Outputs
from .stats import Paired, paired
from .train import RunResult

__all__ = ["training_curves", "nc1_vs_nc2", "delta_summary", "delta_label",
           "feature_snapshots", "simplex_snapshots", "training_curves_spread", "nc_plane", "matched_nc2",
           "reliability_diagram", "calibration_vs_delta", "ece_vs_collapse", "entropy_by_correctness",
           "Table", "first_epoch_at_or_below", "common_levels", "nc2_at_nc1", "collapse_table",
           "threshold_table", "final_table", "matched_nc2_table", "calibration_table", "entropy_table",
           "collapse_calibration_table"]


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


# --- Empirical chapters (2-5): figures and the tables printed beside them ---

def _figure(fig: Figure | None, size: tuple[float, float]) -> Figure:
    """A new constrained-layout figure, or ``fig`` (e.g. a δ widget's) cleared for drawing."""
    if fig is None:
        return Figure(figsize=size, layout="constrained")
    if not isinstance(fig, Figure):
        raise ValueError(f"fig must be a matplotlib Figure or None, got {type(fig).__name__}")
    fig.clear()
    return fig


def _by_delta(results) -> dict[float, list[RunResult]]:
    """Runs grouped by δ, in increasing δ."""
    groups: dict[float, list[RunResult]] = defaultdict(list)
    for r in _check_results(results):
        groups[r.config.delta].append(r)
    return {d: sorted(runs, key=lambda r: r.config.seed) for d, runs in sorted(groups.items())}


def _seeds(groups: dict[float, list[RunResult]]) -> dict[str, list[int]]:
    return {delta_label(d): [r.config.seed for r in runs] for d, runs in groups.items()}


def _sweep_colours(deltas) -> dict[float, tuple]:
    """The colours of :func:`_colours` over the book's δ sweep, so a δ keeps its colour in every figure."""
    return _colours(set(deltas) | set(SWEEP_DELTAS))


def _check_outputs(snapshots, name: str) -> list[Outputs]:
    snapshots = list(snapshots)
    if not snapshots or not all(isinstance(s, Outputs) for s in snapshots):
        raise ValueError(f"{name} must be a non-empty list of nclab.runs.Outputs")
    return snapshots


def _check_titles(titles, n: int) -> list[str]:
    titles = [str(t) for t in titles]
    if len(titles) != n:
        raise ValueError(f"titles must have one entry per snapshot ({n}), got {len(titles)}")
    return titles


def _stats(outputs: Outputs) -> FeatureStats:
    return FeatureStats(outputs.logits.shape[1], outputs.features.shape[1]).update(outputs.features, outputs.labels)


def feature_snapshots(snapshots, titles, classes=(0, 1, 2), fig: Figure | None = None) -> Figure:
    """Training features of three classes, in the plane of their class means, for several networks (chapter 2).

    For each snapshot, the features of the three ``classes`` are projected onto the plane through
    their three class means, with the origin at the centre of the three means and the first axis
    towards the first class. If all K class means form a simplex ETF, any three of them form an
    equilateral triangle, so collapse shows as three shrinking clusters at the corners of an
    equilateral triangle. Each panel keeps its own scale (feature norms grow during training).

    Parameters
    ----------
    snapshots : list of :class:`nclab.runs.Outputs` on the training split, e.g. one per epoch
    titles : a title for each snapshot, e.g. "epoch 10" (NC1 is appended)
    classes : three distinct class indices
    fig : draw into this figure (cleared first) instead of a new one

    Returns
    -------
    matplotlib.figure.Figure
    """
    snapshots = _check_outputs(snapshots, "snapshots")
    titles = _check_titles(titles, len(snapshots))
    K = snapshots[0].logits.shape[1]
    classes = [int(c) for c in classes]
    if len(set(classes)) != 3 or not all(0 <= c < K for c in classes):
        raise ValueError(f"classes must be three distinct class indices in [0, {K}), got {classes!r}")
    columns = min(2, len(snapshots))  # two panels a row keep them legible on a book page
    rows = -(-len(snapshots) // columns)
    fig = _figure(fig, (4.3 * columns, 4.0 * rows))
    axes = np.atleast_1d(fig.subplots(rows, columns)).flatten()
    for ax in axes[len(snapshots):]:
        ax.remove()
    for ax, out, title in zip(axes, snapshots, titles):
        stats = _stats(out)
        means = stats.means.numpy()[classes]
        centre = means.mean(0)
        u1 = means[0] - centre
        u1 /= np.linalg.norm(u1)
        u2 = means[1] - centre - ((means[1] - centre) @ u1) * u1
        u2 /= np.linalg.norm(u2)
        basis = np.stack([u2, u1], 1)  # first class points up
        for i, c in enumerate(classes):
            h = out.features[out.labels == c].double().numpy()
            xy = (h - centre) @ basis
            ax.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.45, color=f"C{i}", label=f"class {c}")
        corners = (means - centre) @ basis
        triangle = np.vstack([corners, corners[:1]])
        ax.plot(triangle[:, 0], triangle[:, 1], "k-", lw=1)
        ax.scatter(corners[:, 0], corners[:, 1], s=60, c=[f"C{i}" for i in range(3)], edgecolors="k", zorder=3)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"{title}: NC1 = {nc1(stats):.3g}")
        ax.set_xlabel("in-plane direction 2")
        ax.set_ylabel(f"direction towards class {classes[0]}")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8, markerscale=2)
    return fig


def simplex_snapshots(snapshots, titles, fig: Figure | None = None) -> Figure:
    """Class means and classifier rows turning into a simplex ETF, for several networks (chapter 2).

    Panels, one column of dots per snapshot (e.g. per epoch): the K(K−1)/2 pairwise cosines of the centred
    class means μ_k − μ_G; the same for the classifier rows w_k; and the norms of both, divided
    by their mean. A simplex ETF puts every cosine at −1/(K−1) (dashed line) and every
    normalized norm at 1.

    Parameters
    ----------
    snapshots : list of :class:`nclab.runs.Outputs` on the training split
    titles : a label for each snapshot, e.g. "epoch 10"
    fig : draw into this figure (cleared first) instead of a new one

    Returns
    -------
    matplotlib.figure.Figure
    """
    snapshots = _check_outputs(snapshots, "snapshots")
    titles = _check_titles(titles, len(snapshots))
    K = snapshots[0].logits.shape[1]
    fig = _figure(fig, (10.5, 3.8))
    ax_h, ax_w, ax_n = fig.subplots(1, 3)
    i, j = np.triu_indices(K, 1)
    rng = np.random.default_rng(0)
    for x, out in enumerate(snapshots):
        centred = _stats(out).centred_means.numpy()
        weight = out.weight.double().numpy()
        for ax, v in ((ax_h, centred), (ax_w, weight)):
            u = v / np.linalg.norm(v, axis=1, keepdims=True)
            cosines = (u @ u.T)[i, j]
            ax.scatter(x + rng.uniform(-0.15, 0.15, len(cosines)), cosines, s=10, alpha=0.6, color="C0")
        for offset, v, colour in ((-0.15, centred, "C1"), (0.15, weight, "C2")):
            norms = np.linalg.norm(v, axis=1)
            ax_n.scatter(x + offset + rng.uniform(-0.08, 0.08, K), norms / norms.mean(), s=12,
                         alpha=0.7, color=colour)
    for ax, title in ((ax_h, "pairwise cosines of μ_k − μ_G"), (ax_w, "pairwise cosines of w_k")):
        ax.axhline(-1 / (K - 1), color="k", ls="--", lw=1, label=f"simplex ETF: −1/(K−1) = {-1 / (K - 1):.3f}")
        ax.set_title(title)
        ax.set_ylabel("cosine")
        ax.legend(loc="upper right", fontsize=8)
    ax_n.axhline(1.0, color="k", ls="--", lw=1)
    ax_n.scatter([], [], color="C1", label="‖μ_k − μ_G‖ / mean")
    ax_n.scatter([], [], color="C2", label="‖w_k‖ / mean")
    ax_n.set_title("norms relative to their mean (equinorm)")
    ax_n.set_ylabel("norm / mean norm")
    ax_n.legend(fontsize=8)
    for ax in (ax_h, ax_w, ax_n):
        ax.set_xticks(range(len(titles)), titles)
        ax.set_xlabel("snapshot")
        ax.grid(alpha=0.3)
    return fig


_CURVE_PANELS = {
    "train_loss": ("training loss (log)", True),
    "train_error": ("train error", False),
    "test_error": ("test error", False),
    "nc1": ("NC1  tr(Σ_W Σ_B†)/K  (log)", True),
    "nc2_wh": ("NC2  (W M̃ᵀ vs simplex ETF)", False),
    "nc3": ("NC3  ‖W/‖W‖ − M̃/‖M̃‖‖", False),
    "norms": ("norms: ‖w_k‖ (solid), ‖μ_k − μ_G‖ (dashed)", False),
}


def training_curves_spread(results, keys=("train_error", "test_error", "nc1", "nc2_wh", "nc3", "norms"),
                           fig: Figure | None = None) -> Figure:
    """Measures over the epochs, mean over seeds with a ±1 std band, one colour per δ (chapter 3).

    Like :func:`training_curves`, but the seeds of each δ are averaged at each logged epoch, so
    the band shows how much of a difference between δ values is seed noise. Dotted vertical lines
    mark the learning-rate milestones.

    Parameters
    ----------
    results : RunResults (several δ, several seeds each; the seeds of one δ must log the same epochs)
    keys : panels to draw, among "train_loss", "train_error", "test_error", "nc1", "nc2_wh", "nc3" and "norms"
        (mean ‖w_k‖ and ‖μ_k − μ_G‖)
    fig : draw into this figure (cleared first) instead of a new one

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = _by_delta(results)
    keys = list(keys)
    unknown = [k for k in keys if k not in _CURVE_PANELS]
    if not keys or unknown:
        raise ValueError(f"keys must be a non-empty list among {', '.join(_CURVE_PANELS)}; got {keys!r}")
    colours = _sweep_colours(groups)
    columns = min(3, len(keys))
    rows = -(-len(keys) // columns)
    fig = _figure(fig, (3.4 * columns + (2.2 if len(keys) == 1 else 0), 3.0 * rows))
    axes = np.atleast_1d(fig.subplots(rows, columns)).flatten()
    for delta, runs in groups.items():
        epochs = runs[0].epochs
        if any(not np.array_equal(r.epochs, epochs) for r in runs):
            raise ValueError(f"the runs of δ={delta:g} log different epochs; they cannot be averaged")
        for ax, key in zip(axes, keys):
            series = [("w_norm", "-"), ("h_norm", "--")] if key == "norms" else [(key, "-")]
            for name, style in series:
                values = np.array([r.series(name) for r in runs])
                mean, std = values.mean(0), values.std(0)
                label = f"{delta_label(delta)} ({len(runs)} seeds)" if style == "-" else None
                ax.plot(epochs, mean, style, color=colours[delta], lw=1.6, label=label)
                ax.fill_between(epochs, mean - std, mean + std, color=colours[delta], alpha=0.2, lw=0)
    first = next(iter(groups.values()))[0].config
    for ax, key in zip(axes, keys):
        for milestone in first.milestones if first.schedule == "step" else []:
            ax.axvline(milestone, color="0.5", ls=":", lw=1)
        title, log = _CURVE_PANELS[key]
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean norm" if key == "norms" else key.replace("_", " "))
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in axes[len(keys):]:
        ax.remove()
    if len(keys) == 1:   # one panel: the legend beside it, clear of the curves
        axes[0].legend(title=f"{first.model} on {first.dataset}", fontsize=8, loc="upper left",
                       bbox_to_anchor=(1.02, 1.0))
    else:
        axes[0].legend(title=f"{first.model} on {first.dataset}", fontsize=8)
    return fig


def nc_plane(results, fig: Figure | None = None) -> Figure:
    """NC1 (log) against NC2, one point per logged epoch, coloured by test error (chapter 4).

    The orientation of the paper's figure: x is NC2 in the classifier-feature form (``nc2_wh``),
    y is NC1. Thin lines join the epochs of one run; markers distinguish δ. Training moves each
    run down and to the left; at equal height (equal NC1), a run further left is closer to the
    simplex ETF.

    Parameters
    ----------
    results : RunResults
    fig : draw into this figure (cleared first) instead of a new one

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = _by_delta(results)
    fig = _figure(fig, (7, 5.5))
    ax = fig.subplots()
    errors = np.concatenate([r.series("test_error") for runs in groups.values() for r in runs])
    norm = Normalize(vmin=np.nanmin(errors), vmax=np.nanmax(errors))
    colours = _sweep_colours(groups)
    markers = "os^Dvp*hX<>"
    scatter = None
    for i, (delta, runs) in enumerate(groups.items()):
        for j, r in enumerate(runs):
            x, y = r.series("nc2_wh"), r.series("nc1")
            ax.plot(x, y, color=colours[delta], lw=0.7, alpha=0.5)
            scatter = ax.scatter(x, y, c=r.series("test_error"), norm=norm, cmap="viridis",
                                 marker=markers[i % len(markers)], s=30, edgecolors=colours[delta],
                                 linewidths=0.8, label=delta_label(delta) if j == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("NC2  (W M̃ᵀ vs simplex ETF)")
    ax.set_ylabel("NC1  tr(Σ_W Σ_B†)/K  (log)")
    ax.set_title("NC1 against NC2, one point per logged epoch")
    ax.grid(alpha=0.3)
    legend = ax.legend(title="marker, line colour")
    for handle in legend.legend_handles:
        handle.set_facecolor("white")
    fig.colorbar(scatter, ax=ax, label="test error (marker fill)")
    return fig


def matched_nc2(results, levels, fig: Figure | None = None) -> Figure:
    """NC2 at the moment NC1 first falls to common levels, mean ± std over seeds per δ (chapter 4).

    Runs of different δ reach a given NC1 at different epochs; comparing their NC2 there
    compares the geometry at equal within-class collapse (see :func:`nc2_at_nc1`).

    Parameters
    ----------
    results : RunResults
    levels : NC1 levels that every run crosses (e.g. :func:`common_levels`)
    fig : draw into this figure (cleared first) instead of a new one

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = _by_delta(results)
    levels = _check_levels(levels)
    colours = _sweep_colours(groups)
    fig = _figure(fig, (6.5, 4.5))
    ax = fig.subplots()
    shift = np.exp(np.linspace(-0.04, 0.04, len(groups)))  # side by side, not on top of each other
    for k, (delta, runs) in enumerate(groups.items()):
        values = np.array([nc2_at_nc1(r, levels) for r in runs])
        ax.errorbar(levels * shift[k], np.nanmean(values, 0), yerr=np.nanstd(values, 0), marker="o",
                    capsize=3, color=colours[delta], label=f"{delta_label(delta)} ({len(runs)} seeds)")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("NC1 level reached (log; training runs left to right)")
    ax.set_ylabel("NC2 when NC1 first reaches the level")
    ax.set_title("NC2 at equal NC1")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def reliability_diagram(outputs_by_delta, deltas, temperatures=None, n_bins: int = 20,
                        fig: Figure | None = None) -> Figure:
    """Reliability diagrams of test predictions, one column per δ, seeds pooled (chapter 5).

    Top: accuracy in equal-width confidence bins (bars) against the diagonal of perfect
    calibration; bars below the diagonal mean overconfidence, above it underconfidence. Bottom:
    how many test samples fall in each bin. The title gives the ECE of the pooled predictions.

    Parameters
    ----------
    outputs_by_delta : dict δ -> list of :class:`nclab.runs.Outputs` on the test split
    deltas : the δ values to draw (keys of ``outputs_by_delta``)
    temperatures : optional dict δ -> list of temperatures (one per output): logits are divided
        by them first, to show the diagram after temperature scaling
    n_bins : number of bins
    fig : draw into this figure (cleared first) instead of a new one

    Returns
    -------
    matplotlib.figure.Figure
    """
    deltas = [float(d) for d in np.atleast_1d(deltas)]
    missing = [d for d in deltas if d not in outputs_by_delta]
    if not deltas or missing:
        raise ValueError(f"deltas must be keys of outputs_by_delta, got {missing or deltas!r}")
    fig = _figure(fig, (4.2 * len(deltas), 5.0))
    axes = fig.subplots(2, len(deltas), squeeze=False, height_ratios=[3, 1], sharex=True)
    for col, delta in enumerate(deltas):
        outs = _check_outputs(outputs_by_delta[delta], "outputs_by_delta values")
        scale = [1.0] * len(outs) if temperatures is None else list(temperatures[delta])
        logits = torch.cat([o.logits.double() / t for o, t in zip(outs, scale, strict=True)])
        labels = torch.cat([o.labels for o in outs])
        bins = reliability_bins(logits, labels, n_bins)
        centres = (bins.edges[:-1] + bins.edges[1:]) / 2
        width = bins.edges[1] - bins.edges[0]
        top, bottom = axes[0, col], axes[1, col]
        filled = bins.count > 0
        top.bar(centres[filled], bins.accuracy[filled], width=width, color="C0", alpha=0.75, edgecolor="k",
                lw=0.5, label="accuracy")
        top.bar(centres[filled], bins.confidence[filled] - bins.accuracy[filled], bottom=bins.accuracy[filled],
                width=width, facecolor="none", edgecolor="C3", hatch="///", lw=0.8,
                label="gap: mean confidence − accuracy")
        top.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        scaled = "" if temperatures is None else ", after T"
        top.set_title(f"{delta_label(delta)}{scaled}: ECE = {bins.ece:.3f}")
        top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy in bin")
        top.grid(alpha=0.3)
        bottom.bar(centres, bins.count / bins.count.sum(), width=width, color="0.5", edgecolor="k", lw=0.5)
        bottom.set(xlabel="confidence (top softmax probability)", ylabel="share of samples")
        bottom.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    return fig


def calibration_vs_delta(results, calibration, fig: Figure | None = None) -> Figure:
    """Calibration, temperature, NC1 and norms at the final epoch against δ, mean ± std over seeds (chapter 5).

    Parameters
    ----------
    results : RunResults of the sweep
    calibration : the :class:`Table` of :func:`calibration_table` for the same runs
    fig : draw into this figure (cleared first) instead of a new one

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = _by_delta(results)
    if not isinstance(calibration, Table):
        raise ValueError(f"calibration must be the Table of calibration_table, got {type(calibration).__name__}")
    deltas = np.array(list(groups))
    labels = [delta_label(d) for d in deltas]
    missing = [lab for lab in labels if lab not in calibration.values]
    if missing:
        raise ValueError(f"calibration has no row for {', '.join(missing)}")
    fig = _figure(fig, (9.5, 6.8))
    axes = fig.subplots(2, 2).flatten()

    def draw(ax, means_and_stds, label):
        mean, std = means_and_stds
        ax.errorbar(deltas, mean, yerr=std, marker="o", capsize=3, label=label)

    def from_table(column):
        cells = [calibration.values[lab][column] for lab in labels]
        return np.array([np.nanmean(c) for c in cells]), np.array([np.nanstd(c) for c in cells])

    def from_history(key):
        finals = [np.array([r.final[key] for r in groups[d]], float) for d in deltas]
        return np.array([v.mean() for v in finals]), np.array([v.std() for v in finals])

    for column, label in (("ECE", "raw logits"), ("ECE, T from val", "T from validation"),
                          ("ECE, T from test", "T from test (paper)")):
        draw(axes[0], from_table(column), label)
    axes[0].set_yscale("log")  # raw and scaled ECE differ by an order of magnitude
    draw(axes[1], from_table("T from val"), "validation, NLL")
    draw(axes[1], from_table("T from test"), "test, ECE grid")
    axes[1].axhline(1.0, color="k", lw=0.8, ls=":")
    draw(axes[2], from_history("nc1"), "NC1")
    axes[2].set_yscale("log")
    draw(axes[3], from_history("w_norm"), "‖w_k‖")
    draw(axes[3], from_history("h_norm"), "‖μ_k − μ_G‖")
    for ax, title, ylabel in ((axes[0], "test ECE (log)", "ECE"), (axes[1], "fitted temperature", "T"),
                              (axes[2], "NC1 (log)", "NC1"), (axes[3], "mean norms", "norm")):
        ax.set(title=title, xlabel="δ", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    first = results[0].config
    fig.suptitle(f"final epoch against δ ({first.model} on {first.dataset}, mean ± std over seeds)")
    return fig


def ece_vs_collapse(results, fig: Figure | None = None) -> Figure:
    """Test ECE against NC1 and against the norm product ‖w‖·‖μ − μ_G‖ over training (chapter 5).

    One line per run (colour: δ), one point per logged epoch. The product of the mean norms
    sets the scale of the logits, hence how confident the network can be.

    Parameters
    ----------
    results : RunResults
    fig : draw into this figure (cleared first) instead of a new one

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = _by_delta(results)
    colours = _sweep_colours(groups)
    fig = _figure(fig, (10, 4.0))
    ax_nc1, ax_norm = fig.subplots(1, 2, sharey=True)
    for delta, runs in groups.items():
        for j, r in enumerate(runs):
            label = delta_label(delta) if j == 0 else None
            ece = r.series("test_ece")
            ax_nc1.plot(r.series("nc1"), ece, "-o", ms=2.5, lw=1, color=colours[delta], label=label)
            ax_norm.plot(r.series("w_norm") * r.series("h_norm"), ece, "-o", ms=2.5, lw=1, color=colours[delta])
    ax_nc1.set_xscale("log")
    ax_nc1.invert_xaxis()
    ax_nc1.set(xlabel="NC1 (log; collapse grows to the right)", ylabel="test ECE",
               title="calibration error against NC1")
    ax_norm.set(xlabel="‖w_k‖ · ‖μ_k − μ_G‖  (scale of the logits)", title="calibration error against the norms")
    for ax in (ax_nc1, ax_norm):
        ax.grid(alpha=0.3)
    ax_nc1.legend(fontsize=8)
    return fig


def entropy_by_correctness(outputs_by_delta, fig: Figure | None = None) -> Figure:
    """Entropy of the test predictions, correct versus incorrect samples, seeds pooled, per δ (chapter 5).

    Box plots of −Σ_k p_k log p_k (nats; at most log K) on a log scale. An overconfident
    network gives its wrong answers almost as little entropy as its right ones.

    Parameters
    ----------
    outputs_by_delta : dict δ -> list of :class:`nclab.runs.Outputs` on the test split
    fig : draw into this figure (cleared first) instead of a new one

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(outputs_by_delta, dict) or not outputs_by_delta:
        raise ValueError("outputs_by_delta must be a non-empty dict δ -> list of Outputs")
    deltas = sorted(outputs_by_delta)
    fig = _figure(fig, (min(9.5, 1.3 * len(deltas) + 2.5), 4.2))
    ax = fig.subplots()
    for i, delta in enumerate(deltas):
        outs = _check_outputs(outputs_by_delta[delta], "outputs_by_delta values")
        logits = torch.cat([o.logits for o in outs])
        labels = torch.cat([o.labels for o in outs])
        entropy = prediction_entropy(logits).numpy()
        correct = (logits.argmax(1) == labels).numpy()
        for offset, part, colour in ((-0.18, correct, "C0"), (0.18, ~correct, "C3")):
            values = np.maximum(entropy[part], 1e-12)
            if len(values):
                box = ax.boxplot(values, positions=[i + offset], widths=0.3, patch_artist=True,
                                 showfliers=True, flierprops=dict(ms=2))
                box["boxes"][0].set(facecolor=colour, alpha=0.5)
            ax.annotate(f"n={len(values)}", (i + offset, 1.0), xycoords=("data", "axes fraction"),
                        ha="center", va="bottom", fontsize=7)
    K = next(iter(outputs_by_delta.values()))[0].logits.shape[1]
    ax.axhline(np.log(K), color="k", ls=":", lw=1, label="log K (uniform prediction)")
    ax.set_yscale("log")
    ax.set_xticks(range(len(deltas)), [delta_label(d) for d in deltas])
    ax.set_xlabel("training loss (seeds pooled)")
    ax.set_ylabel("prediction entropy (nats, log)")
    ax.set_title("entropy of test predictions: correct (blue) vs incorrect (red)", pad=14)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


# Tables ----------------------------------------------------------------------------------------

@dataclass
class Table:
    """Per-seed values of a few measures, printed as mean ± std (chapters 2-5).

    Attributes
    ----------
    title : printed above the table
    values : row label -> column label -> array of one value per seed (NaN: not reached)
    seeds : row label -> the seeds of its values, in order (None: rows are aligned by position)
    """

    title: str
    values: dict[str, dict[str, np.ndarray]]
    seeds: dict[str, list[int]] | None = None

    @property
    def columns(self) -> list[str]:
        return list(next(iter(self.values.values())))

    def mean(self, row: str, column: str) -> float:
        """Mean over the seeds that have a value (NaN if none)."""
        v = self.values[row][column]
        return float(np.nanmean(v)) if np.isfinite(v).any() else math.nan

    def __str__(self) -> str:
        def cell(v: np.ndarray) -> str:
            ok = np.isfinite(v)
            if not ok.any():
                return "never"
            text = f"{v[ok].mean():.4g} ± {v[ok].std():.2g}"
            return text if ok.all() else f"{text} ({ok.sum()}/{len(v)})"

        cells = {label: {c: cell(v) for c, v in row.items()} for label, row in self.values.items()}
        return _grid(self.title, cells)

    def __repr__(self) -> str:
        return str(self)

    def compare(self, row: str, reference: str, confidence: float = 0.95) -> dict[str, Paired]:
        """How ``row`` compares with ``reference`` in each column, paired seed by seed.

        The i-th value of each row belongs to the i-th seed (runs of one seed share their
        initialization and batch order), so each column gives one :class:`nclab.stats.Paired`:
        the mean of the differences row − reference with a paired-t interval, the sign-test
        p-value, and the verdict "lower", "higher" (the interval excludes 0) or "not separated".
        A seed without a value on either side (NaN: a threshold never reached) is left out.
        """
        for label in (row, reference):
            if label not in self.values:
                raise ValueError(f"row must be one of {', '.join(self.values)}; got {label!r}")
        if self.seeds is not None and self.seeds[row] != self.seeds[reference]:
            raise ValueError(f"rows {row!r} and {reference!r} hold different seeds "
                             f"({self.seeds[row]} and {self.seeds[reference]}): they cannot be paired")
        return {column: paired(self.values[row][column], self.values[reference][column], confidence)
                for column in self.columns}

    def verdicts(self, reference: str) -> str:
        """:meth:`compare` of every other row with ``reference``, as a printable grid.

        Each cell: the verdict, then the mean paired difference and its 95% interval.
        """
        short = {"lower": "lower", "higher": "higher", "not separated": "n.s."}
        cells = {label: {c: f"{short[v.verdict]} {v.mean:+.2g} [{v.low:+.2g}, {v.high:+.2g}]"
                         for c, v in self.compare(label, reference).items()}
                 for label in self.values if label != reference}
        n = len(next(iter(self.values[reference].values())))
        return _grid(f"row − {reference}, paired over {n} seeds: verdict, mean [95% CI]", cells)


def _grid(title: str, cells: dict[str, dict[str, str]], width: int = 78) -> str:
    """Rows of text cells under a header of column labels, right-aligned.

    Columns that would make a line longer than ``width`` characters go to a further block below,
    which repeats the row labels, so the text fits a book page without scrolling.
    """
    columns = list(next(iter(cells.values())))
    labels = list(cells)
    label_width = max(len(label) for label in labels)
    column_width = {c: max(len(c), *(len(cells[label][c]) for label in labels)) for c in columns}
    blocks: list[list[str]] = []
    for c in columns:
        used = label_width + sum(2 + column_width[k] for k in blocks[-1]) if blocks else width
        if used + 2 + column_width[c] > width:
            blocks.append([])
        blocks[-1].append(c)
    lines = [title]
    for i, block in enumerate(blocks):
        if i:
            lines.append("")
        lines.append(" " * label_width + "".join("  " + c.rjust(column_width[c]) for c in block))
        for label in labels:
            lines.append(label.ljust(label_width)
                         + "".join("  " + cells[label][c].rjust(column_width[c]) for c in block))
    return "\n".join(lines)


def _check_levels(levels) -> np.ndarray:
    levels = np.atleast_1d(np.asarray(levels, dtype=float))
    if levels.size == 0 or not np.isfinite(levels).all() or (levels <= 0).any():
        raise ValueError(f"levels must be one or more positive numbers, got {levels!r}")
    return levels


def first_epoch_at_or_below(result: RunResult, key: str, threshold: float) -> float:
    """The first logged epoch at which ``key`` is at or below ``threshold``; NaN if never (chapter 3).

    Example
    -------
    >>> first_epoch_at_or_below(ce_run, "train_error", 0.0)   # doctest: +SKIP
    4.0
    """
    values = result.series(key)
    reached = np.flatnonzero(values <= threshold)
    return float(result.epochs[reached[0]]) if reached.size else math.nan


def common_levels(results, key: str, n: int = 3) -> np.ndarray:
    """``n`` levels of ``key``, evenly spaced in log, that every run starts above and ends below (chapters 3, 4).

    The levels lie strictly between the highest of the runs' lowest values (every run gets
    down to it) and the lowest of their first logged values (every run starts above it).

    Returns
    -------
    np.ndarray of shape (n,), decreasing
    """
    results = _check_results(results)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    floor = max(np.nanmin(r.series(key)) for r in results)
    ceiling = min(r.series(key)[0] for r in results)
    if not 0 < floor < ceiling:
        raise ValueError(f"the runs share no range of {key}: every run's lowest value must be below "
                         f"every run's first value (got {floor:.3g} and {ceiling:.3g})")
    return np.geomspace(ceiling, floor, n + 2)[1:-1]


def nc2_at_nc1(result: RunResult, levels) -> np.ndarray:
    """NC2 (``nc2_wh``) at the moment NC1 first falls to each level (chapter 4).

    Between the last logged epoch above a level and the first at or below it, NC2 is
    interpolated linearly in log NC1. NaN where NC1 never reaches the level, or is already at
    or below it at the first logged epoch.

    Parameters
    ----------
    result : a RunResult
    levels : NC1 levels (positive)

    Returns
    -------
    np.ndarray, one NC2 value per level
    """
    levels = _check_levels(levels)
    log_nc1, nc2 = np.log(result.series("nc1")), result.series("nc2_wh")
    out = np.full(levels.shape, np.nan)
    for k, level in enumerate(np.log(levels)):
        below = np.flatnonzero(log_nc1 <= level)
        if below.size == 0 or below[0] == 0:
            continue
        i = below[0]
        t = (log_nc1[i - 1] - level) / (log_nc1[i - 1] - log_nc1[i])
        out[k] = nc2[i - 1] + t * (nc2[i] - nc2[i - 1])
    return out


def collapse_table(results, keys=("nc1", "nc2_h", "nc2_w", "nc2_wh", "nc3", "nc4", "equinorm_h",
                                  "equinorm_w", "equiangularity_h", "equiangularity_w", "w_norm",
                                  "h_norm")) -> Table:
    """The collapse measures at the first and the last logged epoch, mean ± std over runs (chapter 2).

    Parameters
    ----------
    results : RunResults of one setting (e.g. the seeds of one δ)
    keys : history fields, one row each

    Returns
    -------
    Table
    """
    results = _check_results(results)
    first, last = results[0].history[0]["epoch"], results[0].history[-1]["epoch"]
    values = {key: {f"epoch {first}": np.array([r.series(key)[0] for r in results]),
                    f"epoch {last}": np.array([r.series(key)[-1] for r in results])}
              for key in keys}
    c = results[0].config
    return Table(f"{c.model} on {c.dataset}, {delta_label(c.delta)}, {len(results)} runs", values)


def threshold_table(results, thresholds: dict) -> Table:
    """Epochs until each measure first reaches its thresholds, per δ, mean ± std over seeds (chapter 3).

    Parameters
    ----------
    results : RunResults
    thresholds : history field -> one threshold or a list of them,
        e.g. ``{"train_error": 0.0, "nc1": [0.05, 0.01]}``

    Returns
    -------
    Table (rows: δ; one column per threshold; cells: epochs; runs that never reach a threshold are NaN)
    """
    groups = _by_delta(results)
    if not isinstance(thresholds, dict) or not thresholds:
        raise ValueError("thresholds must be a non-empty dict: history field -> threshold(s)")
    pairs = [(key, float(t)) for key, ts in thresholds.items() for t in np.atleast_1d(ts)]
    values = {delta_label(d): {f"{key} ≤ {t:.3g}": np.array([first_epoch_at_or_below(r, key, t) for r in runs])
                               for key, t in pairs}
              for d, runs in groups.items()}
    return Table("first logged epoch at or below the threshold (mean ± std over seeds)", values, _seeds(groups))


def final_table(results, keys) -> Table:
    """Final-epoch values of some history fields, per δ, mean ± std over seeds (chapters 4, 5)."""
    groups = _by_delta(results)
    keys = list(keys)
    if not keys:
        raise ValueError("keys must name at least one history field")
    values = {delta_label(d): {key: np.array([r.series(key)[-1] for r in runs]) for key in keys}
              for d, runs in groups.items()}
    return Table("final epoch (mean ± std over seeds)", values, _seeds(groups))


def matched_nc2_table(results, levels) -> Table:
    """NC2 when NC1 first reaches each level, per δ, mean ± std over seeds (chapter 4)."""
    groups = _by_delta(results)
    levels = _check_levels(levels)
    values = {}
    for d, runs in groups.items():
        per_run = np.array([nc2_at_nc1(r, levels) for r in runs])
        values[delta_label(d)] = {f"NC1 = {level:.3g}": per_run[:, k] for k, level in enumerate(levels)}
    return Table("NC2 (W M̃ᵀ) when NC1 first reaches the level (mean ± std over seeds)", values, _seeds(groups))


def calibration_table(val_by_delta, test_by_delta, n_bins: int = 20) -> Table:
    """Test calibration per δ, with temperatures fitted two ways, mean ± std over seeds (chapter 5).

    Columns: test ECE of the raw logits; T fitted on the validation split by NLL and the test ECE
    after dividing by it (the sound protocol); the test ECE after T fitted on the validation split
    by the paper's ECE grid search; T fitted on the *test* split by that same grid search, as the
    paper did, and the test ECE it gives (optimistic: fitted on the data it scores; the two grid
    columns differ only in the split the fit saw); the mean confidence minus the accuracy on the
    test split (> 0: overconfident). Rows are aligned by position (the same runs, in seed order).

    Parameters
    ----------
    val_by_delta, test_by_delta : dict δ -> list of :class:`nclab.runs.Outputs` on the
        validation and test splits, the same runs in the same order
    n_bins : ECE bins (the paper's main numbers use 20)

    Returns
    -------
    Table
    """
    if not isinstance(val_by_delta, dict) or not isinstance(test_by_delta, dict) or \
            sorted(val_by_delta) != sorted(test_by_delta) or not val_by_delta:
        raise ValueError("val_by_delta and test_by_delta must be non-empty dicts with the same δ keys")
    values = {}
    for d in sorted(test_by_delta):
        rows = defaultdict(list)
        for val, test in zip(val_by_delta[d], test_by_delta[d], strict=True):
            t_val = fit_temperature(val.logits, val.labels, method="nll")
            t_val_grid = fit_temperature(val.logits, val.labels, method="ece", n_bins=n_bins)
            t_test = fit_temperature(test.logits, test.labels, method="ece", n_bins=n_bins)
            probs = torch.softmax(test.logits.double(), 1)
            rows["ECE"].append(ece(test.logits, test.labels, n_bins))
            rows["ECE, T from val"].append(ece(test.logits / t_val, test.labels, n_bins))
            rows["ECE, grid T from val"].append(ece(test.logits / t_val_grid, test.labels, n_bins))
            rows["ECE, T from test"].append(ece(test.logits / t_test, test.labels, n_bins))
            rows["T from val"].append(t_val)
            rows["T from test"].append(t_test)
            rows["confidence − accuracy"].append(float(probs.max(1).values.mean())
                                                 - accuracy(test.logits, test.labels))
        values[delta_label(d)] = {k: np.array(v) for k, v in rows.items()}
    return Table(f"test calibration, {n_bins} bins (mean ± std over seeds)", values)


def entropy_table(outputs_by_delta) -> Table:
    """Median entropy of the test predictions, correct and incorrect samples apart, mean ± std over seeds (chapter 5).

    Parameters
    ----------
    outputs_by_delta : dict δ -> list of :class:`nclab.runs.Outputs` on the test split, one per seed

    Returns
    -------
    Table (rows: δ; columns: correct, incorrect; a seed with no incorrect sample gives NaN)
    """
    if not isinstance(outputs_by_delta, dict) or not outputs_by_delta:
        raise ValueError("outputs_by_delta must be a non-empty dict δ -> list of Outputs")
    values = {}
    for d in sorted(outputs_by_delta):
        medians = {"correct": [], "incorrect": []}
        for out in _check_outputs(outputs_by_delta[d], "outputs_by_delta values"):
            entropy = prediction_entropy(out.logits).numpy()
            correct = (out.logits.argmax(1) == out.labels).numpy()
            for name, part in (("correct", correct), ("incorrect", ~correct)):
                medians[name].append(float(np.median(entropy[part])) if part.any() else math.nan)
        values[delta_label(d)] = {k: np.array(v) for k, v in medians.items()}
    return Table("median entropy of the test predictions, nats (mean ± std over seeds)", values)


def collapse_calibration_table(results, skip: float = 0.1) -> Table:
    """Rank correlation of test ECE with NC1 and with the norm product over training, per δ (chapter 5).

    For each run, Spearman's ρ between the test ECE and NC1, and between the test ECE and
    ‖w_k‖·‖μ_k − μ_G‖, over the logged epochs after the first ``skip`` share of them (the very
    first epochs, where everything changes at once, are left out). "More collapse, more
    miscalibration" predicts ρ(NC1, ECE) < 0 and ρ(norms, ECE) > 0.

    Parameters
    ----------
    results : RunResults
    skip : share of the logged epochs to leave out at the start, in [0, 1)

    Returns
    -------
    Table (rows: δ; one value per seed)
    """
    groups = _by_delta(results)
    if not 0 <= skip < 1:
        raise ValueError(f"skip must be in [0, 1), got {skip!r}")
    values = {}
    for d, runs in groups.items():
        rows = defaultdict(list)
        for r in runs:
            start = int(skip * len(r.history))
            ece_series = r.series("test_ece")[start:]
            norms = (r.series("w_norm") * r.series("h_norm"))[start:]
            rows["ρ(NC1, ECE)"].append(spearmanr(r.series("nc1")[start:], ece_series).statistic)
            rows["ρ(norms, ECE)"].append(spearmanr(norms, ece_series).statistic)
        values[delta_label(d)] = {k: np.array(v, float) for k, v in rows.items()}
    return Table("Spearman rank correlation over training (mean ± std over seeds)", values, _seeds(groups))


# --- Theory figures (chapters 6-8) ---
# The unconstrained feature model (chapter 6) and its Hessian (chapter 7). Each function draws
# into ``fig`` when one is given (a Figure or a SubFigure: the δ explorers of nclab.widgets place
# several side by side); otherwise it opens a pyplot figure, which a chapter cell shows with
# ``plt.show()``.

__all__ += ["theorem1_vs_delta", "hessian_eigenvalues", "spectrum_by_mode", "condition_numbers_vs_delta",
            "gd_convergence", "KAPPA_LABELS"]

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
_GD_QUANTITIES = {"objective_gap": "objective gap f − f*", "nc1": "NC1",
                  "w_norm": "relative error of mean ‖w_k‖", "h_norm": "relative error of mean ‖h̄_k‖"}


def _theory_figure(fig, figsize: tuple[float, float]):
    if fig is not None:
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize, layout="constrained")


def theorem1_vs_delta(curves: dict, measured: dict | None = None, highlight: float | None = None,
                      fig: Figure | None = None) -> Figure:
    """Theorem 1 against δ: the norms, the logit margin and the training confidence (chapter 6).

    Panels: the per-class norms ‖w_k‖ and ‖h̄_k‖; the margin z_y − z_j = log(K/β − K + 1); the
    softmax confidence on the true class p* = 1 − (K − 1)β/K. Where β ≥ 1 the minimizer is
    W = H = 0 (margin 0, confidence 1/K) and the region is shaded.

    Parameters
    ----------
    curves : the dict of :func:`nclab.ufm.theorem1_curves` (arrays over δ)
    measured : optional dict with arrays "delta", "w_norm", "h_norm", "margin", "confidence"
        (e.g. from a numerical solver), drawn as open markers
    highlight : optional δ, marked by a dotted line and dots on the curves
    fig : a Figure or SubFigure to draw into; default a new pyplot figure

    Returns
    -------
    The figure.
    """
    deltas = np.asarray(curves["delta"], dtype=np.float64)
    fig = _theory_figure(fig, (10, 3.4))
    ax_norm, ax_margin, ax_conf = fig.subplots(1, 3)
    panels = ((ax_norm, [("w_norm", "C0", "‖w_k‖"), ("h_norm", "C1", "‖h̄_k‖")]),
              (ax_margin, [("margin", "C2", "log(K/β − K + 1)")]),
              (ax_conf, [("confidence", "C3", "p* = 1 − (K−1)β/K")]))
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
    fig : a Figure or SubFigure to draw into; default a new pyplot figure

    Returns
    -------
    The figure.
    """
    values = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())
    scale = float(np.abs(values).max())
    zero = np.abs(values) <= rtol * scale
    floor = 10 ** np.floor(np.log10(np.abs(values[~zero]).min())) / 10
    index = np.arange(1, len(values) + 1)
    fig = _theory_figure(fig, (8, 3.8))
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
    fig : a Figure or SubFigure to draw into; default a new pyplot figure

    Returns
    -------
    The figure.
    """
    fig = _theory_figure(fig, (7, 4.2))
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
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    return fig


def condition_numbers_vs_delta(kappas, keys=tuple(KAPPA_LABELS), title: str | None = None,
                               fig: Figure | None = None) -> Figure:
    """Several condition numbers of the UFM Hessian at the minimizer against δ, log scale (chapter 7).

    Parameters
    ----------
    kappas : list of :class:`nclab.hessian.ConditionNumbers`, one per δ
    keys : which definitions to draw, among the keys of ``KAPPA_LABELS``
    title : axes title
    fig : a Figure or SubFigure to draw into; default a new pyplot figure

    Returns
    -------
    The figure.
    """
    kappas = sorted(kappas, key=lambda k: k.delta)
    unknown = [key for key in keys if key not in KAPPA_LABELS]
    if not kappas or unknown:
        raise ValueError(f"kappas must be a non-empty list and keys among {list(KAPPA_LABELS)}, got {list(keys)}")
    deltas = [k.delta for k in kappas]
    fig = _theory_figure(fig, (7, 4.6))
    ax = fig.subplots()
    markers = "osD^v"
    for i, key in enumerate(keys):
        ax.plot(deltas, [getattr(k, key) for k in kappas], marker=markers[i % len(markers)], ms=4,
                color=f"C{i}", label=KAPPA_LABELS[key])
    ax.set_yscale("log")
    ax.set(xlabel="label smoothing δ", ylabel="condition number κ (log)",
           title=title or "condition numbers at the minimizer")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    return fig


def _relative_error(values: np.ndarray, target: float) -> np.ndarray:
    """|values / target - 1|, or |values| when the target is 0 (the minimizer W = H = 0)."""
    return np.abs(values / target - 1) if target > 0 else np.abs(values)


def gd_convergence(result, problem, quantities=tuple(_GD_QUANTITIES), highlight: float | None = None,
                   fig: Figure | None = None) -> Figure:
    """Gradient descent on the UFM for several δ: distance to Theorem 1's minimizer per step (chapter 7).

    One panel per quantity, two per row, one line per δ, log scale: the objective gap f − f*
    (f* of the closed form), NC1, and the relative errors of the mean norms ‖w_k‖ and ‖h̄_k‖
    (absolute values where β ≥ 1 and the minimizer is 0).

    Parameters
    ----------
    result : :class:`nclab.ufm.ConvergenceResult` from :func:`nclab.ufm.convergence_experiment`
    problem : the :class:`nclab.ufm.UFM` it ran (any δ; the minimizers are taken at each δ)
    quantities : panels, among "objective_gap", "nc1", "w_norm", "h_norm"
    highlight : optional δ drawn thick in black, the others thin
    fig : a Figure or SubFigure to draw into; default a new pyplot figure

    Returns
    -------
    The figure.
    """
    unknown = [q for q in quantities if q not in _GD_QUANTITIES]
    if not quantities or unknown:
        raise ValueError(f"quantities must be among {list(_GD_QUANTITIES)}, got {list(quantities)}")
    deltas = sorted(result.trajectories)
    chosen = None if highlight is None else min(deltas, key=lambda d: abs(d - highlight))
    rows = -(-len(quantities) // 2)
    fig = _theory_figure(fig, (9, 3.3 * rows))
    axes = np.atleast_1d(fig.subplots(rows, min(2, len(quantities)))).ravel()
    ramp = colormaps["plasma"]
    for i, delta in enumerate(deltas):
        traj = result.trajectories[delta]
        best = problem.replace(delta=delta).closed_form()
        series = {"objective_gap": traj.objective - best.objective, "nc1": traj.nc1,
                  "w_norm": _relative_error(traj.w_norm, best.w_norm),
                  "h_norm": _relative_error(traj.h_norm, best.h_norm)}
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
