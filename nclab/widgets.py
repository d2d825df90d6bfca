"""Live delta explorers (chapters 1 and 8).

Every explorer in the book is a drawing function ``draw(fig, delta)`` that fills a Matplotlib
figure for one value of the smoothing parameter. :func:`delta_explorer` turns it into

- a live ipywidgets slider when a Jupyter kernel is attached (JupyterLab, Colab): moving the
  slider redraws the figure for the new delta;
- a kernel-free animation on the static book site (``NCLAB_STATIC=1``, set by ``make book``):
  the figure is drawn once per delta on a grid and stored as frames of a JavaScript player whose
  slider steps through delta. It needs no Python and no network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ._checks import check_delta

__all__ = ["delta_explorer", "is_static", "DEFAULT_DELTAS"]

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

    step = float(np.min(np.diff(deltas))) if len(deltas) > 1 else 0.01
    slider = widgets.FloatSlider(
        value=float(deltas[start]), min=float(min(deltas)), max=float(max(deltas)),
        step=step, description="δ", continuous_update=False, readout_format=".3f",
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
    deltas : the grid of delta values (each in [0, 1)); the live slider spans its range with its
        smallest spacing as the step, the static player has one frame per value
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
