"""Calibration measures against loops written here, and temperature recovery on synthetic logits."""

import math
import warnings

import numpy as np
from scipy.optimize import minimize_scalar
import pytest
import torch

from nclab import calibration as C


def softmax_row(row):
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    return [e / sum(exps) for e in exps]


def loop_bins(logits, labels, n_bins):
    """Per-bin count, confidence sum and hits by looping over samples and bins."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    count, conf, hits = np.zeros(n_bins), np.zeros(n_bins), np.zeros(n_bins)
    for row, label in zip(logits, labels):
        probs = softmax_row(row)
        top = max(range(len(probs)), key=probs.__getitem__)
        for b in range(n_bins):
            if edges[b] < probs[top] <= edges[b + 1]:
                count[b] += 1
                conf[b] += probs[top]
                hits[b] += top == label
    return edges, count, conf, hits


def loop_ece(logits, labels, n_bins):
    _, count, conf, hits = loop_bins(logits, labels, n_bins)
    return sum(abs(hits[b] - conf[b]) for b in range(n_bins) if count[b]) / len(labels)


def synthetic(rng, n=400, K=5, scale=2.0):
    logits = scale * rng.standard_normal((n, K))
    labels = np.where(rng.random(n) < 0.7, logits.argmax(1), rng.integers(0, K, n))
    return logits, labels


@pytest.mark.parametrize("n_bins", [1, 7, 15, 20])
def test_ece_and_bins_match_loops(n_bins):
    logits, labels = synthetic(np.random.default_rng(n_bins))
    assert C.ece(logits, labels, n_bins) == pytest.approx(loop_ece(logits, labels, n_bins), rel=1e-12)
    edges, count, conf, hits = loop_bins(logits, labels, n_bins)
    bins = C.reliability_bins(torch.tensor(logits), torch.tensor(labels), n_bins)
    np.testing.assert_allclose(bins.edges, edges, rtol=0, atol=1e-15)
    assert bins.count.tolist() == count.astype(int).tolist()
    filled = count > 0
    np.testing.assert_allclose(bins.confidence[filled], conf[filled] / count[filled], rtol=1e-12)
    np.testing.assert_allclose(bins.accuracy[filled], hits[filled] / count[filled], rtol=1e-12)
    assert np.isnan(bins.accuracy[~filled]).all()


def test_nll_accuracy_entropy_match_loops():
    logits, labels = synthetic(np.random.default_rng(0), n=50)
    probs = [softmax_row(row) for row in logits]
    nll = -sum(math.log(p[y]) for p, y in zip(probs, labels)) / len(labels)
    acc = sum(int(np.argmax(row) == y) for row, y in zip(logits, labels)) / len(labels)
    entropy = [-sum(q * math.log(q) for q in p) for p in probs]
    assert C.nll(logits, labels) == pytest.approx(nll, rel=1e-12)
    assert C.accuracy(logits, labels) == pytest.approx(acc, abs=1e-15)
    np.testing.assert_allclose(C.prediction_entropy(logits).numpy(), entropy, rtol=1e-12)


def calibrated_sample(seed, n=20000, K=10):
    """Logits whose softmax is the true label distribution: T = 1 calibrates them."""
    gen = torch.Generator().manual_seed(seed)
    calibrated = 2.5 * torch.randn(n, K, generator=gen, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(calibrated, 1), 1, generator=gen).squeeze(1)
    return calibrated, labels


@pytest.mark.parametrize("t0", [0.5, 2.0, 4.0])
def test_fit_temperature_recovers_known_temperature(t0):
    """Logits t0 × calibrated are calibrated again after division by T = t0."""
    calibrated, labels = calibrated_sample(int(10 * t0))
    logits = t0 * calibrated
    fitted = C.fit_temperature(logits, labels, method="nll")
    assert fitted == pytest.approx(t0, rel=0.02)
    assert C.nll(logits / fitted, labels) <= C.nll(logits / (0.97 * fitted), labels)
    assert C.nll(logits / fitted, labels) <= C.nll(logits / (1.03 * fitted), labels)
    assert C.ece(logits / fitted, labels) < 0.02 < C.ece(logits, labels)


@pytest.mark.slow
@pytest.mark.parametrize("t0", [0.5, 4.0])
def test_fit_temperature_by_ece_grid_search(t0):
    calibrated, labels = calibrated_sample(int(100 * t0), n=10000)
    logits = t0 * calibrated
    fitted = C.fit_temperature(logits, labels, method="ece", n_bins=15)
    assert fitted in C.ECE_TEMPERATURE_GRID
    assert fitted == pytest.approx(t0, rel=0.1)
    grid_best = min(C.ece(logits / t, labels) for t in C.ECE_TEMPERATURE_GRID[::25])
    assert C.ece(logits / fitted, labels) <= grid_best + 1e-12


@pytest.mark.parametrize("seed,scale,n", [(0, 1.0, 144), (1, 5.0, 300), (2, 0.3, 50), (3, 20.0, 1000), (4, 2.0, 3)])
def test_fit_temperature_nll_matches_a_scalar_optimizer(seed, scale, n):
    """Newton on 1/T against SciPy's bounded Brent search on log T, a different algorithm."""
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((n, 7))
    labels = np.where(rng.random(n) < 0.6, logits.argmax(1), rng.integers(0, 7, n))
    fitted = C.fit_temperature(logits, labels)
    found = minimize_scalar(lambda u: C.nll(logits / math.exp(u), labels),
                            bounds=(math.log(0.01), math.log(100.0)), method="bounded",
                            options={"xatol": 1e-10})
    assert fitted == pytest.approx(math.exp(found.x), rel=1e-5)
    assert C.nll(logits / fitted, labels) <= found.fun + 1e-12


def test_fit_temperature_nll_at_the_bounds_and_when_flat():
    rng = np.random.default_rng(5)
    noise = 50.0 * rng.standard_normal((200, 4))  # confident and unrelated to the labels
    assert C.fit_temperature(noise, rng.integers(0, 4, 200)) == pytest.approx(100.0)
    labels = rng.integers(0, 4, 200)
    perfect = 1e-3 * np.eye(4)[labels]  # right but barely confident: sharpen as far as allowed
    assert C.fit_temperature(perfect, labels) == pytest.approx(0.01)
    assert C.fit_temperature(np.ones((10, 3)), np.arange(10) % 3) == 1.0


# Bad input: one ValueError naming the argument.

@pytest.mark.parametrize("logits,labels,name", [
    (np.zeros(4), [0, 1, 0, 1], "logits"),
    (np.zeros((4, 1)), [0, 0, 0, 0], "logits"),
    (np.zeros((0, 3)), [], "logits"),
    (np.array([[0.0, np.nan]] * 4), [0, 1, 0, 1], "logits"),
    (np.array([[0.0, np.inf]] * 4), [0, 1, 0, 1], "logits"),
    (np.zeros((4, 2)), [0, 1, 0], "labels"),
    (np.zeros((4, 2)), [0, 1, 2, 0], "labels"),
    (np.zeros((4, 2)), [0.0, 1.0, 0.0, 1.0], "labels"),
])
def test_bad_logits_and_labels(logits, labels, name):
    for measure in (C.ece, C.reliability_bins, C.nll, C.accuracy, C.fit_temperature):
        with pytest.raises(ValueError, match=name):
            measure(logits, labels)


def test_bad_options():
    logits, labels = synthetic(np.random.default_rng(1), n=20)
    for n_bins in (0, -3, 2.5, "15"):
        with pytest.raises(ValueError, match="n_bins"):
            C.ece(logits, labels, n_bins=n_bins)
    with pytest.raises(ValueError, match="method"):
        C.fit_temperature(logits, labels, method="brier")
    with pytest.raises(ValueError, match="logits"):
        C.prediction_entropy(np.ones(3))


def test_probabilities_instead_of_logits_draw_a_warning():
    logits, labels = synthetic(np.random.default_rng(2), n=300)
    probs = torch.softmax(torch.as_tensor(logits), 1).numpy()
    with pytest.warns(UserWarning, match="look like probabilities"):
        C.ece(probs, labels)
    with pytest.warns(UserWarning, match="look like probabilities"):
        C.reliability_bins(probs, labels)
    # Log-probabilities are logits up to a per-row shift: same ECE, no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert C.ece(np.log(probs), labels) == pytest.approx(C.ece(logits, labels), abs=1e-12)
        C.ece(np.zeros((4, 2)), [0, 1, 0, 1])  # rows summing to 0, not 1
