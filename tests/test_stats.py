"""Paired verdicts and the bootstrap interval of ECE, against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from nclab import calibration, stats


def test_paired_interval_is_scipys_paired_t_interval():
    rng = np.random.default_rng(0)
    a = rng.normal(size=8)
    b = a + rng.normal(0.3, 0.2, size=8)
    result = stats.paired(a, b)
    ci = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    assert result.low == pytest.approx(ci.low, rel=1e-12)
    assert result.high == pytest.approx(ci.high, rel=1e-12)
    assert result.mean == pytest.approx(np.mean(a - b), rel=1e-12)
    assert result.verdict == "lower" and result.n == 8


def test_sign_test_p_value_by_enumeration():
    # 7 of 8 lower: the exact two-sided p-value is P(X <= 1 or X >= 7) for X ~ Bin(8, 1/2).
    a = np.array([1.0, 1, 1, 1, 1, 1, 1, 3])
    b = np.full(8, 2.0)
    result = stats.paired(a, b)
    brute = sum(math.comb(8, k) for k in (0, 1, 7, 8)) / 2 ** 8
    assert result.p_sign == pytest.approx(brute, rel=1e-12)
    assert (result.lower_in, result.higher_in) == (7, 1)


def test_verdicts_follow_the_interval():
    assert stats.paired([1.0, 2.0, 3.0, 4.0], [0.0, 1.1, 1.9, 3.0]).verdict == "higher"
    assert stats.paired([1.0, 2.0, 3.0, 4.0], [1.5, 1.5, 3.5, 3.5]).verdict == "not separated"
    assert stats.paired([2.0, 2.0], [2.0, 2.0]).verdict == "not separated"    # ties: zero difference
    one = stats.paired([1.0], [2.0])                                           # one pair: no interval
    assert one.verdict == "not separated" and math.isnan(one.low)


def test_missing_values_are_left_out_and_counted():
    result = stats.paired([1.0, np.nan, 1.0, 1.2], [2.0, 2.0, np.nan, 2.1])
    assert result.n == 2 and result.left_out == 2
    assert "without a value" in str(result)


@pytest.mark.parametrize("a, b, message", [
    ([1.0, 2.0], [1.0], "same length"),
    ([[1.0, 2.0]], [[1.0, 2.0]], "1-D"),
    ([1.0, np.inf], [1.0, 2.0], "infinities"),
])
def test_paired_rejects_bad_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        stats.paired(a, b)
    with pytest.raises(ValueError, match="confidence"):
        stats.paired([1.0, 2.0], [1.0, 2.0], confidence=1.5)


def _networks(n=240, k=4, count=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = [2 * torch.nn.functional.one_hot(labels, k) + 1.5 * torch.randn(n, k, generator=g)
              for _ in range(count)]
    return logits, labels


def test_ece_interval_value_is_the_mean_ece():
    logits, labels = _networks()
    temperatures = [0.7, 1.0, 1.6]
    value, low, high = stats.ece_interval(logits, labels, n_bins=10, temperatures=temperatures,
                                          n_resamples=300)
    expected = np.mean([calibration.ece(z / t, labels, 10) for z, t in zip(logits, temperatures)])
    assert value == pytest.approx(expected, abs=1e-6)   # calibration.ece works in float32
    assert low < value < high


@pytest.mark.slow
def test_ece_interval_matches_a_brute_force_bootstrap():
    """The percentile interval of a plain loop over resamples, each scored by calibration.ece."""
    logits, labels = _networks(n=150, count=2, seed=1)
    rng = np.random.default_rng(5)
    draws = []
    for _ in range(400):
        idx = torch.as_tensor(rng.integers(0, len(labels), len(labels)))
        draws.append(np.mean([calibration.ece(z[idx], labels[idx], 10) for z in logits]))
    brute_low, brute_high = np.percentile(draws, [2.5, 97.5])
    _, low, high = stats.ece_interval(logits, labels, n_bins=10, n_resamples=4000, seed=3)
    width = brute_high - brute_low
    assert abs(low - brute_low) < 0.15 * width and abs(high - brute_high) < 0.15 * width


def test_ece_interval_rejects_bad_input():
    logits, labels = _networks()
    with pytest.raises(ValueError, match="logits"):
        stats.ece_interval([logits[0][:10]], labels)
    with pytest.raises(ValueError, match="temperatures"):
        stats.ece_interval(logits, labels, temperatures=[1.0])
