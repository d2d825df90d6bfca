"""The figures of the empirical chapters (2-5): a trained network and a sweep of runs over δ.

Every function draws into ``fig`` (a :class:`matplotlib.figure.Figure` or
:class:`~matplotlib.figure.SubFigure`, cleared first) or into a new constrained-layout Figure,
never through pyplot, and returns it: make it a cell's last value to show it, or save it with
``fig.savefig(...)``. The δ explorers of chapters 2-5 (:func:`nclab.widgets.delta_explorer`)
redraw them into one figure. Runs are grouped by δ and coloured the same way in every figure
(black for CE, a ramp over the book's δ sweep for LS); the tables printed beside the figures are
in :mod:`nclab.tables`.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..calibration import prediction_entropy, reliability_bins
from ..metrics import FeatureStats, nc1
from ..runs import Outputs
from ..tables import Table, by_delta, _check_levels, _check_outputs, delta_label, nc2_at_nc1
from ._base import (CURVE_PANELS, curve_series, errorbar_vs_delta, final_epoch_title, final_mean_std, first_config,
                    label_curve_panel, panel_grid, prepare, sweep_colours)

__all__ = ["feature_snapshots", "simplex_snapshots", "training_curves_spread", "nc_plane", "matched_nc2",
           "reliability_diagram", "calibration_vs_delta", "ece_vs_collapse", "entropy_by_correctness"]


def _check_titles(titles, n: int) -> list[str]:
    titles = [str(t) for t in titles]
    if len(titles) != n:
        raise ValueError(f"titles must have one entry per snapshot ({n}), got {len(titles)}")
    return titles


def _stats(outputs: Outputs) -> FeatureStats:
    return FeatureStats(outputs.logits.shape[1], outputs.features.shape[1]).update(outputs.features, outputs.labels)


def _pooled(outputs, temperatures=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits and labels of the outputs of one δ, seeds pooled; with ``temperatures`` (one per
    output) the logits are first divided by them, in float64."""
    outputs = _check_outputs(outputs, "outputs_by_delta values")
    logits = [o.logits for o in outputs]
    if temperatures is not None:
        logits = [z.double() / t for z, t in zip(logits, list(temperatures), strict=True)]
    return torch.cat(logits), torch.cat([o.labels for o in outputs])


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
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    snapshots = _check_outputs(snapshots, "snapshots")
    titles = _check_titles(titles, len(snapshots))
    K = snapshots[0].logits.shape[1]
    classes = [int(c) for c in classes]
    if len(set(classes)) != 3 or not all(0 <= c < K for c in classes):
        raise ValueError(f"classes must be three distinct class indices in [0, {K}), got {classes!r}")
    # two panels a row keep them legible on a book page
    fig, axes = panel_grid(fig, len(snapshots), 2, lambda columns, rows: (4.3 * columns, 4.0 * rows))
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
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    snapshots = _check_outputs(snapshots, "snapshots")
    titles = _check_titles(titles, len(snapshots))
    K = snapshots[0].logits.shape[1]
    fig = prepare(fig, (10.5, 3.8))
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


def training_curves_spread(results, keys=("train_error", "test_error", "nc1", "nc2_wh", "nc3", "norms"),
                           fig: Figure | None = None) -> Figure:
    """Measures over the epochs, mean over seeds with a ±1 std band, one colour per δ (chapter 3).

    Like :func:`nclab.plots.report.training_curves`, but the seeds of each δ are averaged at each
    logged epoch, so the band shows how much of a difference between δ values is seed noise.
    Dotted vertical lines mark the learning-rate milestones.

    Parameters
    ----------
    results : RunResults (several δ, several seeds each; the seeds of one δ must log the same epochs)
    keys : panels to draw, among "train_loss", "train_error", "test_error", "nc1", "nc2_wh", "nc3" and "norms"
        (mean ‖w_k‖ and ‖μ_k − μ_G‖)
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    groups = by_delta(results)
    keys = list(keys)
    unknown = [k for k in keys if k not in CURVE_PANELS]
    if not keys or unknown:
        raise ValueError(f"keys must be a non-empty list among {', '.join(CURVE_PANELS)}; got {keys!r}")
    colours = sweep_colours(groups)
    fig, axes = panel_grid(fig, len(keys), 3,
                           lambda columns, rows: (3.4 * columns + (2.2 if len(keys) == 1 else 0), 3.0 * rows))
    for delta, runs in groups.items():
        epochs = runs[0].epochs
        if any(not np.array_equal(r.epochs, epochs) for r in runs):
            raise ValueError(f"the runs of δ={delta:g} log different epochs; they cannot be averaged")
        for ax, key in zip(axes, keys):
            for name, style in curve_series(key):
                values = np.array([r.series(name) for r in runs])
                mean, std = values.mean(0), values.std(0)
                label = f"{delta_label(delta)} ({len(runs)} seeds)" if style == "-" else None
                ax.plot(epochs, mean, style, color=colours[delta], lw=1.6, label=label)
                ax.fill_between(epochs, mean - std, mean + std, color=colours[delta], alpha=0.2, lw=0)
    first = first_config(groups)
    for ax, key in zip(axes, keys):
        for milestone in first.milestones if first.schedule == "step" else []:
            ax.axvline(milestone, color="0.5", ls=":", lw=1)
        label_curve_panel(ax, key)
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
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    groups = by_delta(results)
    fig = prepare(fig, (7, 5.5))
    ax = fig.subplots()
    errors = np.concatenate([r.series("test_error") for runs in groups.values() for r in runs])
    norm = Normalize(vmin=np.nanmin(errors), vmax=np.nanmax(errors))
    colours = sweep_colours(groups)
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
    compares the geometry at equal within-class collapse (see :func:`nclab.tables.nc2_at_nc1`).

    Parameters
    ----------
    results : RunResults
    levels : NC1 levels that every run crosses (e.g. :func:`nclab.tables.common_levels`)
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    groups = by_delta(results)
    levels = _check_levels(levels)
    colours = sweep_colours(groups)
    fig = prepare(fig, (6.5, 4.5))
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
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    deltas = [float(d) for d in np.atleast_1d(deltas)]
    missing = [d for d in deltas if d not in outputs_by_delta]
    if not deltas or missing:
        raise ValueError(f"deltas must be keys of outputs_by_delta, got {missing or deltas!r}")
    fig = prepare(fig, (4.2 * len(deltas), 5.0))
    axes = fig.subplots(2, len(deltas), squeeze=False, height_ratios=[3, 1], sharex=True)
    for col, delta in enumerate(deltas):
        logits, labels = _pooled(outputs_by_delta[delta], None if temperatures is None else temperatures[delta])
        bins = reliability_bins(logits.double(), labels, n_bins)
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
    calibration : the :class:`nclab.tables.Table` of :func:`nclab.book.tables.calibration_table` for the
        same runs
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    groups = by_delta(results)
    if not isinstance(calibration, Table):
        raise ValueError(f"calibration must be the Table of calibration_table, got {type(calibration).__name__}")
    deltas = np.array(list(groups))
    labels = [delta_label(d) for d in deltas]
    missing = [lab for lab in labels if lab not in calibration.values]
    if missing:
        raise ValueError(f"calibration has no row for {', '.join(missing)}")
    fig = prepare(fig, (9.5, 6.8))
    axes = fig.subplots(2, 2).flatten()

    def draw(ax, means_and_stds, label):
        errorbar_vs_delta(ax, deltas, means_and_stds, label)

    def from_table(column):
        cells = [calibration.values[lab][column] for lab in labels]
        return np.array([np.nanmean(c) for c in cells]), np.array([np.nanstd(c) for c in cells])

    for column, label in (("ECE", "raw logits"), ("ECE, T from val", "T from validation"),
                          ("ECE, T from test", "T from test (paper)")):
        draw(axes[0], from_table(column), label)
    axes[0].set_yscale("log")  # raw and scaled ECE differ by an order of magnitude
    draw(axes[1], from_table("T from val"), "validation, NLL")
    draw(axes[1], from_table("T from test"), "test, ECE grid")
    axes[1].axhline(1.0, color="k", lw=0.8, ls=":")
    draw(axes[2], final_mean_std(groups, "nc1"), "NC1")
    axes[2].set_yscale("log")
    draw(axes[3], final_mean_std(groups, "w_norm"), "‖w_k‖")
    draw(axes[3], final_mean_std(groups, "h_norm"), "‖μ_k − μ_G‖")
    for ax, title, ylabel in ((axes[0], "test ECE (log)", "ECE"), (axes[1], "fitted temperature", "T"),
                              (axes[2], "NC1 (log)", "NC1"), (axes[3], "mean norms", "norm")):
        ax.set(title=title, xlabel="δ", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(final_epoch_title(groups, "mean ± std over seeds"))
    return fig


def ece_vs_collapse(results, fig: Figure | None = None) -> Figure:
    """Test ECE against NC1 and against the norm product ‖w‖·‖μ − μ_G‖ over training (chapter 5).

    One line per run (colour: δ), one point per logged epoch. The product of the mean norms
    sets the scale of the logits, hence how confident the network can be.

    Parameters
    ----------
    results : RunResults
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    groups = by_delta(results)
    colours = sweep_colours(groups)
    fig = prepare(fig, (10, 4.0))
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
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    if not isinstance(outputs_by_delta, dict) or not outputs_by_delta:
        raise ValueError("outputs_by_delta must be a non-empty dict δ -> list of Outputs")
    deltas = sorted(outputs_by_delta)
    fig = prepare(fig, (min(9.5, 1.3 * len(deltas) + 2.5), 4.2))
    ax = fig.subplots()
    for i, delta in enumerate(deltas):
        logits, labels = _pooled(outputs_by_delta[delta])
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


