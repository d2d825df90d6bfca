"""Live δ explorers: a figure redrawn for each value of the smoothing parameter (chapters 1-8).

:func:`delta_explorer` takes a drawing function ``draw(delta, fig=fig)`` that fills a Matplotlib
figure for one δ, as the figures of one δ of :mod:`nclab.plots.theory` do (e.g.
:func:`nclab.plots.theory.ufm_geometry`, or ``functools.partial(nclab.plots.ufm_geometry,
num_classes=4)``), and turns it into

- a live ipywidgets slider when a Jupyter kernel is attached (JupyterLab, Colab): moving the
  slider redraws the figure for the new δ;
- a kernel-free animation on the static book site (``NCLAB_STATIC=1``, set by ``make book``):
  the figure is drawn once per δ on a grid and stored as frames of a JavaScript player whose
  slider steps through δ. It needs no Python and no network.

The figures of one δ that the theory chapters explore (the smoothed target and loss, the geometry
of the UFM minimizer, Theorem 1, the Hessian and gradient descent) are in
:mod:`nclab.plots.theory`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np

from . import settings
from ._checks import check_delta

__all__ = ["delta_explorer", "is_static", "DEFAULT_DELTAS"]

DEFAULT_DELTAS = tuple(np.round(np.linspace(0.0, 0.5, 11), 3))

#: A drawing function of δ: ``draw(delta, fig=fig)`` fills ``fig`` for one δ (its return value is unused).
DrawFn = Callable[..., object]


def is_static() -> bool:
    """True when output is being rendered for the static site (``NCLAB_STATIC=1``; see :func:`nclab.settings.static`)."""
    return settings.static()


def _title(fig: plt.Figure, delta: float) -> None:
    label = "cross-entropy" if delta == 0 else "label smoothing"
    fig.suptitle(f"δ = {delta:.3g}  ({label})", fontsize=12)


def _static_player(draw: DrawFn, deltas: Sequence[float], figsize):
    from matplotlib.animation import FuncAnimation
    from IPython.display import HTML

    fig = plt.figure(figsize=figsize, layout="constrained")

    def frame(i: int):
        fig.clear()
        draw(float(deltas[i]), fig=fig)
        _title(fig, float(deltas[i]))
        return []

    animation = FuncAnimation(fig, frame, frames=len(deltas), blit=False)
    html = animation.to_jshtml(fps=2, default_mode="once")
    plt.close(fig)
    # matplotlib links Font Awesome 4 from a CDN for the player's buttons: the book ships its own
    # icons (the theme's Font Awesome), and a page must not load anything from the network.
    html = re.sub(r"<link[^>]*font-awesome[^>]*>", "", html)
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
        draw(check_delta(delta), fig=fig)
        _title(fig, delta)
        plt.show()

    return widgets.interactive(update, delta=slider)


def delta_explorer(
    draw: DrawFn,
    deltas: Sequence[float] = DEFAULT_DELTAS,
    *,
    value: float | None = None,
    figsize: tuple[float, float] = (9.0, 3.6),
    static: bool | None = None,
):
    """Explore a figure as a function of the smoothing parameter delta.

    Parameters
    ----------
    draw : callable ``draw(delta, fig=fig)`` that draws one δ into the Matplotlib figure ``fig``
        (every function of :mod:`nclab.plots.theory` that takes δ first qualifies)
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

    Examples
    --------
    >>> def draw(delta, fig):
    ...     ax = fig.add_subplot()
    ...     ax.bar(range(3), nclab.losses.smoothed_targets([0], 3, delta)[0])
    >>> nclab.widgets.delta_explorer(draw, deltas=[0, 0.1, 0.2])  # doctest: +SKIP
    >>> nclab.widgets.delta_explorer(nclab.plots.ufm_geometry, figsize=(9.5, 4.4))  # doctest: +SKIP
    """
    if not callable(draw):
        raise ValueError(f"draw must be a function draw(delta, fig=fig), got {type(draw).__name__}")
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
