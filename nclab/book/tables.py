"""The tables of chapters 2-6: the per-seed tables the chapters print (mean ± std over seeds,
built on :class:`nclab.tables.Table`), and the solver table of chapter 6 (:func:`ufm_solver_table`).

The functions of chapters 2-5 take :class:`~nclab.train.RunResult` objects (or the
:class:`~nclab.evaluate.Outputs` of trained networks) and return a :class:`~nclab.tables.Table`:
one row per δ, one column per measure, one value per seed in each cell. The generic helpers they
use (:func:`~nclab.tables.delta_label`, :func:`~nclab.tables.by_delta`,
:func:`~nclab.tables.common_levels`, ...) are in :mod:`nclab.tables` and re-exported here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr

from ..calibration import accuracy, ece, fit_temperature, prediction_entropy
from ..descent import check_solver
from ..tables import (Table, _check_levels, _check_outputs, _check_results, _grid, _seeds, by_delta, common_levels,
                      delta_label, first_epoch_at_or_below, nc2_at_nc1)

__all__ = ["Table", "delta_label", "by_delta", "first_epoch_at_or_below", "common_levels", "nc2_at_nc1",
           "collapse_table", "threshold_table", "final_table", "matched_nc2_table", "calibration_table",
           "entropy_table", "collapse_calibration_table", "SolverTable", "ufm_solver_table"]


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

    A threshold is kept only when it lies strictly inside every run's range: every run is above it
    at its first logged epoch and reaches it by its last (otherwise the comparison says nothing
    about speed, e.g. "+0 epochs" when every run is there at the first log); :attr:`dropped` lists
    the others. Each column's resolution is the widest spacing of the logged epochs.

    Parameters
    ----------
    results : RunResults
    thresholds : history field -> one threshold or a list of them,
        e.g. ``{"train_error": 0.0, "nc1": [0.05, 0.01]}``

    Returns
    -------
    Table (rows: δ; one column per kept threshold; cells: epochs), with ``dropped``: the label of
    every threshold left out and why
    """
    groups = by_delta(results)
    if not isinstance(thresholds, dict) or not thresholds:
        raise ValueError("thresholds must be a non-empty dict: history field -> threshold(s)")
    pairs = [(key, float(t)) for key, ts in thresholds.items() for t in np.atleast_1d(ts)]
    runs = [r for group in groups.values() for r in group]
    kept, dropped = [], {}
    for key, t in pairs:
        label = f"{key} ≤ {t:.3g}"
        firsts = [r.series(key)[0] for r in runs]
        reached = [first_epoch_at_or_below(r, key, t) for r in runs]
        if any(v <= t for v in firsts):
            dropped[label] = "some run is already there at its first logged epoch"
        elif any(np.isnan(e) for e in reached):
            dropped[label] = "some run never gets there"
        else:
            kept.append((key, t, label))
    values = {delta_label(d): {label: np.array([first_epoch_at_or_below(r, key, t) for r in group])
                               for key, t, label in kept}
              for d, group in groups.items()}
    grid = float(max(np.diff(r.epochs).max(initial=1) for r in runs))
    table = Table("first logged epoch at or below the threshold (mean ± std over seeds)", values, _seeds(groups),
                  resolution={label: grid for _, _, label in kept})
    table.dropped = dropped
    return table


def final_table(results, keys) -> Table:
    """Final-epoch values of some history fields, per δ, mean ± std over seeds (chapters 4, 5).

    Parameters
    ----------
    results : RunResults
    keys : history fields, one column each

    Returns
    -------
    Table (rows: δ; one value per seed)
    """
    groups = by_delta(results)
    keys = list(keys)
    if not keys:
        raise ValueError("keys must name at least one history field")
    values = {delta_label(d): {key: np.array([r.series(key)[-1] for r in runs]) for key in keys}
              for d, runs in groups.items()}
    return Table("final epoch (mean ± std over seeds)", values, _seeds(groups))


def matched_nc2_table(results, levels) -> Table:
    """NC2 when NC1 first reaches each level, per δ, mean ± std over seeds (chapter 4).

    Parameters
    ----------
    results : RunResults
    levels : NC1 levels that every run crosses (e.g. :func:`common_levels`)

    Returns
    -------
    Table (rows: δ; one column per level; cells: :func:`nc2_at_nc1`, NaN where a run never
    reaches the level)
    """
    groups = by_delta(results)
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
    groups = by_delta(results)
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


@dataclass(frozen=True)
class SolverTable:
    """Numerical solutions of UFM problems against Theorem 1's closed form (chapter 6).

    Attributes
    ----------
    values : row label -> column -> number. Columns: "β"; "iter" (L-BFGS iterations); "f − f*"
        (objective gap to the closed form); "‖w‖ err" and "‖μ‖ err" (relative errors of the mean
        ‖w_k‖ and ‖μ_k‖; when β ≥ 1, where the minimizer is zero, the norms themselves); "NC1",
        "NC2", "NC3" at the solution (NaN when β ≥ 1, where they are undefined)
    rounding : row label -> the distance ``|f − f*|`` in units of the float64 rounding of f* (eps · f*)
    """

    values: dict[str, dict[str, float]]
    rounding: dict[str, float]

    @property
    def max_rounding(self) -> float:
        """The largest distance ``|f − f*|`` of the table, in units of the float64 rounding of f*."""
        return max(self.rounding.values())

    def __str__(self) -> str:
        formats = {"β": "{:.3f}", "iter": "{:.0f}"}
        cells = {label: {c: "-" if math.isnan(v) else formats.get(c, "{:.0e}").format(v) for c, v in row.items()}
                 for label, row in self.values.items()}
        return (_grid("L-BFGS against Theorem 1 (β ≥ 1: the norm columns hold the norms themselves)", cells)
                + f"\nlargest |f − f*|: {self.max_rounding:.1f} units of the float64 rounding of f*")

    def __repr__(self) -> str:
        return str(self)


def ufm_solver_table(problems, seeds=(0, 1, 2), steps: int = 500) -> SolverTable:
    """Solve each UFM from several random starts with L-BFGS and compare with Theorem 1 (chapter 6).

    One row per problem and seed, labelled "K,n,d δ=… s=seed". Printing the table gives the
    objective gap, the errors of the norms and the collapse measures of every solution, and the
    largest gap in units of float64 rounding: a solver that found the global minimum everywhere
    shows gaps of a few units and errors near zero.

    Parameters
    ----------
    problems : :class:`nclab.ufm.UFM` objects with dim >= K − 1
    seeds : seeds of the random starts (:meth:`nclab.ufm.UFM.solve`)
    steps : L-BFGS iterations at most

    Returns
    -------
    SolverTable
    """
    problems, seeds = list(problems), [int(s) for s in seeds]
    if not problems or not seeds:
        raise ValueError("problems and seeds must both be non-empty")
    values, rounding = {}, {}
    for p in problems:
        for seed in seeds:
            check = check_solver(p, seed=seed, steps=steps)
            label = f"{p.num_classes},{p.per_class},{p.dim} δ={p.delta:g} s={seed}"
            values[label] = dict(zip(("β", "iter", "f − f*", "‖w‖ err", "‖μ‖ err", "NC1", "NC2", "NC3"),
                                     (check.beta, check.iterations, check.gap, check.w_error, check.h_error,
                                      check.nc1, check.nc2, check.nc3)))
            rounding[label] = check.rounding
    return SolverTable(values, rounding)
