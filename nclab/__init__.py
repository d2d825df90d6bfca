"""nclab: cross-entropy versus label smoothing, seen through neural collapse.

The companion package of the book *Label Smoothing through Neural Collapse*. Each submodule
owns one job (see the book's appendix "The nclab API"):

- :mod:`nclab.losses` smoothed targets and the label-smoothing loss (chapter 1)
- :mod:`nclab.metrics` streaming feature statistics and the NC1-NC4 measures (chapter 2)
- :mod:`nclab.calibration` ECE, reliability diagrams, temperature scaling (chapter 5)
- :mod:`nclab.ufm` the unconstrained feature model and Theorem 1 (chapter 6)
- :mod:`nclab.hessian` Hessians and condition numbers at the UFM minimizer (chapter 7)
- :mod:`nclab.data`, :mod:`nclab.models`, :mod:`nclab.train`, :mod:`nclab.runs` training runs
- :mod:`nclab.stats` paired verdicts with intervals; :mod:`nclab.evidence` the numbers and claims
  of chapters 2-5
- :mod:`nclab.plots`, :mod:`nclab.widgets` the book's figures and live delta explorers

Submodules are imported on first use, so ``import nclab as nc`` is quick and
``nc.metrics.nc1(...)`` works without a separate import.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "losses", "metrics", "calibration", "ufm", "hessian", "data", "models",
    "train", "runs", "stats", "plots", "evidence", "widgets",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'nclab' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
