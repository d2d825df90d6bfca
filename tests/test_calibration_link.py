"""nclab.book.calibration_link: chapter 5's and 10's tests of "a tuned δ makes temperature scaling unnecessary" and of the link between collapse and calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nclab import runs, stats
from nclab.book import calibration_link as link
from nclab.runs import Outputs
from nclab.train import RunResult


def outputs(logits, labels) -> Outputs:
    return Outputs(torch.zeros(len(labels), 2), logits, labels, torch.zeros(logits.shape[1], 2),
                   torch.zeros(logits.shape[1]))


def calibrated(n: int = 1000, K: int = 5, seed: int = 0):
    """Logits and labels drawn from the softmax of those logits: calibrated by construction."""
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(n, K, generator=g, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(logits, 1), 1, generator=g)[:, 0]
    return logits, labels


def test_bins_text_names_one_verdict_or_the_bin_counts_of_each():
    lower = stats.paired(np.arange(8.0), np.arange(8.0) + 1 + 0.01 * np.arange(8))
    unclear = stats.paired(np.arange(8.0), np.arange(8.0) + np.array([1, -1] * 4))
    assert lower.verdict == "lower" and unclear.verdict == "not separated"
    assert link.bins_text({10: lower, 20: lower, 30: lower}) == "lower at every bin count from 10 to 30"
    assert (link.bins_text({10: unclear, 18: lower, 20: unclear, 25: lower}, ("lowered", "raised"))
            == "depends on the bin count: not separated at 10, 20 bins; lowered at 18, 25 bins")


def test_interval_reads_back_a_glued_interval_and_refuses_anything_else():
    assert link.interval("+0.005 [-0.001, +0.010]") == (0.005, -0.001, 0.010)
    with pytest.raises(ValueError, match="interval text"):
        link.interval("not separated (p = 0.3)")


@pytest.mark.slow     # twelve networks at seven bin counts: several seconds
def test_without_scaling_sees_a_calibrated_delta_and_an_overconfident_ce():
    # CE: the calibrated logits times 3 (overconfident, T near 3); "δ": the calibrated logits (T near 1).
    ce_val, ce_test, ls_val, ls_test = [], [], [], []
    for seed in range(6):
        zv, yv = calibrated(seed=2 * seed)
        zt, yt = calibrated(seed=100)                          # one test split, shared by every network
        zt = zt + 0.05 * torch.randn(zt.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        ce_val.append(outputs(3 * zv, yv)); ls_val.append(outputs(zv, yv))
        ce_test.append(outputs(3 * zt, yt)); ls_test.append(outputs(zt, yt))
    ev = link.without_scaling({0.0: ce_val, 0.05: ls_val}, {0.0: ce_test, 0.05: ls_test}, n_resamples=100)
    mean_T = float(ev.texts["ch5_T_005"].split()[0])
    assert abs(mean_T - 1) < 0.1
    # Scaled by its fitted T (about 3), CE's logits become the calibrated ones: unscaled δ ≈ scaled CE.
    value, low, high = link.interval(ev.texts["ch5_unscaled_005_vs_scaled_ce"])
    assert low <= value <= high and abs(value) < 0.01
    assert ev.claims["temperature scaling cuts the mean test ECE of CE to under a third"]
    assert not ev.claims["unscaled, δ = 0.05 has a higher test ECE than CE after scaling, at every bin count from 10 to 30"]
    assert not ev.claims["temperature scaling lowers the test ECE of δ = 0.05 at every bin count from 10 to 30"]


def run(delta: float, seed: int, nc1, test_ece) -> RunResult:
    history = [dict(epoch=i + 1, nc1=float(a), test_ece=float(e), w_norm=1.0, h_norm=1.0)
               for i, (a, e) in enumerate(zip(nc1, test_ece))]
    return RunResult(runs.config("quick", delta=delta, seed=seed), history, {"device": "test"})


def test_collapse_link_tests_each_delta_against_zero_and_reads_which_way_ce_errs():
    results = []
    for seed in range(6):
        nc1 = np.geomspace(1.0, 1e-3 * (1 + seed), 11)
        results.append(run(0.0, seed, nc1, np.linspace(0.01, 0.2, 11)))          # ECE rises as NC1 falls: ρ = −1
        results.append(run(0.1, seed, nc1, np.r_[0.3, [0.1, 0.3] * 5]))           # no order: ρ near 0
    z, y = calibrated(n=500)
    test = {0.0: [outputs(3 * z, y)] * 6}
    ev = link.collapse_link(results, test)
    probs = np.exp(3 * z.numpy()) / np.exp(3 * z.numpy()).sum(1, keepdims=True)
    gap = probs.max(1).mean() - (probs.argmax(1) == y.numpy()).mean()
    assert gap > 0 and float(ev.texts["link_ce_gap"]) == pytest.approx(gap, abs=5e-4)
    assert ev.claims["the CE networks are overconfident: confidence above accuracy in every run"]
    assert ev.texts["link_rho_nc1_each"].startswith("CE -1.00, negative")
    assert not ev.claims["over training, ρ(NC1, ECE) is negative for no δ (tested against 0 over the seeds)"]
    assert ev.claims["over training, ρ(NC1, ECE) is positive for no δ (tested against 0 over the seeds)"]
