"""The machinery behind every exercise checker: run the answer, compare, report without revealing."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Verdict", "check_function", "check_value", "as_array"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one answer.

    Attributes
    ----------
    exercise : the exercise's title
    status : "right", "wrong" or "not attempted"
    message : one or two sentences for the student (a hint when wrong; never the expected answer)
    """

    exercise: str
    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == "right"

    def __str__(self) -> str:
        mark = {"right": "✔ right", "wrong": "✘ not yet", "not attempted": "… not attempted yet"}[self.status]
        return f"{self.exercise}: {mark}. {self.message}".rstrip()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = {"right": "#1a7f37", "wrong": "#b35900", "not attempted": "#57606a"}[self.status]
        from html import escape
        return (f'<div style="border-left:4px solid {colour};padding:2px 8px;margin:4px 0">'
                f"{escape(str(self))}</div>")


def as_array(value) -> np.ndarray:
    """A student's answer (tensor, array, list or number) as a float64 NumPy array."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=float)


def _close(got, expected, rtol: float, atol: float) -> tuple[bool, str]:
    try:
        got = as_array(got)
    except (TypeError, ValueError):
        return False, "the answer is not a number, an array or a tensor"
    expected = as_array(expected)
    if got.shape != expected.shape:
        return False, f"the answer has shape {tuple(got.shape)}, but shape {tuple(expected.shape)} was expected"
    if not np.all(np.isfinite(got)):
        return False, "the answer contains NaN or infinite values"
    if not np.allclose(got, expected, rtol=rtol, atol=atol):
        return False, "the values differ from the correct ones"
    return True, ""


def _not_attempted(exercise: str) -> Verdict:
    return Verdict(exercise, "not attempted",
                   "Replace `raise NotImplementedError` with your code, run that cell, then this one.")


def _raised(exercise: str, exc: BaseException) -> Verdict:
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return Verdict(exercise, "wrong",
                   f"Your code raised {type(exc).__name__}: {exc} (line {where.lineno}).")


def _attempt(exercise: str, call: Callable) -> tuple[object, Verdict | None]:
    """Run the student's code, ``call()``: (its value, None), or (None, the verdict) when it raised."""
    try:
        return call(), None
    except NotImplementedError:
        return None, _not_attempted(exercise)
    except Exception as exc:  # the student's bug, reported, never raised
        return None, _raised(exercise, exc)


def check_function(exercise: str, student: Callable, reference: Callable, cases: Iterable[tuple],
                   hint: str, *, rtol: float = 1e-5, atol: float = 1e-7) -> Verdict:
    """Compare ``student(*case)`` with ``reference(*case)`` on every case.

    Parameters
    ----------
    exercise : the exercise's title, shown in the verdict
    student : the student's function
    reference : the correct function (from nclab, or built from it)
    cases : argument tuples, e.g. random inputs drawn with a fixed seed
    hint : what to look at when the answer is wrong (must not contain the answer)
    rtol, atol : tolerances of ``numpy.allclose``

    Returns
    -------
    Verdict: right only when every case matches.
    """
    if not callable(student):
        return Verdict(exercise, "wrong", f"Pass your function itself (got a {type(student).__name__}).")
    for number, case in enumerate(cases, start=1):
        got, failed = _attempt(exercise, lambda: student(*case))
        if failed is not None:
            return failed
        ok, why = _close(got, reference(*case), rtol, atol)
        if not ok:
            return Verdict(exercise, "wrong", f"On random test input {number}, {why}. Hint: {hint}")
    return Verdict(exercise, "right", "It agrees with nclab on every random test input.")


def check_value(exercise: str, student, expected, hint: str, *, rtol: float = 1e-4,
                atol: float = 1e-8) -> Verdict:
    """Compare a value the student computed with the correct one.

    ``student`` may also be a function of no arguments that returns the value (so that a skeleton
    raising ``NotImplementedError`` reads as "not attempted"); ``None`` and ``...`` also count as
    not attempted.
    """
    if student is None or student is Ellipsis:
        return _not_attempted(exercise)
    if callable(student):
        student, failed = _attempt(exercise, student)
        if failed is not None:
            return failed
    ok, why = _close(student, expected, rtol, atol)
    if not ok:
        return Verdict(exercise, "wrong", f"{why[0].upper()}{why[1:]}. Hint: {hint}")
    return Verdict(exercise, "right", "That is the correct value.")
