"""Paired verdicts with intervals: how the book decides that LS is "lower" or "higher" than CE (chapters 2-5).

Training numbers move with the seed, and on another machine with the CPU's floating-point path,
by as much as label smoothing moves some of them. A statement such as "NC1 ends lower with LS"
is therefore made only from a *paired* comparison with an interval:

- CE and LS runs with the same seed share their initialization and batch order, so they are
  compared seed by seed: the differences d_s = (LS value) − (CE value), one per seed;
- :func:`paired` gives the mean difference with a 95% paired-t interval, and the exact two-sided
  sign-test p-value (``scipy.stats.binomtest``) of how many seeds went each way;
- the verdict is "lower" or "higher" only when the interval excludes 0, and "not separated"
  otherwise.

:func:`ece_interval` adds the other source of noise in chapter 5: the test split is small, so
its ECE is an estimate, with a bootstrap interval over test samples.

Example
-------
>>> import numpy as np
>>> ls = np.array([0.8, 0.7, 0.9, 0.6, 0.8, 0.7, 0.75, 0.85])
>>> ce = ls + np.array([0.2, 0.3, 0.1, 0.25, 0.2, 0.15, 0.3, 0.2])
>>> comparison = paired(ls, ce)
>>> comparison.verdict, comparison.lower_in, comparison.n
('lower', 8, 8)
>>> round(comparison.p_sign, 4)
0.0078
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats as _scipy

from ._checks import (ArgumentTypeError, as_tensor, check_bins, check_finite, check_fraction, check_labels,
                      check_positive_int, check_positive_number, check_seed, warn_if_probabilities)
from .calibration import _confidence_bins

__all__ = ["Paired", "paired", "ece_interval", "VERDICTS"]

VERDICTS = ("lower", "higher", "not separated")


@dataclass(frozen=True)
class Paired:
    """One paired comparison: ``a`` against ``b``, seed by seed.

    Attributes
    ----------
    n : number of pairs with a value on both sides
    mean : mean of the differences a − b
    low, high : the confidence interval of the mean difference (paired t); NaN when n < 2
    confidence : the interval's level, e.g. 0.95
    lower_in, higher_in : in how many pairs a < b, and a > b
    p_sign : exact two-sided sign-test p-value of those counts (ties left out); 1 with no untied pair
    verdict : "lower" (the interval lies below 0), "higher" (above 0) or "not separated"
    left_out : pairs left out because a value is missing (NaN, e.g. a threshold never reached)
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

    def __str__(self) -> str:
        level = f"{100 * self.confidence:g}%"
        text = (f"{self.verdict}: mean difference {self.mean:+.3g}, {level} CI [{self.low:+.3g}, {self.high:+.3g}], "
                f"lower in {self.lower_in}/{self.n}, sign test p = {self.p_sign:.2g}")
        return text + (f" ({self.left_out} pair(s) without a value)" if self.left_out else "")

    @property
    def interval(self) -> str:
        """The interval alone, as printed in the book's prose: "[−0.012, −0.004]"."""
        return f"[{self.low:+.2g}, {self.high:+.2g}]"


def paired(a, b, confidence: float = 0.95) -> Paired:
    """Compare ``a`` with ``b`` pair by pair (same index = same seed).

    Parameters
    ----------
    a, b : 1-D arrays of the same length, one value per seed; a pair with a NaN on either side is
        left out (and counted in ``left_out``)
    confidence : level of the interval, in (0, 1)

    Returns
    -------
    Paired

    Examples
    --------
    >>> paired([1.0, 2.0, 3.0], [1.1, 1.9, 3.05]).verdict
    'not separated'
    >>> paired([0.0, 0.0], [1.0, 1.0]).verdict          # identical differences: a zero-width interval
    'lower'
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D arrays of the same length (one value per seed), "
                         f"got shapes {a.shape} and {b.shape}")
    confidence = check_fraction(confidence, "confidence")
    if np.isinf(a).any() or np.isinf(b).any():
        raise ValueError("a and b must not contain infinities (use NaN for a missing value)")
    both = ~(np.isnan(a) | np.isnan(b))
    d = a[both] - b[both]
    n = int(d.size)
    lower_in, higher_in = int((d < 0).sum()), int((d > 0).sum())
    untied = lower_in + higher_in
    p_sign = float(_scipy.binomtest(lower_in, untied, 0.5).pvalue) if untied else 1.0
    mean = float(d.mean()) if n else math.nan
    if n >= 2:
        spread = float(d.std(ddof=1))
        half = float(_scipy.t.ppf(0.5 + confidence / 2, n - 1)) * spread / math.sqrt(n)
        low, high = mean - half, mean + half
    else:
        low = high = math.nan
    if n >= 2 and high < 0:
        verdict = "lower"
    elif n >= 2 and low > 0:
        verdict = "higher"
    else:
        verdict = "not separated"
    return Paired(n, mean, low, high, confidence, lower_in, higher_in, p_sign, verdict, int((~both).sum()))


def ece_interval(logits, labels, *, n_bins: int = 20, temperatures=None, confidence: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean test ECE of several networks on one test split, with a bootstrap interval over test samples.

    The test samples are resampled with replacement (the same resample for every network), and the
    mean ECE over the networks is recomputed on each resample; the interval is the percentile
    interval of ``scipy.stats.bootstrap``. It shows how much of an ECE is the luck of a small test
    split, which seeds alone do not show.

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
    if isinstance(logits, (torch.Tensor, np.ndarray)) and logits.ndim == 2:
        raise ArgumentTypeError("logits must be a list of (N, K) arrays, one per network; got one "
                                f"{type(logits).__name__} of shape {tuple(logits.shape)}: pass [logits]")
    if isinstance(logits, (str, bytes)) or not hasattr(logits, "__iter__"):
        raise ArgumentTypeError(f"logits must be a list of (N, K) arrays, one per network; got {type(logits).__name__}")
    logits = [as_tensor(z, "logits").detach() for z in logits]
    labels = as_tensor(labels, "labels").detach()
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {tuple(labels.shape)}")
    shapes = {tuple(z.shape) for z in logits}
    if (not logits or len(shapes) != 1 or logits[0].ndim != 2 or logits[0].shape[0] != labels.shape[0]
            or logits[0].shape[0] == 0 or logits[0].shape[1] < 2):
        raise ValueError(f"logits must be a non-empty list of (N, K) arrays of one shape, K >= 2 and N = len(labels) "
                         f"= {labels.shape[0]} >= 1; got shapes {', '.join(str(s) for s in sorted(shapes)) or 'none'}")
    for z in logits:
        check_finite(z, "logits")
    labels = check_labels(labels, logits[0].shape[1]).cpu()
    n_bins = check_bins(n_bins)
    confidence = check_fraction(confidence, "confidence")
    n_resamples = check_positive_int(n_resamples, "n_resamples")
    seed = check_seed(seed)
    if temperatures is None:
        temperatures = [1.0] * len(logits)
    if isinstance(temperatures, (str, bytes)) or not hasattr(temperatures, "__len__"):
        raise ArgumentTypeError(f"temperatures must be None or one number per network, got "
                                f"{type(temperatures).__name__}")
    temperatures = [check_positive_number(t, "temperatures") for t in temperatures]
    if len(temperatures) != len(logits):
        raise ValueError(f"temperatures must be one positive number per network: got {len(temperatures)} for "
                         f"{len(logits)} networks")
    # As calibration.ece: a warning when every row of every network looks like probabilities.
    warn_if_probabilities(torch.cat([z.double().cpu() for z in logits]), "logits", stacklevel=3)
    # The ECE of a subset needs only each sample's bin and its (correct − confidence).
    bins, gaps = [], []
    for z, t in zip(logits, temperatures):
        p = torch.softmax(z.double().cpu() / t, dim=1)
        conf, pred = p.max(1)
        bins.append(_confidence_bins(conf, n_bins)[1].numpy())
        gaps.append(((pred == labels).double() - conf).numpy())
    bins, gaps = np.stack(bins), np.stack(gaps)          # (networks, N)
    networks, n = bins.shape

    def mean_ece(index, axis=-1):
        index = np.asarray(index, dtype=np.int64)
        batch = index.reshape(-1, index.shape[-1])        # (R, N)
        total = np.zeros(batch.shape[0])
        offset = np.arange(batch.shape[0])[:, None] * n_bins
        for k in range(networks):
            sums = np.bincount((bins[k][batch] + offset).ravel(), weights=gaps[k][batch].ravel(),
                               minlength=batch.shape[0] * n_bins).reshape(-1, n_bins)
            total += np.abs(sums).sum(1) / batch.shape[1]
        return (total / networks).reshape(index.shape[:-1])

    value = float(mean_ece(np.arange(n)))
    result = _scipy.bootstrap((np.arange(n),), mean_ece, vectorized=True, n_resamples=n_resamples,
                              confidence_level=confidence, method="percentile",
                              rng=np.random.default_rng(seed))
    return value, float(result.confidence_interval.low), float(result.confidence_interval.high)
