"""Figures of any set of training runs, as ``python -m nclab report`` draws them (chapters 3, 4 and 9).

They take :class:`~nclab.train.RunResult` objects of any data set, model and number of seeds:
:func:`training_curves` draws every run over the epochs, :func:`delta_summary` the final epoch
against δ. Cross-entropy (δ = 0) is black, label smoothing a purple-to-orange ramp; the seeds of
one δ share its colour.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..tables import by_delta, _check_results, delta_label
from ._figure_folder import check_files, check_folder, replace_files
from ._base import (curve_series, delta_colours, errorbar_vs_delta, final_epoch_title, final_mean_std,
                    label_curve_panel, prepare)

__all__ = ["training_curves", "delta_summary"]  # figures; draw_report (below) writes them to files

_PANELS = ("train_error", "test_error", "nc1", "nc2_wh", "nc3", "norms")


def training_curves(results, fig: Figure | None = None) -> Figure:
    """Errors, NC1, NC2, NC3 and norms over the epochs, one line per run (chapters 3 and 9).

    Panels: train and test error; NC1 = tr(Σ_W Σ_B†)/K (log scale); NC2 in the paper's
    classifier-feature form (``nc2_wh``); NC3 (self-duality); and the mean norms of the
    classifier rows ‖w_k‖ (solid) and the centred class means ‖μ_k − μ_G‖ (dashed).
    :func:`nclab.plots.empirical.training_curves_spread` draws the mean over seeds instead.

    Parameters
    ----------
    results : a RunResult or a list of them (e.g. CE and LS runs, several seeds)
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.

    Examples
    --------
    >>> fig = training_curves(nclab.runs.load_results("runs/"))   # doctest: +SKIP
    >>> fig.savefig("curves.png")                                  # doctest: +SKIP
    """
    results = _check_results(results)
    colours = delta_colours(r.config.delta for r in results)
    fig = prepare(fig, (13, 7))
    axes = fig.subplots(2, 3)
    labelled = set()
    for r in results:
        delta = r.config.delta
        label = None if delta in labelled else delta_label(delta)
        labelled.add(delta)
        for ax, key in zip(axes.flat, _PANELS):
            for name, style in curve_series(key):
                ax.plot(r.epochs, r.series(name), style, color=colours[delta], alpha=0.85, lw=1.5,
                        label=label if style == "-" else None)
    for ax, key in zip(axes.flat, _PANELS):
        label_curve_panel(ax, key)
    axes[0, 0].legend(title=f"{results[0].config.model} on {results[0].config.dataset}")
    return fig


def delta_summary(results, fig: Figure | None = None) -> Figure:
    """Final-epoch measures against δ, mean ± std over seeds (chapters 4 and 5).

    Panels: test error; NC1 (log); NC2 (``nc2_wh``) and NC3; norms ‖w_k‖ and ‖μ_k − μ_G‖;
    test ECE before and after temperature scaling; the fitted temperature T.

    Parameters
    ----------
    results : RunResults of several δ (and seeds)
    fig : a Figure or SubFigure to draw into (cleared first); default a new Figure

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure drawn into.
    """
    groups = by_delta(results)
    deltas = np.array(list(groups))
    fig = prepare(fig, (13, 7))
    axes = fig.subplots(2, 3)
    panels = [
        (axes[0, 0], [("test_error", "test error")], "test error", False),
        (axes[0, 1], [("nc1", "NC1")], "NC1 (log)", True),
        (axes[0, 2], [("nc2_wh", "NC2 (W M̃ᵀ)"), ("nc3", "NC3")], "distance to collapse", False),
        (axes[1, 0], [("w_norm", "‖w_k‖"), ("h_norm", "‖μ_k − μ_G‖")], "mean norm", False),
        (axes[1, 1], [("test_ece", "before"), ("test_ece_scaled", "after temperature scaling")],
         "test ECE", False),
        (axes[1, 2], [("temperature", "T")], "fitted temperature T", False),
    ]
    for ax, series, ylabel, log in panels:
        for key, label in series:
            errorbar_vs_delta(ax, deltas, final_mean_std(groups, key), label)
        ax.set_xlabel("δ")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if log:
            ax.set_yscale("log")
        if len(series) > 1:
            ax.legend()
    seeds = max(len(runs) for runs in groups.values())
    fig.suptitle(final_epoch_title(groups, f"{seeds} seed{'s' if seeds > 1 else ''} per δ"))
    return fig


# Drawing a set of runs into a folder, pooled over seeds only (python -m nclab report) ---------------

# Shown in every title; other settings appear when they tell groups apart.
_TITLE_FIELDS = ("dataset", "model", "width", "epochs", "batch_size", "lr", "weight_decay")


def _groups(results: list) -> list[list]:
    """The runs split into groups whose configs agree in everything but δ and seed.

    Within a group the runs of one δ are pooled over seeds (averaged, or drawn together); δ
    itself is what the figures compare. The same config twice (seed included) would count one
    seed twice, so it is an error.
    """
    groups: dict[str, list] = {}
    for r in results:
        rest = {k: v for k, v in r.config.to_dict().items() if k not in ("delta", "seed")}
        groups.setdefault(json.dumps(rest, sort_keys=True), []).append(r)
    for members in groups.values():
        seen: dict[tuple, object] = {}
        for r in members:
            key = (r.config.delta, r.config.seed)
            if key in seen:
                raise ValueError(f"{seen[key].run_dir} and {r.run_dir} hold the same run (δ={key[0]:g}, seed "
                                 f"{key[1]}, every other setting equal); report a folder that holds it once")
            seen[key] = r
    return list(groups.values())


def _settings(group: list, shown: tuple[str, ...]) -> str:
    c = group[0].config.to_dict()
    return ", ".join(f"{k.replace('_', ' ')} {_text(c[k])}" for k in shown)


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return str(value)


def _pooled(group: list) -> str:
    """Which seeds each δ of a group pools: "seeds 0–7 for each δ (0, 0.1)", or "δ=0: seeds 0, 1; δ=0.1: seed 0"."""
    seeds: dict[float, list[int]] = {}
    for r in group:
        seeds.setdefault(r.config.delta, []).append(r.config.seed)
    lists = {d: sorted(s) for d, s in sorted(seeds.items())}
    if len(lists) > 1 and len({tuple(s) for s in lists.values()}) == 1:
        s = next(iter(lists.values()))
        return f"seed{'s' if len(s) > 1 else ''} {_ranges(s)} for each δ ({', '.join(f'{d:g}' for d in lists)})"
    return "; ".join(f"δ={d:g}: seed{'s' if len(s) > 1 else ''} {_ranges(s)}" for d, s in lists.items())


def _ranges(numbers: list[int]) -> str:
    """Sorted integers with runs of three or more shortened: [0, 1, 2, 3, 5] -> "0–3, 5"."""
    parts, start = [], 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            run = numbers[start:i]
            parts += [f"{run[0]}–{run[-1]}"] if len(run) >= 3 else [str(n) for n in run]
            start = i
    return ", ".join(parts)


def _folder_name(group: list, varying: list[str]) -> str:
    c = group[0].config.to_dict()
    return "-".join(re.sub(r"[^A-Za-z0-9.]+", "_", f"{k}{_text(c[k])}").strip("_") for k in varying)


def _folder_names(groups: list[list], varying: list[str]) -> list[str]:
    """One subfolder name per group (:func:`_folder_name`), distinct for distinct groups.

    A name rounds floats to 6 digits and folds punctuation, so two groups may share one (lr 0.1
    and 0.1000001 are both ``lr0.1``); each such name gets ``-`` and the first 8 hexadecimal digits
    of the SHA-256 of its group's settings. Names that differ only in case count as one (a file
    system may not tell them apart).
    """
    names = [_folder_name(group, varying) for group in groups]
    shared = {name.lower() for name in names if [n.lower() for n in names].count(name.lower()) > 1}
    return [f"{name}-{_settings_digest(group)}" if name.lower() in shared else name for name, group in zip(names, groups)]


def _settings_digest(group: list) -> str:
    rest = {k: v for k, v in group[0].config.to_dict().items() if k not in ("delta", "seed")}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:8]


def draw_report(results: list, out: str | os.PathLike, echo=print) -> list[Path]:
    """Draw the figures of each group of runs (see :func:`_groups`) into ``out``, or one subfolder per group.

    Writes ``training_curves.png``, ``nc_plane.png`` and, when a group has several δ,
    ``delta_summary.png``; each title says the group's settings and which seeds are pooled.
    ``echo`` receives one line per folder and per file written. Returns the paths written.

    ``out`` must be new, empty, or a folder nclab drew into before, and a figure replaces only a
    file nclab drew there, unchanged since; everything is checked before anything is drawn, and
    each file is written by an atomic rename (see :mod:`nclab.plots._figure_folder`).

    Raises
    ------
    ValueError
        ``out`` or a file in it may not be written (nothing is drawn or written then).
    """
    out = Path(out)
    groups = _groups(results)
    configs = [g[0].config.to_dict() for g in groups]
    varying = [k for k in configs[0] if k not in ("delta", "seed")
               and len({json.dumps(c[k]) for c in configs}) > 1]
    shown = _TITLE_FIELDS + tuple(k for k in varying if k not in _TITLE_FIELDS)
    names = _folder_names(groups, varying) if len(groups) > 1 else [""]
    plan = [(name, group, _figures(group)) for name, group in zip(names, groups)]
    check_folder(out)
    check_files(out, [str(Path(sub, f"{name}.png")) for sub, _, figures in plan for name in figures])
    if len(groups) > 1:
        echo(f"{len(results)} runs in {len(groups)} groups that differ in {', '.join(varying)}; "
              "each group is drawn into its own folder")
    written: list[Path] = []
    for sub, group, figures in plan:
        settings, pooled = _settings(group, shown), _pooled(group)
        echo(f"{out / sub if sub else out}: {settings}; {pooled}")
        pngs = {}
        for name, (draw, what) in figures.items():
            fig = draw(group)
            fig.suptitle(f"{settings}\n{what}; {pooled}")
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=120)
            pngs[str(Path(sub, f"{name}.png"))] = buffer.getvalue()
        replace_files(out, pngs)
        for name in pngs:
            written.append(out / name)
            echo(str(out / name))
    return written


def _figures(group: list) -> dict:
    """The figures of one group: file name -> (drawing function, what it shows)."""
    from .empirical import nc_plane

    figures = {"training_curves": (training_curves, "one curve per run"),
               "nc_plane": (nc_plane, "one point per run and logged epoch")}
    if len({r.config.delta for r in group}) > 1:
        figures["delta_summary"] = (delta_summary, "final epoch, mean ± std over the seeds of each δ")
    return figures
