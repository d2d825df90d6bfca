"""Paired verdicts and the bootstrap interval of ECE, against independent computations."""

from __future__ import annotations

import itertools
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
    assert result.n == 8
    # this draw: the interval excludes 0 by a hair, the exact test does not reject, so no direction
    assert result.high < 0 and result.p_exact > 0.05 and result.verdict == "not separated"


def test_sign_test_p_value_by_enumeration():
    # 7 of 8 lower: the exact two-sided p-value is P(X <= 1 or X >= 7) for X ~ Bin(8, 1/2).
    a = np.array([1.0, 1, 1, 1, 1, 1, 1, 3])
    b = np.full(8, 2.0)
    result = stats.paired(a, b)
    brute = sum(math.comb(8, k) for k in (0, 1, 7, 8)) / 2 ** 8
    assert result.p_sign == pytest.approx(brute, rel=1e-12)
    assert (result.lower_in, result.higher_in) == (7, 1)


def _brute_sign_flip_p(d):
    """Two-sided p of the paired permutation test: the share of all 2^n sign patterns whose |mean| is at least the observed."""
    d = np.asarray(d, dtype=float)
    observed = abs(d.mean())
    hits = sum(abs((d * np.array(signs)).mean()) >= observed - 1e-12 for signs in itertools.product((1, -1), repeat=d.size))
    return hits / 2 ** d.size


@pytest.mark.parametrize("d", [[-1.0, -2, -3, -4, -5, -6, -7, 0.5], [0.3, -0.1, 0.4, 0.2, 0.0, 0.25],
                               [5.0, 5, 5, -5, 0, 0, 5, 5, 5, 5], [1.0, -1.0]])
def test_the_exact_test_is_a_brute_force_enumeration_of_sign_flips(d):
    assert stats.sign_flip_p(d) == pytest.approx(_brute_sign_flip_p(d), rel=1e-9)


def test_the_exact_test_agrees_with_scipys_permutation_test_and_estimates_beyond_the_limit():
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, size=13)
    exact = scipy_stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                         vectorized=True).pvalue
    assert stats.sign_flip_p(d) == pytest.approx(exact, rel=1e-9)
    many = rng.normal(0.3, 1.0, size=24)              # 2^24 patterns: drawn, not enumerated
    estimate = stats.sign_flip_p(many, n_resamples=20000)
    t_p = scipy_stats.ttest_1samp(many, 0.0).pvalue   # close to the t test's p at this n
    assert abs(estimate - t_p) < 0.02


def test_a_direction_needs_the_interval_and_the_exact_test():
    # 7 of 8 pairs lower by the same amount, one higher by as much: the t interval excludes 0,
    # but the exact test (here equal to the sign test) gives p = 0.07: not separated.
    d = np.array([-1.0] * 7 + [1.0])
    result = stats.paired(d, np.zeros(8))
    assert result.high < 0 and result.p_exact == pytest.approx(18 / 256)
    assert result.verdict == "not separated"
    # the same signs, the higher one small: the exact test rejects (p = 4/256) and the interval excludes 0
    d = np.array([-1.0, -2, -3, -4, -5, -6, -7, 0.5])
    assert stats.paired(d, np.zeros(8)).verdict == "lower"
    assert stats.paired(np.zeros(8), d).verdict == "higher"          # two-sided: the mirror image


@pytest.mark.parametrize("a, b", [([0.0, 0.0], [1.0, 1.0]),                 # a zero-width interval on two pairs
                                  ([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 3.5, 4.1, 5.3, 6.2]),   # 5 of 5: p >= 1/16
                                  ([1.0], [2.0])])                           # one pair: no interval
def test_too_few_pairs_can_never_give_a_direction(a, b):
    result = stats.paired(a, b)
    assert result.verdict == "too few seeds to decide"
    assert result.min_p > 0.05


def test_ties_count_as_no_evidence():
    # counts on a grid of 5 epochs: 4 of 8 pairs tie, 4 are all lower: 2/2^4 = 0.125 is the best reachable p
    a = np.array([10.0, 10, 15, 20, 5, 10, 15, 20])
    b = np.array([15.0, 15, 20, 25, 5, 10, 15, 20])
    result = stats.paired(a, b, resolution=5)
    assert (result.lower_in, result.higher_in) == (4, 0) and result.min_p == pytest.approx(1 / 8)
    assert result.verdict == "too few seeds to decide" and "grid of 5" in str(result)
    everyone = stats.paired(np.full(8, 5.0), np.full(8, 5.0))            # every run at the first logged epoch
    assert everyone.verdict == "too few seeds to decide" and everyone.p_exact == 1.0
    six = stats.paired(np.zeros(6), np.arange(1.0, 7.0))                  # six untied pairs: 2/64 < 0.05
    assert six.min_p == pytest.approx(1 / 32) and six.verdict == "lower"


def _closed_testing_holm(p, level):
    """Holm by its definition as closed testing with Bonferroni: reject H_i when every subset containing i is rejected."""
    m = len(p)
    rejected = []
    for i in range(m):
        subsets = [s for r in range(1, m + 1) for s in itertools.combinations(range(m), r) if i in s]
        rejected.append(all(min(p[j] for j in s) <= level / len(s) for s in subsets))
    return rejected


def _step_up_bh(p, level):
    """Benjamini-Hochberg by its definition: reject the k smallest, k the largest with p_(k) <= k level / m."""
    order = np.argsort(p)
    m = len(p)
    k = max([r + 1 for r in range(m) if p[order[r]] <= (r + 1) * level / m], default=0)
    rejected = np.zeros(m, bool)
    rejected[order[:k]] = True
    return list(rejected)


def _family(seed):
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(6):
        shift = rng.choice([0.0, 0.4, 1.5])
        d = rng.normal(shift, 1.0, size=9)
        out[f"c{i}"] = stats.paired(d, np.zeros(9))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_family_adjustments_reject_what_their_definitions_reject(seed):
    family = _family(seed)
    p = [c.p_exact for c in family.values()]
    for method, brute in (("holm", _closed_testing_holm), ("bh", _step_up_bh)):
        adjusted = stats.adjust(family, method)
        assert [q.p_adjusted <= 0.05 for q in adjusted.values()] == brute(p, 0.05)
        for name, q in adjusted.items():
            c = family[name]
            directional = q.p_adjusted <= 0.05 and (c.high < 0 or c.low > 0)
            assert (q.verdict in ("lower", "higher")) == directional
            assert q.p_adjusted >= c.p_exact and q.family.endswith("over 6 comparisons")


def test_adjust_rejects_bad_input():
    with pytest.raises(ValueError, match="method"):
        stats.adjust({}, "bonferroni")
    with pytest.raises(TypeError, match="comparisons"):
        stats.adjust({"a": 0.01})


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


def test_the_jackknife_of_the_ece_is_leave_one_out_by_brute_force():
    logits, labels = _networks(n=60, count=2, seed=2)
    bins, gaps = stats._ece_parts(logits, labels, 10, [1.0, 1.0])
    fast = stats._jackknife(bins, gaps, 10)
    for i in (0, 17, 59):
        keep = torch.as_tensor([j for j in range(60) if j != i])
        brute = [calibration.ece(z[keep], labels[keep], 10) for z in logits]
        assert fast[:, i] == pytest.approx(brute, abs=1e-6)       # calibration.ece works in float32


@pytest.mark.slow
def test_ece_interval_is_scipys_bca_interval():
    """scipy.stats.bootstrap's BCa interval (its own resampling and jackknife) of an ECE written out in numpy."""
    logits, labels = _networks(n=300, count=2, seed=1)
    n = len(labels)
    probs = [torch.softmax(z.double(), 1) for z in logits]
    conf = np.stack([p.max(1).values.numpy() for p in probs])                       # (networks, n)
    gap = np.stack([(p.argmax(1) == labels).double().numpy() for p in probs]) - conf
    bin_of = np.minimum((conf * 10).astype(int), 9)                                  # ten equal-width bins

    def mean_ece(index, axis=-1):
        index = np.asarray(index, dtype=np.int64)
        rows = index.reshape(-1, index.shape[-1])
        onehot = np.eye(10)[bin_of[:, rows]]                                         # (networks, R, m, 10)
        sums = (onehot * gap[:, rows][..., None]).sum(2)                             # (networks, R, 10)
        return (np.abs(sums).sum(-1) / rows.shape[1]).mean(0).reshape(index.shape[:-1])

    assert mean_ece(np.arange(n)) == pytest.approx(np.mean([calibration.ece(z, labels, 10) for z in logits]), abs=1e-6)
    # the tail quantiles BCa picks move with the resampling: average two of scipy's runs
    ends = np.mean([[(ci := scipy_stats.bootstrap((np.arange(n),), mean_ece, vectorized=True, n_resamples=10000,
                                                  method="BCa", batch=500, rng=np.random.default_rng(seed)
                                                  ).confidence_interval).low, ci.high] for seed in (4, 5)], axis=0)
    value, low, high = stats.ece_interval(logits, labels, n_bins=10, n_resamples=20000, seed=3)
    width = ends[1] - ends[0]
    assert abs(low - ends[0]) < 0.1 * width and abs(high - ends[1]) < 0.1 * width
    assert low < value                                   # BCa moves the interval down, around the biased estimate


def _brute_two_level(a, b, labels, rounds, seed):
    rng = np.random.default_rng(seed)
    n, seeds = len(labels), len(a)
    out = []
    for _ in range(rounds):
        idx = torch.as_tensor(rng.integers(0, n, n))
        drawn = rng.integers(0, seeds, seeds)
        out.append(np.mean([calibration.ece(a[s][idx], labels[idx], 10) - calibration.ece(b[s][idx], labels[idx], 10)
                            for s in drawn]))
    return np.percentile(out, [2.5, 97.5])


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_ece_difference_is_a_two_level_bootstrap_by_brute_force():
    a, labels = _networks(n=150, count=4, seed=5)
    b = [z * 0.6 for z in a]
    brute_low, brute_high = _brute_two_level(a, b, labels, 500, seed=1)
    diff, low, high = stats.ece_difference(a, b, labels, n_bins=10, n_resamples=6000, seed=2)
    expected = np.mean([calibration.ece(x, labels, 10) - calibration.ece(y, labels, 10) for x, y in zip(a, b)])
    assert diff == pytest.approx(expected, abs=1e-6)
    width = brute_high - brute_low
    assert abs(low - brute_low) < 0.15 * width and abs(high - brute_high) < 0.15 * width


def test_ece_bins_agree_reports_each_bin_count():
    a, labels = _networks(n=200, count=6, seed=7)
    sharper = [z * 3 for z in a]
    verdict, each = stats.ece_bins_agree(sharper, a, labels, bins=(10, 15, 20))
    assert set(each) == {10, 15, 20}
    for k, p in each.items():
        ece_a = [calibration.ece(z, labels, k) for z in sharper]
        ece_b = [calibration.ece(z, labels, k) for z in a]
        assert p.mean == pytest.approx(np.mean(np.subtract(ece_a, ece_b)), abs=1e-6)
    verdicts = {p.verdict for p in each.values()}
    assert verdict == (verdicts.pop() if len(verdicts) == 1 else "depends on the bin count")


def test_ece_interval_rejects_bad_input():
    logits, labels = _networks()
    with pytest.raises(ValueError, match="logits"):
        stats.ece_interval([logits[0][:10]], labels)
    with pytest.raises(ValueError, match="temperatures"):
        stats.ece_interval(logits, labels, temperatures=[1.0])
