"""What the figure modules of :mod:`nclab.plots` share: the ``fig`` keyword, the colours of δ and
the panels of the training curves."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure, FigureBase

from .._deltas import SWEEP_DELTAS

#: Panels of the curves over the epochs: history field -> (title, log scale). "norms" draws the
#: mean ‖w_k‖ (solid) and ‖μ_k − μ_G‖ (dashed) together.
CURVE_PANELS = {
    "train_loss": ("training loss (log)", True),
    "train_error": ("train error", False),
    "test_error": ("test error", False),
    "nc1": ("NC1  tr(Σ_W Σ_B†)/K  (log)", True),
    "nc2_wh": ("NC2  (W M̃ᵀ vs simplex ETF)", False),
    "nc3": ("NC3  ‖W/‖W‖ − M̃/‖M̃‖‖", False),
    "norms": ("norms: ‖w_k‖ (solid), ‖μ_k − μ_G‖ (dashed)", False),
}


def prepare(fig, figsize: tuple[float, float]):
    """The figure a drawing function draws into.

    Parameters
    ----------
    fig : None, or a :class:`matplotlib.figure.Figure` or :class:`matplotlib.figure.SubFigure`
    figsize : size in inches of a new figure

    Returns
    -------
    A new ``Figure(figsize=figsize, layout="constrained")`` when ``fig`` is None, else ``fig``
    cleared (a δ explorer redraws the same figure; a SubFigure places one drawing beside others).
    """
    if fig is None:
        return Figure(figsize=figsize, layout="constrained")
    if not isinstance(fig, FigureBase):
        raise ValueError(f"fig must be a matplotlib Figure or SubFigure, or None; got {type(fig).__name__}")
    fig.clear()
    return fig


def panel_grid(fig, n: int, most_columns: int, size) -> tuple:
    """``n`` panels in rows of at most ``most_columns``, the empty places of the last row removed.

    Parameters
    ----------
    fig : the ``fig`` of a drawing function (see :func:`prepare`)
    n : how many panels
    most_columns : the most panels a row holds
    size : (columns, rows) -> the size in inches of a new figure

    Returns
    -------
    (the figure drawn into, array of its ``n`` axes in reading order)
    """
    columns = min(most_columns, n)
    rows = -(-n // columns)
    fig = prepare(fig, size(columns, rows))
    axes = np.atleast_1d(fig.subplots(rows, columns)).flatten()
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def delta_colours(deltas) -> dict[float, tuple]:
    """Black for CE, then a purple-to-orange ramp over the positive δ values."""
    positive = sorted(d for d in set(deltas) if d > 0)
    ramp = colormaps["plasma"]
    colours = {0.0: (0.0, 0.0, 0.0, 1.0)}
    for i, d in enumerate(positive):
        colours[d] = ramp(0.55 if len(positive) == 1 else 0.25 + 0.6 * i / (len(positive) - 1))
    return colours


def sweep_colours(deltas) -> dict[float, tuple]:
    """The colours of :func:`delta_colours` over the book's δ sweep, so a δ keeps its colour in every figure."""
    return delta_colours(set(deltas) | set(SWEEP_DELTAS))


def curve_series(key: str) -> list[tuple[str, str]]:
    """The history fields a panel of :data:`CURVE_PANELS` draws, each with its line style."""
    return [("w_norm", "-"), ("h_norm", "--")] if key == "norms" else [(key, "-")]


def label_curve_panel(ax, key: str) -> None:
    """Title, axis labels, scale and grid of a panel of :data:`CURVE_PANELS` over the epochs."""
    title, log = CURVE_PANELS[key]
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean norm" if key == "norms" else key.replace("_", " "))
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)


def first_config(groups):
    """The config of the first run of δ-grouped runs (as from ``nclab.tables.by_delta``): the model
    and data set the figure's legend or title names."""
    return next(iter(groups.values()))[0].config


def final_epoch_title(groups, seeds: str) -> str:
    """The title of a figure of the final epoch against δ: model, data set and ``seeds`` (how they are pooled)."""
    first = first_config(groups)
    return f"final epoch against δ ({first.model} on {first.dataset}, {seeds})"


def errorbar_vs_delta(ax, deltas, mean_std: tuple, label: str) -> None:
    """One measure against δ on ``ax``: the mean with ±1 std bars, as :func:`final_mean_std` gives them."""
    mean, std = mean_std
    ax.errorbar(deltas, mean, yerr=std, marker="o", capsize=3, label=label)


def final_mean_std(groups, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over the seeds of each δ of a final-epoch field (a missing value counts as NaN).

    Parameters
    ----------
    groups : δ -> list of RunResults, as from ``nclab.tables.by_delta``
    key : a field of ``RunResult.final``

    Returns
    -------
    (mean, std), arrays with one entry per δ of ``groups``
    """
    values = [np.array([np.nan if r.final.get(key) is None else r.final[key] for r in runs], float)
              for runs in groups.values()]
    return np.array([np.nanmean(v) for v in values]), np.array([np.nanstd(v) for v in values])
