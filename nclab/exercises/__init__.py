"""Self-checked coding exercises (chapters 1-8).

Each chapter's exercises live in a submodule, ``nclab.exercises.ch1`` to ``nclab.exercises.ch8``.
An exercise is a function that takes the student's answer (a function or a value), compares it
with what :mod:`nclab` computes on random inputs, and says *right* or *not yet*, with a hint. It
never prints the expected answer::

    import nclab as nc

    def smoothed_targets(labels, num_classes, delta):
        raise NotImplementedError        # the student writes this

    nc.exercises.ch1.smoothed_targets(smoothed_targets)
    # -> not attempted yet: replace `raise NotImplementedError` with your code

A checker returns a :class:`Verdict`, which is truthy when the answer is right and shows itself
as one line in a notebook. A function that raises ``NotImplementedError`` counts as "not attempted
yet", any other exception as a wrong answer whose message is shown; neither stops the notebook.
The machinery the chapter modules share is in ``nclab.exercises._core``.
"""

from __future__ import annotations

import importlib

from ._core import Verdict, check_function, check_value

__all__ = ["Verdict", "check_function", "check_value", "CHAPTERS"]

CHAPTERS = tuple(f"ch{i}" for i in range(1, 9))


def __getattr__(name: str):
    # Chapter modules are imported on first use: nc.exercises.ch3 works without an import line.
    if name in CHAPTERS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
