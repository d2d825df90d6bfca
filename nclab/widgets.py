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

:func:`quick_check` asks one short conceptual question (several options, or a number) where a
chapter has just taught the idea: in a kernel it says right or not yet when the reader checks an
answer, and shows the explanation only after an attempt; on the static site it shows the question
and its options, and the chapter folds the answer right below.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from html import escape

import matplotlib.pyplot as plt
import numpy as np

from . import settings
from ._checks import ArgumentTypeError, _shown, check_delta, check_number

__all__ = ["delta_explorer", "quick_check", "is_static", "DEFAULT_DELTAS"]

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


def _text(value, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ArgumentTypeError(f"{name} must be a non-empty string, got {type(value).__name__} {_shown(value)}")
    return value.strip()


def _checked_options(options) -> tuple[str, ...] | None:
    if options is None:
        return None
    if isinstance(options, (str, bytes)) or not isinstance(options, Sequence):
        raise ArgumentTypeError(f"options must be a list of strings or None (a number), got {type(options).__name__} "
                                f"{_shown(options)}")
    texts = tuple(_text(option, f"options[{i}]") for i, option in enumerate(options))
    if len(texts) < 2 or len(set(texts)) < len(texts):
        raise ValueError(f"options must hold at least two different strings, got {_shown(list(options))}")
    return texts


def _checked_answer(answer, options: tuple[str, ...] | None) -> int | float:
    if options is None:
        return check_number(answer, "answer", expected="a finite number (the options are None)")
    if isinstance(answer, bool) or not isinstance(answer, (int, np.integer)):
        raise ArgumentTypeError(f"answer must be the index of the right option, an integer from 0 to "
                                f"{len(options) - 1}, got {type(answer).__name__} {_shown(answer)}")
    if not 0 <= answer < len(options):
        raise ValueError(f"answer must be the index of the right option, from 0 to {len(options) - 1}, got {answer!r}")
    return int(answer)


def _parsed(text: str) -> float | None:
    """A number typed by the reader ("0.25", "-1/4", "2e-3"), or None when it is not one."""
    try:
        value = float(Fraction(text.strip().replace(" ", "")))
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


def _static_check(question: str, options: tuple[str, ...] | None):
    from IPython.display import HTML

    if options is None:
        choices = "<p style='margin:4px 0'>Your answer: a number.</p>"
    else:
        choices = "".join(f"<li>{escape(option)}</li>" for option in options)
        choices = f"<ol type='A' style='margin:4px 0'>{choices}</ol>"
    return HTML("<div style='border-left:4px solid #57606a;padding:2px 10px;margin:4px 0'>"
                f"<p style='margin:4px 0'><b>Quick check.</b> {escape(question)}</p>{choices}"
                "<p style='font-size:0.85em;color:#555;margin:4px 0'>Think it over, then open the answer "
                "below (run the chapter in Jupyter or Colab to have your answer checked here).</p></div>")


def _live_check(question: str, options: tuple[str, ...] | None, answer, explanation: str, tolerance: float):
    import ipywidgets as widgets

    if options is None:
        entry = widgets.Text(placeholder="a number, e.g. 0.25 or 1/4", description="Answer")
    else:
        entry = widgets.RadioButtons(options=list(options), value=None, layout={"width": "max-content"})
    check = widgets.Button(description="Check")
    reveal = widgets.Button(description="Show the answer", disabled=True)
    feedback = widgets.HTML("")
    right_text = options[answer] if options is not None else f"{answer:g}"

    def say(colour: str, text: str) -> None:
        feedback.value = f"<div style='border-left:4px solid {colour};padding:2px 8px'>{escape(text)}</div>"

    def on_check(_button) -> None:
        if entry.value in (None, ""):
            say("#57606a", "Choose an answer first." if options is not None else "Enter a number first.")
            return
        if options is None:
            given = _parsed(entry.value)
            if given is None:
                say("#57606a", f"{entry.value!r} is not a number: write e.g. 0.25, -1/4 or 2e-3.")
                return
            right = abs(given - answer) <= tolerance
        else:
            right = options.index(entry.value) == answer
        reveal.disabled = False           # an attempt was made: the answer may be shown now
        if right:
            say("#1a7f37", f"✔ Right. {explanation}")
        else:
            say("#b35900", "✘ Not yet. Think again and check another answer, or show the answer.")

    def on_reveal(_button) -> None:
        if not reveal.disabled:
            say("#57606a", f"The answer: {right_text}. {explanation}")

    check.on_click(on_check)
    reveal.on_click(on_reveal)
    return widgets.VBox([widgets.HTMLMath(f"<b>Quick check.</b> {escape(question)}"), entry,
                         widgets.HBox([check, reveal]), feedback])


def quick_check(question: str, options: Sequence[str] | None, answer, explanation: str, *,
                tolerance: float | None = None, static: bool | None = None):
    """A short conceptual question with immediate feedback, and nothing of its answer before an attempt.

    Parameters
    ----------
    question : the question, one or two sentences of plain text
    options : the choices (at least two different strings), or None when the answer is a number
    answer : the index of the right option (0 for the first), or the number when ``options`` is None
    explanation : why the answer is right, shown after a right answer or when the reader asks for
        the answer, which is possible only after a first attempt
    tolerance : for a number, the largest accepted distance from ``answer``; default 1% of
        ``|answer|`` (``1e-9`` for an answer of 0)
    static : force the static view (True) or the live widget (False); default :func:`is_static`

    Returns
    -------
    An ``ipywidgets.VBox`` (live: the question, the options or a box for a number, a Check button,
    a "Show the answer" button that works only after an attempt, and the feedback), or an
    ``IPython.display.HTML`` with the question and its options for the static site, where the
    chapter folds the answer right below the cell.

    Examples
    --------
    >>> nclab.widgets.quick_check("For K = 5, what cosine do two vectors of a simplex ETF share?", None,
    ...                           -0.25, "The cosine is -1/(K-1) = -1/4.")   # doctest: +SKIP
    """
    question = _text(question, "question")
    options = _checked_options(options)
    answer = _checked_answer(answer, options)
    explanation = _text(explanation, "explanation")
    if tolerance is not None:
        if options is not None:
            raise ValueError("tolerance applies only to a number answer (options=None), got options as well")
        tolerance = check_number(tolerance, "tolerance", 0.0, low_open=True)
    elif options is None:
        tolerance = 0.01 * abs(answer) if answer != 0 else 1e-9
    use_static = is_static() if static is None else bool(static)
    if use_static:
        return _static_check(question, options)
    return _live_check(question, options, answer, explanation, tolerance)
