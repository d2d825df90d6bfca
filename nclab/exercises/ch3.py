"""Exercises of chapter 3 (training dynamics): epochs to a threshold, and the paired interval.

Each checker takes the student's function, runs it on random inputs drawn with a fixed seed, and
compares it with what the chapter itself uses: :func:`nclab.tables.first_epoch_at_or_below` for the
epochs to a threshold, :func:`nclab.stats.paired` for the paired comparison of LS and CE seed by
seed. It says right or not yet, with a hint, and never prints the expected values.

Example
-------
>>> import nclab as nc
>>> def paired_interval(ls, ce):
...     raise NotImplementedError
>>> nc.exercises.ch3.paired_interval(paired_interval).status
'not attempted'
"""

from __future__ import annotations

import math

import numpy as np

from nclab import stats, tables
from nclab.train import RunResult, TrainConfig

from ._core import Verdict, _attempt, as_array, check_function

__all__ = ["first_epoch_at_or_below", "paired_interval"]


def _as_run(epochs, values, key: str = "value") -> RunResult:
    """A run whose history holds one field, so that nclab's own function can read it."""
    history = [{"epoch": int(e), key: float(v)} for e, v in zip(epochs, values)]
    return RunResult(TrainConfig(), history, {})


def _series_cases(seed: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(logged epochs, values, threshold): error curves with blips, noisy falling NC curves."""
    rng = np.random.default_rng(seed)
    cases = []
    for every in (5, 2, 10):
        epochs = np.r_[1, np.arange(every, 12 * every + 1, every)]
        n = epochs.size
        # A training error that hits 0, comes back once, then stays at 0.
        error = np.maximum(0.3 * np.exp(-epochs / (2 * every)) - 0.02, 0.0).round(3)
        first_zero = int(np.flatnonzero(error == 0)[0])
        error[first_zero + 1] = 0.004
        cases.append((epochs, error, 0.0))
        # A falling, noisy NC measure; the threshold is one of its own values (reached exactly).
        curve = np.exp(-epochs / (4 * every) + 0.15 * rng.normal(size=n))
        cases.append((epochs, curve, float(np.sort(curve)[n // 3])))
    return cases


def first_epoch_at_or_below(student) -> Verdict:
    """Chapter 3, exercise 3.1: the first logged epoch at which a series reaches a threshold.

    The student writes ``first_epoch_at_or_below(epochs, values, threshold)``: ``epochs`` are the
    logged epochs (increasing integers, not 0, 1, 2, ...), ``values`` the measure at those epochs;
    it returns the first logged epoch whose value is at or below ``threshold``, and NaN when no
    value is. The reference is :func:`nclab.tables.first_epoch_at_or_below`, which chapter 3's
    threshold table uses.

    Parameters
    ----------
    student : the student's function

    Returns
    -------
    Verdict
    """
    title = "Exercise 3.1 (epochs to a threshold)"
    hint = ("return a logged epoch, not a position in the array; a value equal to the threshold "
            "counts as reaching it; and the first time counts, even if the series goes back above")

    def reference(epochs, values, threshold):
        return tables.first_epoch_at_or_below(_as_run(epochs, values), "value", threshold)

    verdict = check_function(title, student, reference, _series_cases(31), hint)
    if verdict.status != "right":
        return verdict
    # A series that never gets there: the answer must be NaN (check_function rejects NaN).
    epochs = np.arange(2, 41, 2)
    got, failed = _attempt(title, lambda: student(epochs, np.linspace(1.0, 0.5, epochs.size), 0.1))
    if failed is not None:
        return failed
    try:
        never = as_array(got)
    except (TypeError, ValueError):
        never = np.array([0.0])
    if never.shape != () or not math.isnan(float(never)):
        return Verdict(title, "wrong", "A series that never reaches the threshold should give NaN "
                                       "(float('nan')), not an epoch or None.")
    return verdict


def _paired_cases(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ls, ce): per-seed values, LS correlated with CE through the seed, several numbers of seeds."""
    rng = np.random.default_rng(seed)
    cases = []
    for n in (8, 5, 12, 3):
        ce = rng.lognormal(mean=-2.0, sigma=0.8, size=n)                  # spread between seeds
        ls = ce * (1.0 + rng.normal(-0.2, 0.1, size=n))                 # the effect, seed by seed
        cases.append((ls, ce))
    return cases


def paired_interval(student) -> Verdict:
    """Chapter 3, exercise 3.2: the mean paired difference and its 95% paired-t interval.

    The student writes ``paired_interval(ls, ce)`` for two arrays with one value per seed (same
    index = same seed) and returns ``(mean, low, high)``: the mean of the differences
    Δ = ls − ce of each seed and the 95% interval Δ̄ ± t_{0.975, R−1} σ̂_Δ / √R over R seeds, with
    σ̂_Δ the standard deviation of the differences (chapter 3's notation). The reference is
    :func:`nclab.stats.paired`, which every verdict of chapters 3-5 uses.

    Parameters
    ----------
    student : the student's function

    Returns
    -------
    Verdict
    """
    def reference(ls, ce):
        p = stats.paired(ls, ce)
        return np.array([p.mean, p.low, p.high])

    title = "Exercise 3.2 (paired interval)"
    hint = ("work with the differences seed by seed (not with the two groups' separate spreads); use "
            "the sample standard deviation (n − 1) and Student's t with n − 1 degrees of freedom")
    if not callable(student):
        return check_function(title, student, reference, (), hint)
    return check_function(title, lambda ls, ce: _triple(student(ls, ce)), reference, _paired_cases(32),
                          hint, rtol=1e-6)


def _triple(got):
    """The student's (mean, low, high) as one array (a tuple of tensors or numbers is fine)."""
    if isinstance(got, (tuple, list)):
        try:
            return np.array([as_array(x) for x in got], dtype=float)
        except ValueError:
            return got
    return got
