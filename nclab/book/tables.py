"""The tables of chapters 2-6: per-seed numbers of training runs, printed as mean ± std, and the
solver table of chapter 6 (:func:`ufm_solver_table`).

The functions of chapters 2-5 take :class:`~nclab.train.RunResult` objects (or the
:class:`~nclab.runs.Outputs` of trained networks) and return a :class:`Table`: one row per
setting (usually one per δ, labelled by :func:`delta_label`), one column per measure, one value
per seed in each cell. Printing a table gives mean ± std over the seeds; :meth:`Table.compare`
and :meth:`Table.verdicts` pair the seeds of two rows (:mod:`nclab.stats`). The figures beside
these tables are in :mod:`nclab.plots`.

Example
-------
>>> table = Table("test ECE", {"CE": {"ECE": np.array([0.031, 0.035, 0.029])},
...                            "LS δ=0.1": {"ECE": np.array([0.012, 0.015, 0.011])}})
>>> print(table)
test ECE
               ECE
CE        0.03167 ± 0.0025
LS δ=0.1  0.01267 ± 0.0017
>>> round(table.mean("LS δ=0.1", "ECE"), 4)
0.0127
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr

from .calibration import accuracy, ece, fit_temperature, prediction_entropy
from .runs import Outputs
from .stats import Paired, paired
from .train import RunResult

__all__ = ["Table", "delta_label", "by_delta", "first_epoch_at_or_below", "common_levels", "nc2_at_nc1", "collapse_table",
           "threshold_table", "final_table", "matched_nc2_table", "calibration_table", "entropy_table",
           "collapse_calibration_table", "SolverTable", "ufm_solver_table"]


def delta_label(delta: float) -> str:
    """The label of a δ in tables and legends: "CE" for δ = 0, "LS δ=0.05" otherwise (chapters 2-8).

    Example
    -------
    >>> delta_label(0.0), delta_label(0.05)
    ('CE', 'LS δ=0.05')
    """
    return "CE" if delta == 0 else f"LS δ={delta:g}"


def _check_results(results) -> list[RunResult]:
    """``results`` as a non-empty list of RunResults with logged epochs (shared with :mod:`nclab.plots`)."""
    if isinstance(results, RunResult):
        results = [results]
    results = list(results)
    if not results or not all(isinstance(r, RunResult) for r in results):
        raise ValueError("results must be a RunResult or a non-empty list of RunResult")
    if any(not r.history for r in results):
        raise ValueError("every result must have at least one logged epoch")
    return results


def by_delta(results) -> dict[float, list[RunResult]]:
    """Runs grouped by δ, in increasing δ, each group in increasing seed (chapters 2-5).

    The order pairs runs across groups: the i-th run of every δ has the i-th seed, which is how
    :class:`Table` compares seed by seed.
    """
    groups: dict[float, list[RunResult]] = defaultdict(list)
    for r in _check_results(results):
        groups[r.config.delta].append(r)
    return {d: sorted(runs, key=lambda r: r.config.seed) for d, runs in sorted(groups.items())}


def _seeds(groups: dict[float, list[RunResult]]) -> dict[str, list[int]]:
    """Row label -> the seeds of its runs, in order: the ``seeds`` of a :class:`Table` of ``groups``."""
    return {delta_label(d): [r.config.seed for r in runs] for d, runs in groups.items()}


def _check_outputs(snapshots, name: str) -> list[Outputs]:
    """``snapshots`` as a non-empty list of :class:`nclab.runs.Outputs` (shared with :mod:`nclab.plots`)."""
    snapshots = list(snapshots)
    if not snapshots or not all(isinstance(s, Outputs) for s in snapshots):
        raise ValueError(f"{name} must be a non-empty list of nclab.runs.Outputs")
    return snapshots


def _check_levels(levels) -> np.ndarray:
    """``levels`` as a 1-D array of positive numbers (shared with :mod:`nclab.plots`)."""
    levels = np.atleast_1d(np.asarray(levels, dtype=float))
    if levels.size == 0 or not np.isfinite(levels).all() or (levels <= 0).any():
        raise ValueError(f"levels must be one or more positive numbers, got {levels!r}")
    return levels


@dataclass
class Table:
    """Per-seed values of a few measures, printed as mean ± std (chapters 2-5).

    Attributes
    ----------
    title : printed above the table
    values : row label -> column label -> array of one value per seed (NaN: not reached)
    seeds : row label -> the seeds of its values, in order (None: rows are aligned by position)
    never : for tables of epochs to a threshold, the epoch a run that never reached it counts as
        in comparisons (one measurement after the end of training: a lower bound on when it would
        have); None leaves such seeds out of comparisons
    """

    title: str
    values: dict[str, dict[str, np.ndarray]]
    seeds: dict[str, list[int]] | None = None
    never: float | None = None

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
        A seed without a value (NaN: a threshold never reached) counts as :attr:`never` when the
        table sets it, and is left out otherwise.
        """
        for label in (row, reference):
            if label not in self.values:
                raise ValueError(f"row must be one of {', '.join(self.values)}; got {label!r}")
        if self.seeds is not None and self.seeds[row] != self.seeds[reference]:
            raise ValueError(f"rows {row!r} and {reference!r} hold different seeds "
                             f"({self.seeds[row]} and {self.seeds[reference]}): they cannot be paired")
        def column_values(label: str, column: str) -> np.ndarray:
            v = self.values[label][column]
            return v if self.never is None else np.where(np.isnan(v), self.never, v)

        return {column: paired(column_values(row, column), column_values(reference, column), confidence)
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
    Table (rows: δ; one column per threshold; cells: epochs; runs that never reach a threshold are NaN,
    printed as such, and count as reaching it one measurement after the last epoch in comparisons)
    """
    groups = by_delta(results)
    if not isinstance(thresholds, dict) or not thresholds:
        raise ValueError("thresholds must be a non-empty dict: history field -> threshold(s)")
    pairs = [(key, float(t)) for key, ts in thresholds.items() for t in np.atleast_1d(ts)]
    values = {delta_label(d): {f"{key} ≤ {t:.3g}": np.array([first_epoch_at_or_below(r, key, t) for r in runs])
                               for key, t in pairs}
              for d, runs in groups.items()}
    last = max(r.config.epochs + r.config.log_every for runs in groups.values() for r in runs)
    return Table("first logged epoch at or below the threshold (mean ± std over seeds)", values, _seeds(groups),
                 never=float(last))


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
        best = p.closed_form()
        for seed in seeds:
            sol, traj = p.solve("lbfgs", steps=steps, seed=seed, log_every=steps)
            label = f"{p.num_classes},{p.per_class},{p.dim} δ={p.delta:g} s={seed}"
            if p.beta < 1:  # relative errors of the norms, and the collapse measures
                norms = (abs(sol.w_norm / best.w_norm - 1), abs(sol.h_norm / best.h_norm - 1))
                collapse = (traj.nc1[-1], traj.nc2[-1], traj.nc3[-1])
            else:  # the minimizer is zero: the norms themselves; no collapse to measure
                norms, collapse = (sol.w_norm, sol.h_norm), (math.nan,) * 3
            gap = sol.objective - best.objective
            values[label] = dict(zip(("β", "iter", "f − f*", "‖w‖ err", "‖μ‖ err", "NC1", "NC2", "NC3"),
                                     map(float, (p.beta, traj.step[-1], gap, *norms, *collapse))))
            rounding[label] = abs(gap) / (np.finfo(float).eps * best.objective)
    return SolverTable(values, rounding)
