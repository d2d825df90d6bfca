"""The book's figures, one function each, in three modules by job.

- :mod:`nclab.plots.report` figures of any set of training runs, as ``python -m nclab report``
  draws them (chapters 3, 4 and 9)
- :mod:`nclab.plots.empirical` the figures of a trained network and of the δ sweep (chapters 2-5)
- :mod:`nclab.plots.theory` the unconstrained feature model, its Hessian and gradient descent,
  and the figures of one δ that the δ explorers step through (chapters 1 and 6-8)

One convention holds for all of them: a drawing function takes an optional keyword ``fig``, a
:class:`matplotlib.figure.Figure` or :class:`~matplotlib.figure.SubFigure` to draw into (cleared
first; several figures can share one Figure through SubFigures), draws into a new
``Figure(layout="constrained")`` when it is None, never uses pyplot, and returns the figure it drew
into. Nothing is shown or kept open: in a notebook make the figure the cell's last value to show it,
in a script save it (``fig.savefig("curves.png")``). The tables printed beside the figures are in
:mod:`nclab.tables` and :mod:`nclab.book.tables`. Every function is also available here, e.g. ``nclab.plots.nc_plane``.

Example
-------
>>> import numpy as np
>>> from nclab import plots, ufm
>>> curves = ufm.theorem1_curves(10, 5000, 1e-3, 1e-6, np.linspace(0, 0.5, 51))
>>> fig = plots.theorem1_vs_delta(curves, highlight=0.1)
>>> [ax.get_title() for ax in fig.axes]
['per-class norms', 'margin', 'training confidence']
"""

from __future__ import annotations

from .. import _imported_on_first_use

from .theory import (KAPPA_LABELS, condition_numbers_vs_delta, conditioning_at_delta, gd_convergence,
                     hessian_eigenvalues, spectrum_by_mode, targets_and_loss, theorem1_at_delta, theorem1_vs_delta,
                     theory_at_delta, ufm_geometry)

# The figures of trained runs load the training stack: imported on first use, so that the theory
# (``nclab.plots.theory``, ``nclab.widgets``) never loads it.
_LAZY = {
    "training_curves": "report", "delta_summary": "report",
    **dict.fromkeys(("calibration_vs_delta", "ece_vs_collapse", "entropy_by_correctness", "feature_snapshots",
                     "matched_nc2", "nc_plane", "reliability_diagram", "simplex_snapshots", "training_curves_spread"),
                    "empirical"),
}

__all__ = [
    # report: any set of runs (command line)
    "training_curves", "delta_summary",
    # empirical: chapters 2-5
    "feature_snapshots", "simplex_snapshots", "training_curves_spread", "nc_plane", "matched_nc2",
    "reliability_diagram", "calibration_vs_delta", "ece_vs_collapse", "entropy_by_correctness",
    # theory: chapters 6-8
    "theorem1_vs_delta", "hessian_eigenvalues", "spectrum_by_mode", "condition_numbers_vs_delta",
    "gd_convergence", "KAPPA_LABELS", "targets_and_loss", "ufm_geometry", "theorem1_at_delta",
    "theory_at_delta", "conditioning_at_delta",
]


__getattr__ = _imported_on_first_use(__name__, _LAZY)


def __dir__():
    return sorted({*globals(), *__all__})
