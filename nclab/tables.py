"""Per-seed tables of training runs, printed as mean ± std, and what they are built from.

A :class:`Table` holds one row per setting (usually one per δ, labelled by :func:`delta_label`), one
column per measure, one value per seed in each cell. Printing a table gives mean ± std over the
seeds; :meth:`Table.compare` and :meth:`Table.verdicts` pair the seeds of two rows
(:mod:`nclab.stats`). :func:`by_delta` groups :class:`~nclab.train.RunResult` objects by δ in seed
order, :func:`first_epoch_at_or_below`, :func:`common_levels` and :func:`nc2_at_nc1` read a run's
history. The figures beside such tables are in :mod:`nclab.plots`.

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

from ._deltas import delta_label
from .evaluate import Outputs
from .stats import Paired, paired
from .train import RunResult

__all__ = ["Table", "text_table", "delta_label", "by_delta", "first_epoch_at_or_below", "common_levels", "nc2_at_nc1"]


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
    resolution : column label -> the spacing of the grid its values lie on (e.g. epochs logged
        every 5), passed on to each comparison of that column; None for values off a grid
    """

    title: str
    values: dict[str, dict[str, np.ndarray]]
    seeds: dict[str, list[int]] | None = None
    never: float | None = None
    resolution: dict[str, float] | None = None

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
        the mean of the differences row − reference with a paired-t interval, the exact test's
        p-value, and the verdict of :func:`nclab.stats.paired` ("lower" or "higher" when the
        interval excludes 0 and the exact test rejects; "not separated"; "too few seeds to decide").
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

        grid = self.resolution or {}
        return {column: paired(column_values(row, column), column_values(reference, column), confidence,
                               resolution=grid.get(column))
                for column in self.columns}

    def verdicts(self, reference: str) -> str:
        """:meth:`compare` of every other row with ``reference``, as a printable grid.

        Each cell: the verdict (each comparison on its own, before a chapter's family adjustment),
        then the mean paired difference and its 95% interval.
        """
        short = {"lower": "lower", "higher": "higher", "not separated": "n.s.", "too few seeds to decide": "too few"}
        cells = {label: {c: f"{short[v.verdict]} {v.mean:+.2g} [{v.low:+.2g}, {v.high:+.2g}]"
                         for c, v in self.compare(label, reference).items()}
                 for label in self.values if label != reference}
        n = len(next(iter(self.values[reference].values())))
        return _grid(f"row − {reference}, paired over {n} seeds: verdict, mean [95% CI]", cells)


def text_table(header, rows, align: str = ">", widths=None, sep: str = "  ", page: int | None = None) -> str:
    """Text cells in aligned columns under a line of column labels: the one text-table layout of nclab.

    :class:`Table` prints through it, and so do the tables of :mod:`nclab.book`.

    Parameters
    ----------
    header : the column labels
    rows : the rows, each a sequence of text cells; a row may stop before the last column
    align : one character per column, "<" (left) or ">" (right); the last one holds for the
        columns after it
    widths : the width of each column; default the widest of its label and cells. A cell wider
        than its column is printed whole (the rest of its line moves right)
    sep : the text between two columns
    page : when given, the columns that would make a line longer than ``page`` characters go to a
        further block below, after an empty line, which repeats the first column

    Example
    -------
    >>> print(text_table(["", "n", "mean"], [["CE", "3", "0.25"], ["LS δ=0.1", "3", "0.5"]], align="<>"))
              n  mean
    CE        3  0.25
    LS δ=0.1  3   0.5
    """
    header, rows = list(header), [list(row) for row in rows]
    if widths is None:
        widths = [max(len(str(c)) for c in column) for column in _columns([header, *rows])]
    aligns = [align[min(i, len(align) - 1)] for i in range(len(widths))]
    blocks: list[list[int]] = []
    for i in range(1, len(widths)):
        used = widths[0] + sum(len(sep) + widths[k] for k in blocks[-1]) if blocks else math.inf
        if not blocks or (page is not None and used + len(sep) + widths[i] > page):
            blocks.append([])
        blocks[-1].append(i)

    def line(cells, block) -> str:
        return sep.join(f"{cells[i]:{aligns[i]}{widths[i]}}" for i in [0, *block] if i < len(cells))

    lines: list[str] = []
    for i, block in enumerate(blocks or [[]]):
        lines += ([""] if i else []) + [line(cells, block) for cells in (header, *rows)]
    return "\n".join(lines)


def _columns(rows: list[list]) -> list[list]:
    """The columns of rows that may stop early: the i-th column holds the i-th cell of each row that has one."""
    return [[row[i] for row in rows if i < len(row)] for i in range(max(len(row) for row in rows))]


def _grid(title: str, cells: dict[str, dict[str, str]], width: int = 78) -> str:
    """Rows of text cells under a header of column labels, right-aligned, the row labels left-aligned.

    Columns that would make a line longer than ``width`` characters go to a further block below,
    which repeats the row labels, so the text fits a book page without scrolling.
    """
    columns = list(next(iter(cells.values())))
    if not columns:
        return title
    rows = [[label, *(row[c] for c in columns)] for label, row in cells.items()]
    return title + "\n" + text_table(["", *columns], rows, align="<>", page=width)


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
