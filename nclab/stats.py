"""Paired verdicts with intervals and exact tests: how the book decides that LS is "lower" or "higher" than CE.

Training numbers move with the seed, and on another machine with the CPU's floating-point path,
by as much as label smoothing moves some of them. A statement such as "NC1 ends lower with LS"
is therefore made only from a *paired* comparison, under one decision rule:

- CE and LS runs with the same seed share their initialization and batch order, so they are
  compared seed by seed: the differences Δ = (LS value) − (CE value), one per seed;
- :func:`paired` gives the mean difference with a 95% paired-t interval, and the p-value of an
  exact two-sided test of "no difference": the paired permutation test, which flips the sign of
  each Δ in every possible way (exact for any distribution symmetric about 0, also for counts
  on a grid of logged epochs, where a t interval has no coverage guarantee);
- the verdict is "lower" or "higher" only when the interval excludes 0 **and** the exact test
  rejects at the level 1 − confidence; otherwise "not separated"; and "too few seeds to decide"
  when even the most extreme outcome could not reject: with m untied pairs the smallest exact
  two-sided p-value is 2 / 2^m, so six untied pairs at least are needed at the 5% level;
- a chapter makes many comparisons: :func:`adjust` controls the whole family (Benjamini-Hochberg
  false discovery rate, or Holm's family-wise error rate) and recomputes each verdict from its
  adjusted p-value. The exact sign test (``p_sign``) is reported too, as a description.

:func:`ece_interval` adds the other source of noise in chapter 5: the test split is small, so
its ECE is an estimate (biased upward), with a bias-corrected (BCa) bootstrap interval over test
samples; :func:`ece_difference` compares two settings with a two-level bootstrap (seeds and test
images), and :func:`ece_bins_agree` checks a verdict at several bin counts.

Example
-------
>>> import numpy as np
>>> ls = np.array([0.8, 0.7, 0.9, 0.6, 0.8, 0.7, 0.75, 0.85])
>>> ce = ls + np.array([0.2, 0.3, 0.1, 0.25, 0.2, 0.15, 0.3, 0.2])
>>> comparison = paired(ls, ce)
>>> comparison.verdict, comparison.lower_in, comparison.n
('lower', 8, 8)
>>> round(comparison.p_exact, 4), round(comparison.p_sign, 4)
(0.0078, 0.0078)
>>> paired([0.0, 0.0], [1.0, 1.0]).verdict       # two pairs can never reject at 5%
'too few seeds to decide'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy import stats as _scipy

from ._checks import (ArgumentTypeError, as_tensor, check_bins, check_finite, check_fraction, check_labels,
                      check_positive_int, check_positive_number, check_seed, warn_if_probabilities)
from .calibration import _confidence_bins

__all__ = ["Paired", "paired", "adjust", "sign_flip_p", "ece_interval", "ece_difference", "ece_bins_agree", "VERDICTS"]

TOO_FEW = "too few seeds to decide"
VERDICTS = ("lower", "higher", "not separated", TOO_FEW)
EXACT_LIMIT = 2 ** 18   # up to this many sign patterns the permutation test enumerates them all


@dataclass(frozen=True)
class Paired:
    """One paired comparison: ``a`` against ``b``, seed by seed.

    Attributes
    ----------
    n : number of pairs with a value on both sides
    mean : mean of the differences a − b
    low, high : the confidence interval of the mean difference (paired t); NaN when n < 2
    confidence : the interval's level, e.g. 0.95; the tests' level is 1 − confidence
    lower_in, higher_in : in how many pairs a < b, and a > b (the rest are ties)
    p_sign : exact two-sided sign-test p-value of those counts (ties left out); 1 with no untied pair
    verdict : "lower", "higher", "not separated" or "too few seeds to decide" (see :func:`paired`)
    left_out : pairs left out because a value is missing (NaN, e.g. a threshold never reached)
    p_exact : exact two-sided p-value of the paired permutation (sign-flip) test of the mean difference
    min_p : the smallest p-value that test can give with these pairs, 2 / 2^(untied pairs)
    p_adjusted : the p-value after the family's adjustment (:func:`adjust`), None before
    family : "BH over 26 comparisons" and the like, after :func:`adjust`; "" before
    resolution : the spacing of the grid the values lie on (e.g. 5 logged epochs), None off a grid
    """

    n: int
    mean: float
    low: float
    high: float
    confidence: float
    lower_in: int
    higher_in: int
    p_sign: float
    verdict: str
    left_out: int = 0
    p_exact: float = 1.0
    min_p: float = 1.0
    p_adjusted: float | None = None
    family: str = ""
    resolution: float | None = None

    @property
    def level(self) -> float:
        """The tests' level, 1 − confidence (0.05 for a 95% interval)."""
        return 1.0 - self.confidence

    @property
    def p(self) -> float:
        """The p-value the verdict rests on: adjusted for the family when :func:`adjust` was applied."""
        return self.p_exact if self.p_adjusted is None else self.p_adjusted

    def __str__(self) -> str:
        level = f"{100 * self.confidence:g}%"
        text = (f"{self.verdict}: mean difference {self.mean:+.3g}, {level} CI [{self.low:+.3g}, {self.high:+.3g}], "
                f"lower in {self.lower_in}/{self.n}, exact p = {self.p_exact:.2g}")
        if self.p_adjusted is not None:
            text += f" ({self.p_adjusted:.2g} adjusted, {self.family})"
        if self.resolution is not None:
            text += f"; values on a grid of {self.resolution:g}"
        return text + (f" ({self.left_out} pair(s) without a value)" if self.left_out else "")

    @property
    def interval(self) -> str:
        """The interval alone, as printed in the book's prose: "[−0.012, −0.004]"."""
        return f"[{self.low:+.2g}, {self.high:+.2g}]"


def _decide(n: int, low: float, high: float, p: float, min_p: float, level: float) -> str:
    """The decision rule: a direction needs the interval to exclude 0 and the exact test to reject."""
    if n < 2 or min_p > level:
        return TOO_FEW
    if p <= level and high < 0:
        return "lower"
    if p <= level and low > 0:
        return "higher"
    return "not separated"


def sign_flip_p(d, *, n_resamples: int = 100_000, seed: int = 0) -> float:
    """Exact two-sided p-value of the paired permutation test that the differences ``d`` are centred on 0.

    Under the null hypothesis each difference is as likely to have either sign, so the test
    compares the absolute value of the observed sum with that of every one of the 2^m sign patterns of the m
    non-zero differences (zeros change no sum and are dropped); the p-value is the share of
    patterns at least as extreme, the observed one included (a relative tolerance of 1e-12 counts
    ties of rounding as ties). Up to 2^18 patterns they are all enumerated; above, ``n_resamples``
    random patterns are drawn by ``scipy.stats.permutation_test`` and the p-value is an estimate
    (which never happens with the book's 6-16 seeds).
    """
    d = np.asarray(d, dtype=float)
    d = d[d != 0]
    m = d.size
    if m < 2:
        return 1.0          # no pattern is more extreme than the observed one or its mirror image
    if 2 ** m <= EXACT_LIMIT:
        signs = 1.0 - 2.0 * ((np.arange(2 ** m)[:, None] >> np.arange(m)) & 1)
        observed = abs(d.sum())
        return float(np.mean(np.abs(signs @ d) >= observed * (1 - 1e-12)))
    result = _scipy.permutation_test((d,), np.mean, permutation_type="samples", alternative="two-sided",
                                     vectorized=True, n_resamples=n_resamples, rng=np.random.default_rng(seed))
    return float(min(1.0, result.pvalue))


def paired(a, b, confidence: float = 0.95, *, resolution: float | None = None) -> Paired:
    """Compare ``a`` with ``b`` pair by pair (same index = same seed), under the book's decision rule.

    The verdict is "lower" (or "higher") only when the paired-t interval lies below (above) 0
    **and** the exact paired permutation test (:func:`sign_flip_p`) rejects at the level
    1 − confidence; "too few seeds to decide" when fewer than two pairs have values or when even
    the most extreme outcome could not reject (m untied pairs give at least p = 2 / 2^m); and
    "not separated" otherwise.

    Parameters
    ----------
    a, b : 1-D arrays of the same length, one value per seed; a pair with a NaN on either side is
        left out (and counted in ``left_out``)
    confidence : level of the interval, in (0, 1); the tests' level is 1 − confidence
    resolution : the spacing of the grid the values lie on (e.g. epochs logged every 5), reported
        with the comparison; the decision does not need it, as the permutation test is exact there too

    Returns
    -------
    Paired

    Examples
    --------
    >>> paired([1.0, 2.0, 3.0], [1.1, 1.9, 3.05]).verdict
    'too few seeds to decide'
    >>> d = np.array([-1, -2, -3, -4, -5, -6, -7, 0.5])      # 7 of 8 lower, the one higher small
    >>> round(paired(d, np.zeros(8)).p_exact, 4), paired(d, np.zeros(8)).verdict
    (0.0156, 'lower')
    >>> round(paired(np.sign(d), np.zeros(8)).p_exact, 4)   # equal sizes: as the sign test
    0.0703
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D arrays of the same length (one value per seed), "
                         f"got shapes {a.shape} and {b.shape}")
    confidence = check_fraction(confidence, "confidence")
    if resolution is not None:
        resolution = check_positive_number(resolution, "resolution")
    if np.isinf(a).any() or np.isinf(b).any():
        raise ValueError("a and b must not contain infinities (use NaN for a missing value)")
    both = ~(np.isnan(a) | np.isnan(b))
    d = a[both] - b[both]
    n = int(d.size)
    lower_in, higher_in = int((d < 0).sum()), int((d > 0).sum())
    untied = lower_in + higher_in
    p_sign = float(_scipy.binomtest(lower_in, untied, 0.5).pvalue) if untied else 1.0
    p_exact = sign_flip_p(d)
    min_p = min(1.0, 2.0 / 2.0 ** untied)
    mean = float(d.mean()) if n else math.nan
    if n >= 2:
        spread = float(d.std(ddof=1))
        half = float(_scipy.t.ppf(0.5 + confidence / 2, n - 1)) * spread / math.sqrt(n)
        low, high = mean - half, mean + half
    else:
        low = high = math.nan
    verdict = _decide(n, low, high, p_exact, min_p, 1.0 - confidence)
    return Paired(n, mean, low, high, confidence, lower_in, higher_in, p_sign, verdict, int((~both).sum()),
                  p_exact, min_p, None, "", resolution)


def adjust(comparisons: Mapping, method: str = "bh") -> dict:
    """The comparisons of one family (e.g. one chapter's verdicts), with adjusted p-values and verdicts.

    Parameters
    ----------
    comparisons : name -> :class:`Paired` (all at the same confidence)
    method : "bh", Benjamini-Hochberg (``scipy.stats.false_discovery_control``): among the
        directional verdicts, the expected share of false ones is at most the level; or "holm",
        Holm's step-down: the chance of any false directional verdict is at most the level

    Returns
    -------
    dict name -> Paired, each with ``p_adjusted``, ``family`` and its verdict recomputed from the
    adjusted p-value (the interval must still exclude 0)

    Example
    -------
    >>> family = {"a": paired([0.0] * 8, [1.0] * 8), "b": paired([0.0] * 8, [0.5] * 7 + [-0.5])}
    >>> {name: p.verdict for name, p in adjust(family, "holm").items()}
    {'a': 'lower', 'b': 'not separated'}
    """
    if method not in ("bh", "holm"):
        raise ValueError(f"method must be 'bh' or 'holm', got {method!r}")
    if not isinstance(comparisons, Mapping) or not all(isinstance(c, Paired) for c in comparisons.values()):
        raise ArgumentTypeError("comparisons must be a dict: name -> Paired (from nclab.stats.paired)")
    if not comparisons:
        return {}
    if len({c.confidence for c in comparisons.values()}) != 1:
        raise ValueError("comparisons of one family must share their confidence level")
    names = list(comparisons)
    p = np.array([comparisons[k].p_exact for k in names])
    m = len(p)
    if method == "bh":
        adjusted = _scipy.false_discovery_control(p, method="bh")
    else:
        order = np.argsort(p, kind="stable")
        stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
        adjusted = np.empty(m)
        adjusted[order] = stepped
    label = f"{'Benjamini-Hochberg' if method == 'bh' else 'Holm'} over {m} comparisons"
    out = {}
    for name, q in zip(names, adjusted):
        c = comparisons[name]
        out[name] = replace(c, p_adjusted=float(q), family=label,
                            verdict=_decide(c.n, c.low, c.high, float(q), c.min_p, c.level))
    return out


def ece_interval(logits, labels, *, n_bins: int = 20, temperatures=None, confidence: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean test ECE of several networks on one test split, with a BCa bootstrap interval over test samples.

    The test samples are resampled with replacement (the same resample for every network), and the
    mean ECE over the networks is recomputed on each resample. The binned ECE is biased upward
    (the absolute mean gap of every bin is at least its noise), so a plain percentile interval of the
    resamples lies above the estimate; the interval here is the bias-corrected and accelerated
    (BCa) one, Efron and Tibshirani (1993), ch. 14: the bias correction from the share of resamples
    below the estimate, the acceleration from the exact leave-one-out (jackknife) ECEs. It shows how
    much of an ECE is the luck of a small test split, which seeds alone do not show.

    Parameters
    ----------
    logits : list of (N, K) logits, one per network (e.g. one per seed), on the same test split;
        logits or log-probabilities, not probabilities (the softmax is applied here, and rows
        that are non-negative and sum to 1 draw a warning, as in :func:`nclab.calibration.ece`)
    labels : (N,) integer labels of that split, in [0, K)
    n_bins : equal-width confidence bins, an integer in [1, 10000]
    temperatures : None, or one temperature > 0 per network (the logits are divided by it)
    confidence : level of the interval, in (0, 1)
    n_resamples : bootstrap resamples, a positive integer
    seed : seeds the resampling, an integer >= 0

    Returns
    -------
    (mean ECE, low, high)

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> labels = torch.randint(0, 3, (300,), generator=g)
    >>> logits = [3 * torch.nn.functional.one_hot(labels, 3) + torch.randn(300, 3, generator=g)]
    >>> value, low, high = ece_interval(logits, labels, n_bins=10, n_resamples=500)
    >>> low <= value <= high
    True
    """
    logits, labels, temperatures = _check_networks(logits, labels, temperatures)
    n_bins = check_bins(n_bins)
    confidence = check_fraction(confidence, "confidence")
    n_resamples = check_positive_int(n_resamples, "n_resamples")
    seed = check_seed(seed)
    bins, gaps = _ece_parts(logits, labels, n_bins, temperatures)
    n = bins.shape[1]
    value = float(_ece_each(bins, gaps, np.arange(n)[None], n_bins).mean())
    rng = np.random.default_rng(seed)
    resampled = np.concatenate([_ece_each(bins, gaps, rng.integers(0, n, (r, n)), n_bins).mean(0)
                                for r in _batches(n_resamples)])
    low, high = _bca(value, resampled, _jackknife(bins, gaps, n_bins).mean(0), confidence)
    return value, low, high


def _check_networks(logits, labels, temperatures, name: str = "logits"):
    """Checked logits (a list of (N, K) tensors, one per network), labels and temperatures of the ECE functions."""
    if isinstance(logits, (torch.Tensor, np.ndarray)) and logits.ndim == 2:
        raise ArgumentTypeError(f"{name} must be a list of (N, K) arrays, one per network; got one "
                                f"{type(logits).__name__} of shape {tuple(logits.shape)}: pass [logits]")
    if isinstance(logits, (str, bytes)) or not hasattr(logits, "__iter__"):
        raise ArgumentTypeError(f"{name} must be a list of (N, K) arrays, one per network; got {type(logits).__name__}")
    logits = [as_tensor(z, name).detach() for z in logits]
    labels = as_tensor(labels, "labels").detach()
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {tuple(labels.shape)}")
    shapes = {tuple(z.shape) for z in logits}
    if (not logits or len(shapes) != 1 or logits[0].ndim != 2 or logits[0].shape[0] != labels.shape[0]
            or logits[0].shape[0] == 0 or logits[0].shape[1] < 2):
        raise ValueError(f"{name} must be a non-empty list of (N, K) arrays of one shape, K >= 2 and N = len(labels) "
                         f"= {labels.shape[0]} >= 1; got shapes {', '.join(str(s) for s in sorted(shapes)) or 'none'}")
    for z in logits:
        check_finite(z, name)
    labels = check_labels(labels, logits[0].shape[1]).cpu()
    if temperatures is None:
        temperatures = [1.0] * len(logits)
    if isinstance(temperatures, (str, bytes)) or not hasattr(temperatures, "__len__"):
        raise ArgumentTypeError(f"temperatures must be None or one number per network, got "
                                f"{type(temperatures).__name__}")
    temperatures = [check_positive_number(t, "temperatures") for t in temperatures]
    if len(temperatures) != len(logits):
        raise ValueError(f"temperatures must be one positive number per network: got {len(temperatures)} for "
                         f"{len(logits)} networks")
    return logits, labels, temperatures


def _ece_parts(logits, labels, n_bins: int, temperatures) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's confidence bin and its (correct − confidence), per network: two (networks, N) arrays.

    The ECE of any subset of the samples needs only these (``calibration.ece`` bins the same way).
    """
    # As calibration.ece: a warning when every row of every network looks like probabilities.
    warn_if_probabilities(torch.cat([z.double().cpu() for z in logits]), "logits", stacklevel=4)
    bins, gaps = [], []
    for z, t in zip(logits, temperatures):
        p = torch.softmax(z.double().cpu() / t, dim=1)
        conf, pred = p.max(1)
        bins.append(_confidence_bins(conf, n_bins)[1].numpy())
        gaps.append(((pred == labels).double() - conf).numpy())
    return np.stack(bins), np.stack(gaps)


def _batches(total: int, size: int = 100) -> list[int]:
    return [min(size, total - start) for start in range(0, total, size)]


def _ece_each(bins: np.ndarray, gaps: np.ndarray, index: np.ndarray, n_bins: int) -> np.ndarray:
    """ECE of every network on each resample: ``index`` (R, M) sample indices -> (networks, R)."""
    r, m = index.shape
    offset = np.arange(r)[:, None] * n_bins
    out = np.empty((bins.shape[0], r))
    for k in range(bins.shape[0]):
        sums = np.bincount((bins[k][index] + offset).ravel(), weights=gaps[k][index].ravel(),
                           minlength=r * n_bins).reshape(r, n_bins)
        out[k] = np.abs(sums).sum(1) / m
    return out


def _jackknife(bins: np.ndarray, gaps: np.ndarray, n_bins: int) -> np.ndarray:
    """Leave-one-out ECE of every network, exactly: (networks, N). Leaving sample i out changes only its bin's sum."""
    networks, n = bins.shape
    out = np.empty((networks, n))
    for k in range(networks):
        sums = np.bincount(bins[k], weights=gaps[k], minlength=n_bins)
        total = np.abs(sums).sum()
        own = sums[bins[k]]
        out[k] = (total - np.abs(own) + np.abs(own - gaps[k])) / (n - 1)
    return out


def _bca(value: float, resampled: np.ndarray, jackknife: np.ndarray, confidence: float) -> tuple[float, float]:
    """The BCa interval from the estimate, its bootstrap replicates and its jackknife values (as scipy's BCa)."""
    share = ((resampled < value).sum() + (resampled <= value).sum()) / (2 * resampled.size)
    z0 = _scipy.norm.ppf(share)
    u = jackknife.mean() - jackknife
    accel = (u ** 3).sum() / (6 * ((u ** 2).sum()) ** 1.5) if (u ** 2).sum() > 0 else 0.0
    ends = []
    for z in (_scipy.norm.ppf((1 - confidence) / 2), _scipy.norm.ppf((1 + confidence) / 2)):
        ends.append(float(np.percentile(resampled, 100 * _scipy.norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z))))))
    return ends[0], ends[1]


def ece_difference(logits_a, logits_b, labels, *, n_bins: int = 20, temperatures_a=None, temperatures_b=None,
                   confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean ECE of the networks ``a`` minus that of ``b``, with a two-level bootstrap interval (seeds and test images).

    The i-th network of ``a`` and of ``b`` share a seed. Each resample draws the seed pairs with
    replacement *and* the test samples with replacement (the same samples for every network), so
    the interval carries both sources of noise: which seeds were trained, and which test images
    were drawn. The interval is the percentile interval of the resampled differences (the upward
    bias of the binned ECE is shared by both sides and largely cancels in the difference).

    Parameters
    ----------
    logits_a, logits_b : lists of (N, K) logits, one per seed, in the same seed order, on one test split
    labels : (N,) integer labels of that split
    n_bins : equal-width confidence bins
    temperatures_a, temperatures_b : None, or one temperature > 0 per network of that side
    confidence, n_resamples, seed : the interval's level, the number of resamples, and their seed

    Returns
    -------
    (mean ECE of a − mean ECE of b, low, high)

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> labels = torch.randint(0, 3, (400,), generator=g)
    >>> sharp = [5 * torch.nn.functional.one_hot(labels, 3) + torch.randn(400, 3, generator=g) for _ in range(4)]
    >>> diff, low, high = ece_difference(sharp, [z / 4 for z in sharp], labels, n_bins=10, n_resamples=400)
    >>> low < diff < high
    True
    """
    a, labels_checked, ta = _check_networks(logits_a, labels, temperatures_a, "logits_a")
    b, _, tb = _check_networks(logits_b, labels, temperatures_b, "logits_b")
    if len(a) != len(b) or a[0].shape != b[0].shape:
        raise ValueError(f"logits_a and logits_b must hold one (N, K) array per seed each, paired: got {len(a)} of "
                         f"{tuple(a[0].shape)} and {len(b)} of {tuple(b[0].shape)}")
    n_bins = check_bins(n_bins)
    confidence = check_fraction(confidence, "confidence")
    n_resamples = check_positive_int(n_resamples, "n_resamples")
    rng = np.random.default_rng(check_seed(seed))
    bins_a, gaps_a = _ece_parts(a, labels_checked, n_bins, ta)
    bins_b, gaps_b = _ece_parts(b, labels_checked, n_bins, tb)
    seeds, n = bins_a.shape
    every = np.arange(n)[None]
    value = float(_ece_each(bins_a, gaps_a, every, n_bins).mean() - _ece_each(bins_b, gaps_b, every, n_bins).mean())
    diffs = []
    for r in _batches(n_resamples):
        images = rng.integers(0, n, (r, n))
        per_seed = _ece_each(bins_a, gaps_a, images, n_bins) - _ece_each(bins_b, gaps_b, images, n_bins)  # (seeds, r)
        drawn = rng.integers(0, seeds, (r, seeds))
        diffs.append(per_seed[drawn, np.arange(r)[:, None]].mean(1))
    diffs = np.concatenate(diffs)
    tail = 100 * (1 - confidence) / 2
    return value, float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail))


def ece_bins_agree(logits_a, logits_b, labels, *, bins=(10, 12, 15, 18, 20, 25, 30), temperatures_a=None,
                   temperatures_b=None, confidence: float = 0.95) -> tuple[str, dict[int, Paired]]:
    """The paired verdict on the per-seed ECE of ``a`` against ``b`` at several bin counts, and whether they agree.

    A statement about a small ECE difference (after temperature scaling, say) may hold at one bin
    count and not at the next. This computes :func:`paired` of the per-seed ECEs at each bin count
    of ``bins``; the verdict returned is the common one when every bin count gives the same,
    and "depends on the bin count" otherwise.

    Returns
    -------
    (verdict, {bin count: Paired})
    """
    a, labels_checked, ta = _check_networks(logits_a, labels, temperatures_a, "logits_a")
    b, _, tb = _check_networks(logits_b, labels, temperatures_b, "logits_b")
    if len(a) != len(b):
        raise ValueError(f"logits_a and logits_b must hold one array per seed each: got {len(a)} and {len(b)}")
    counts = [check_bins(k) for k in bins]
    if not counts:
        raise ValueError("bins must name at least one bin count")
    each = {}
    for k in counts:
        every = np.arange(a[0].shape[0])[None]
        ece_a = _ece_each(*_ece_parts(a, labels_checked, k, ta), every, k)[:, 0]
        ece_b = _ece_each(*_ece_parts(b, labels_checked, k, tb), every, k)[:, 0]
        each[k] = paired(ece_a, ece_b, confidence)
    verdicts = {p.verdict for p in each.values()}
    return (verdicts.pop() if len(verdicts) == 1 else "depends on the bin count"), each
