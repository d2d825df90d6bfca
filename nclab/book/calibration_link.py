"""Whether a tuned δ makes temperature scaling unnecessary, and whether collapse goes with calibration (chapters 5, 10).

- :func:`without_scaling`: the networks of one δ (the paper's 0.05) *without* temperature scaling
  against the CE networks *with* it, and what scaling does to that δ itself. A verdict on such a
  small ECE difference is stated for every bin count of :func:`nclab.stats.ece_bins_agree`, with a
  two-level interval (:func:`nclab.stats.ece_difference`) beside it.
- :func:`collapse_link`: which way the CE networks err, and whether NC1 and the test ECE move
  together: over the logged epochs of each run (Spearman's ρ per seed, tested against 0 over the
  seeds of each δ, the δ values adjusted as one family) and across the seeds of one δ at the last
  epoch (``nclab.book.evidence.across_runs``).

Both return an :class:`nclab.book.evidence.Evidence`: texts the chapters glue (a prefix such as
``"fm_"`` for a bundle) and claims their hidden cells guard with
:meth:`~nclab.book.evidence.Evidence.expect`, at each scale the chapters show.

Example
-------
>>> fashion = nc.bundle.load("fashion")                                           # doctest: +SKIP
>>> link = nc.book.calibration_link.collapse_link(fashion.results, fashion.outputs_by_delta("test"))  # doctest: +SKIP
>>> link.glue(prefix="fm_"); link.expect(holds=[...])                             # doctest: +SKIP
"""

from __future__ import annotations

import re

import numpy as np
import torch

from .. import stats
from ..calibration import accuracy, ece, fit_temperature
from . import tables
from .evidence import Evidence, across_runs

__all__ = ["without_scaling", "collapse_link", "bins_text", "interval"]


def bins_text(each: dict, words: tuple[str, str] = ("lower", "higher")) -> str:
    """Verdicts at several bin counts in words: one verdict if all agree, else which bin counts give which.

    Parameters
    ----------
    each : bin count -> :class:`nclab.stats.Paired` (the second value of :func:`nclab.stats.ece_bins_agree`)
    words : the words for the verdicts "lower" and "higher"

    Examples
    --------
    >>> same = stats.paired([1.0, 2.0, 3.0], [1.1, 1.9, 3.05])
    >>> bins_text({10: same, 20: same})
    'too few seeds to decide at every bin count from 10 to 20'
    """
    groups: dict[str, list[int]] = {}
    for count, p in each.items():
        groups.setdefault({"lower": words[0], "higher": words[1]}.get(p.verdict, p.verdict), []).append(count)
    counts = list(each)
    if len(groups) == 1:
        return f"{next(iter(groups))} at every bin count from {counts[0]} to {counts[-1]}"
    return "depends on the bin count: " + "; ".join(f"{word} at {', '.join(map(str, c))} bins"
                                                     for word, c in groups.items())


def interval(text: str) -> tuple[float, float, float]:
    """(value, low, high) read back from a glued interval text such as "+0.005 [-0.001, +0.010]".

    Examples
    --------
    >>> interval("-0.088 [-0.094, -0.077]")
    (-0.088, -0.094, -0.077)
    """
    found = re.fullmatch(r"\s*([-+]?[\d.]+)\s*\[([-+]?[\d.]+),\s*([-+]?[\d.]+)\]\s*", text)
    if not found:
        raise ValueError(f"not an interval text 'value [low, high]': {text!r}")
    return tuple(float(g) for g in found.groups())


def _temperatures(outputs) -> np.ndarray:
    """The NLL-fitted temperature of each network of a validation split (as chapter 5's table fits it)."""
    return np.array([fit_temperature(o.logits, o.labels, method="nll") for o in outputs])


def without_scaling(val: dict, test: dict, delta: float = 0.05, *, n_bins: int = 20,
                    n_resamples: int = 1000, seed: int = 0) -> Evidence:
    """The networks of ``delta`` unscaled against the CE networks scaled: does a tuned δ make temperature scaling unnecessary?

    Temperatures are fitted by NLL on the validation split, one per network; ECEs are measured on
    the test split, each network of ``delta`` paired with the CE network of its seed.

    Parameters
    ----------
    val, test : :func:`nclab.runs.outputs_by_delta` of the validation and test splits (δ 0 and ``delta`` present)
    delta : the tuned δ
    n_bins : bins of the two-level interval
    n_resamples, seed : of the two-level bootstrap

    Returns
    -------
    Evidence with texts ``ch5_T_<δ>`` (mean fitted temperature and its range over the seeds),
    ``ch5_unscaled_<δ>_vs_scaled_ce`` (two-level interval of unscaled δ minus scaled CE),
    ``ch5_unscaled_<δ>_vs_scaled_ce_bins`` and ``ch5_scaling_<δ>`` (scaled minus unscaled ECE of
    δ itself: "lowered by scaling" / "raised by scaling"), each verdict at every bin count; and
    the claims their prose makes
    """
    key = f"{delta:g}".replace(".", "")
    t_ce, t_ls = _temperatures(val[0.0]), _temperatures(val[delta])
    ce, ls = [o.logits for o in test[0.0]], [o.logits for o in test[delta]]
    labels = test[0.0][0].labels
    diff, low, high = stats.ece_difference(ls, ce, labels, n_bins=n_bins, temperatures_b=t_ce,
                                           n_resamples=n_resamples, seed=seed)
    _, versus = stats.ece_bins_agree(ls, ce, labels, temperatures_b=t_ce)
    _, scaling = stats.ece_bins_agree(ls, ls, labels, temperatures_a=t_ls)
    raw_ce = np.mean([ece(z, labels, n_bins) for z in ce])
    scaled_ce = np.mean([ece(z / t, labels, n_bins) for z, t in zip(ce, t_ce)])
    span = f"from {min(versus)} to {max(versus)}"
    ev = Evidence(f"temperature scaling and δ = {delta:g}")
    ev.texts = {
        f"ch5_T_{key}": f"{t_ls.mean():.2f} (from {t_ls.min():.2f} to {t_ls.max():.2f} over the seeds)",
        f"ch5_unscaled_{key}_vs_scaled_ce": f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]",
        f"ch5_unscaled_{key}_vs_scaled_ce_bins": bins_text(versus),
        f"ch5_scaling_{key}": bins_text(scaling, ("lowered by scaling", "raised by scaling")),
    }
    ev.claims = {
        f"the temperature fitted for δ = {delta:g} lies between 0.85 and 1 in every seed":
            bool(((t_ls > 0.85) & (t_ls < 1.0)).all()),
        f"unscaled, δ = {delta:g} is not separated from CE after scaling, at every bin count {span}":
            all(p.verdict == "not separated" for p in versus.values()),
        f"unscaled, δ = {delta:g} has a higher test ECE than CE after scaling, at every bin count {span}":
            all(p.verdict == "higher" for p in versus.values()),
        f"the two-level interval of δ = {delta:g} unscaled minus CE scaled contains 0": bool(low < 0 < high),
        f"temperature scaling lowers the test ECE of δ = {delta:g} at no bin count {span}":
            all(p.verdict != "lower" for p in scaling.values()),
        f"temperature scaling lowers the test ECE of δ = {delta:g} at every bin count {span}":
            all(p.verdict == "lower" for p in scaling.values()),
        "temperature scaling cuts the mean test ECE of CE to under a third": bool(scaled_ce < raw_ce / 3),
    }
    return ev


def _confidence_gaps(outputs) -> np.ndarray:
    """Mean confidence minus accuracy of each network on a split (positive: overconfident)."""
    return np.array([float(torch.softmax(torch.as_tensor(o.logits, dtype=torch.float64), 1).max(1).values.mean())
                     - accuracy(o.logits, o.labels) for o in outputs])


def collapse_link(results, test: dict) -> Evidence:
    """Does more collapse (smaller NC1) go with a worse or a better test ECE? Over training and across seeds.

    Parameters
    ----------
    results : the runs (the book's sweep or a bundle's), with NC1 and the test ECE logged over training
    test : :func:`nclab.runs.outputs_by_delta` of their test split (for which way CE errs)

    Returns
    -------
    Evidence with texts ``link_ce_gap`` (CE's mean confidence minus accuracy), ``link_rho_nc1``
    (the range of the per-δ mean ρ(NC1, ECE) over training), ``link_rho_nc1_each`` (each δ's ρ
    tested against 0 over its seeds, Benjamini-Hochberg over the δ values) and ``link_across``
    (the ranks across seeds at the last epoch); and the claims their prose makes. "More collapse,
    more miscalibration" predicts a negative ρ(NC1, ECE) (the ECE rises as NC1 falls).
    """
    correlations = tables.collapse_calibration_table(results)
    rho = {label: row["ρ(NC1, ECE)"] for label, row in correlations.values.items()}
    against_zero = stats.adjust({label: stats.paired(r, np.zeros_like(r)) for label, r in rho.items()}, "bh")
    verdicts = [p.verdict for p in against_zero.values()]
    means = [float(r.mean()) for r in rho.values()]
    across = across_runs(results, "nc1", "test_ece")
    gaps = _confidence_gaps(test[0.0])
    word = {"lower": "negative", "higher": "positive"}
    ev = Evidence("collapse and calibration")
    ev.texts = {
        "link_ce_gap": f"{gaps.mean():+.3f}",
        "link_rho_nc1": f"{min(means):+.2f} to {max(means):+.2f}",
        "link_rho_nc1_each": "; ".join(f"{label} {p.mean:+.2f}, {word.get(p.verdict, p.verdict)} (p = {p.p_exact:.2g}, "
                                       f"adjusted {p.p_adjusted:.2g})" for label, p in against_zero.items()),
        "link_across": f"ρ = {across.statistic:+.2f} (p = {across.pvalue:.2g}, {len(results)} runs)",
    }
    ev.claims = {
        "the CE networks are overconfident: confidence above accuracy in every run": bool((gaps > 0).all()),
        "the CE networks are underconfident: confidence below accuracy in every run": bool((gaps < 0).all()),
        "over training, ρ(NC1, ECE) is positive for every δ (tested against 0 over the seeds)":
            all(v == "higher" for v in verdicts),
        "over training, ρ(NC1, ECE) is negative for no δ (tested against 0 over the seeds)":
            all(v != "lower" for v in verdicts),
        "over training, ρ(NC1, ECE) is positive for no δ (tested against 0 over the seeds)":
            all(v != "higher" for v in verdicts),
        "across the seeds of each δ, the final NC1 and test ECE are not rank-correlated at the 5% level":
            bool(across.pvalue >= 0.05),
    }
    return ev
