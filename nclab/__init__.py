"""nclab: cross-entropy versus label smoothing, seen through neural collapse.

The companion package of the book *Label Smoothing through Neural Collapse*. Each submodule of
the library owns one job (see the book's appendix "The nclab API"):

- :mod:`nclab.losses` smoothed targets and the label-smoothing loss (chapter 1)
- :mod:`nclab.features` streaming per-class feature statistics in float64 (chapter 2)
- :mod:`nclab.metrics` the NC1-NC4 measures and the collapse report (chapter 2)
- :mod:`nclab.nearest_mean` NC4: the nearest-class-mean rule against the network's predictions (chapter 2)
- :mod:`nclab.calibration` ECE, reliability diagrams, temperature scaling (chapter 5)
- :mod:`nclab.ufm` the unconstrained feature model and Theorem 1 (chapter 6)
- :mod:`nclab.hessian` Hessians and condition numbers at the UFM minimizer (chapter 7)
- :mod:`nclab.autodiff` the UFM Hessian by autograd at any point: dense, as products, Lanczos (chapter 7)
- :mod:`nclab.descent` step sizes and gradient-descent speed on the UFM against delta; solvers
  checked against Theorem 1 (chapters 6, 7)
- :mod:`nclab.data` the data sets and their splits (chapters 2-5, 9)
- :mod:`nclab.models` the networks (chapters 2-5, 9)
- :mod:`nclab.config` the configuration of a run, every field checked (chapters 2-5, 9)
- :mod:`nclab.train` one training run: the loop, checkpoints and resuming (chapters 2-5, 9)
- :mod:`nclab.results` the record of a finished run and its name in the result cache (chapters 2-5, 9)
- :mod:`nclab.checkpoints` reading a run's checkpoint and checking everything it holds before a resume
- :mod:`nclab.settings` every ``NCLAB_*`` environment variable, read and checked in one place
- :mod:`nclab.evaluate` forward passes over a split, the per-epoch measurement and its record,
  the outputs of a finished run (chapters 2-5)
- :mod:`nclab.cluster` sweeps on Slurm through submitit, one job per run (chapter 9)
- :mod:`nclab.bundle` published evidence bundles, read instead of retrained (chapters 2-5, 9)
- :mod:`nclab.runs` profiles, the run cache and sweeps over delta and seeds (chapters 2-5, 9)
- :mod:`nclab.stats` paired verdicts with intervals and sign tests (chapters 2-5)
- :mod:`nclab.tables` per-seed tables of runs, printed as mean ± std, and the δ labels (chapters 2-5)
- :mod:`nclab.plots` the figures, drawn without pyplot, in the three modules below
- :mod:`nclab.plots.report` figures of any set of runs, for ``python -m nclab report`` (chapters 3, 4, 9)
- :mod:`nclab.plots.empirical` figures of a trained network and of the delta sweep (chapters 2-5)
- :mod:`nclab.plots.theory` figures of the UFM, its Hessian and gradient descent (chapters 1, 6-8)
- :mod:`nclab.widgets` the live delta explorers that redraw a figure per delta, and the quick checks (chapters 1-8)
- :mod:`nclab.exercises` self-checked coding exercises, one submodule per chapter (chapters 1-8)

The book's machinery is apart, in :mod:`nclab.book`: the chapters' tables
(:mod:`nclab.book.tables`), the numbers and claims their prose quotes (:mod:`nclab.book.evidence`,
:mod:`nclab.book.conditioning`) and the book's URL (:mod:`nclab.book.repository`). It imports the
library; no module of the library imports it.

Submodules are imported on first use, so ``import nclab as nc`` is quick and
``nc.metrics.nc1(...)`` works without a separate import.
"""

from __future__ import annotations

import importlib
import sys

__version__ = "0.1.0"

_SUBMODULES = (
    "losses", "features", "metrics", "nearest_mean", "calibration", "ufm", "hessian", "autodiff",
    "descent", "data", "models", "config", "train", "results", "checkpoints", "evaluate", "runs", "stats",
    "tables", "plots", "widgets", "exercises", "bundle", "cluster", "settings", "book",
)

__all__ = ["__version__", *_SUBMODULES]


def _imported_on_first_use(package: str, sources: dict[str, str | None]):
    """The module ``__getattr__`` of a package whose names are imported on first use.

    ``sources`` maps each such name to the submodule (of ``package``) it comes from, or to None
    when the name is that submodule itself. The value found is kept in the package, so that the
    import happens once.
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str):
        if name in sources:
            module = importlib.import_module(f"{package}.{sources[name] or name}")
            namespace[name] = value = module if sources[name] is None else getattr(module, name)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


__getattr__ = _imported_on_first_use(__name__, dict.fromkeys(_SUBMODULES))


def __dir__():
    return sorted(__all__)
