"""Maintained libraries in place of hand-made parts give the same numbers; one binning, one writer.

The hand-made versions that were replaced are copied here as references: the safeguarded Newton
of the NLL temperature fit, Helmert's basis built column by column, and the three ECE binnings.
"""

from __future__ import annotations

import gzip
import math
import os
import stat

import numpy as np
import pytest
import torch

from nclab import _files, calibration, data, metrics, stats, ufm


# --- the references -----------------------------------------------------------------------------

def _newton_temperature(z: np.ndarray, y: np.ndarray) -> float:
    """The former fit: safeguarded Newton on beta = 1/T in [0.01, 100]."""
    target = z[np.arange(len(y)), y]

    def slope_and_curvature(beta):
        scaled = beta * z
        p = np.exp(scaled - scaled.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        mean = (p * z).sum(1)
        return float((mean - target).mean()), float((p * (z - mean[:, None]) ** 2).sum(1).mean())

    low, high = 1e-2, 1e2
    slope_low, slope_high = slope_and_curvature(low)[0], slope_and_curvature(high)[0]
    if slope_low >= 0.0 and slope_high <= 0.0:
        return 1.0
    if slope_low >= 0.0:
        return 1.0 / low
    if slope_high <= 0.0:
        return 1.0 / high
    beta = 1.0
    for _ in range(200):
        slope, curvature = slope_and_curvature(beta)
        if slope == 0.0:
            break
        low, high = (beta, high) if slope < 0.0 else (low, beta)
        new = beta + (-slope / curvature if curvature > 0.0 else math.inf)
        if not low < new < high:
            new = 0.5 * (low + high)
        if abs(new - beta) <= 1e-13 * beta or high - low <= 1e-13 * beta:
            return 1.0 / new
        beta = new
    return 1.0 / beta


def _helmert_by_columns(K: int) -> torch.Tensor:
    Q = torch.zeros(K, K - 1, dtype=torch.float64)
    for j in range(1, K):
        Q[:j, j - 1] = 1.0
        Q[j, j - 1] = -float(j)
        Q[:, j - 1] /= math.sqrt(j * (j + 1))
    return Q


def _helmert_vectorized(K: int) -> np.ndarray:
    j = np.arange(1, K, dtype=np.float64)
    rows = np.arange(K)[:, None]
    return ((rows < j).astype(np.float64) - j * (rows == j)) / np.sqrt(j * (j + 1))


def _old_bins(confidence: torch.Tensor, n_bins: int) -> torch.Tensor:
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    return torch.bucketize(confidence, edges[1:-1])


def _old_ece(z: torch.Tensor, y: torch.Tensor, n_bins: int, t: float = 1.0) -> float:
    """ECE as the former reliability_bins computed it: per bin, weighted abs(accuracy − confidence)."""
    conf, pred = torch.softmax(z.double() / t, dim=1).max(1)
    correct = (pred == y).double()
    index = _old_bins(conf, n_bins)
    total = 0.0
    for b in range(n_bins):
        inside = index == b
        if inside.any():
            total += float(inside.sum()) * abs(float(correct[inside].mean()) - float(conf[inside].mean()))
    return total / len(y)


def _logit_sets(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(count):
        n, k = int(rng.integers(20, 2000)), int(rng.integers(2, 40))
        z = float(rng.choice([0.05, 0.5, 3.0, 10.0, 40.0])) * rng.standard_normal((n, k))
        if i % 3 == 0:
            y = rng.integers(0, k, n)
        elif i % 3 == 1:
            y = z.argmax(1)  # separable: the fit runs to the lower end of the interval
        else:
            scaled = z / rng.uniform(0.3, 3.0)
            p = np.exp(scaled - scaled.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            y = np.array([rng.choice(k, p=row) for row in p])
        yield z, y


# --- temperature scaling: scipy.optimize.brentq against the former Newton -----------------------

def test_nll_temperature_agrees_with_the_former_newton_fit():
    worst = 0.0
    for z, y in _logit_sets(30):
        old, new = _newton_temperature(z, y), calibration._fit_temperature_nll(z, y)
        worst = max(worst, abs(new - old) / old)
    assert worst <= 1e-9, worst


@pytest.mark.parametrize("z, expected", [(np.zeros((5, 3)), 1.0), (np.eye(3) * 1e-9, None)])
def test_nll_temperature_edge_cases_unchanged(z, expected):
    y = np.arange(len(z)) % z.shape[1]
    assert calibration._fit_temperature_nll(z, y) == _newton_temperature(z, y)
    if expected is not None:
        assert calibration._fit_temperature_nll(z, y) == expected


# --- Helmert's basis: scipy.linalg.helmert, the same signs and order -----------------------------

@pytest.mark.parametrize("K", [2, 3, 4, 10, 37, 100, 257])
def test_helmert_from_scipy_is_bit_identical_to_the_former_bases(K):
    Q = ufm.simplex_basis(K)
    assert Q.dtype == torch.float64 and Q.is_contiguous() and Q.shape == (K, K - 1)
    assert torch.equal(Q, _helmert_by_columns(K))
    assert np.array_equal(metrics._helmert(K), _helmert_vectorized(K))


# --- one ECE binning --------------------------------------------------------------------------

@pytest.mark.parametrize("n_bins", [1, 2, 3, 10, 15, 20, 100])
def test_the_one_binning_matches_the_former_on_edges_and_random_confidences(n_bins):
    g = torch.Generator().manual_seed(n_bins)
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    on_edges = torch.cat([edges, torch.nextafter(edges, torch.tensor(2.0, dtype=torch.float64)).clamp(max=1.0),
                          torch.nextafter(edges, torch.tensor(-1.0, dtype=torch.float64)).clamp(min=0.0),
                          torch.arange(n_bins + 1, dtype=torch.float64) / n_bins])
    confidence = torch.cat([on_edges, torch.rand(5000, generator=g, dtype=torch.float64)])
    got_edges, index = calibration._confidence_bins(confidence, n_bins)
    assert torch.equal(got_edges, edges)
    assert torch.equal(index, _old_bins(confidence, n_bins))
    # bin i holds (edges[i], edges[i+1]]: a confidence on an inner edge goes to the bin below it
    assert torch.equal(index[1:n_bins], torch.arange(n_bins - 1))


@pytest.mark.parametrize("seed", range(4))
def test_ece_reliability_grid_and_interval_bin_as_before(seed):
    g = torch.Generator().manual_seed(seed)
    n, k, n_bins = 600, 2 + seed, [5, 10, 15, 20][seed]
    y = torch.randint(0, k, (n,), generator=g)
    z = 2.0 * torch.randn(n, k, generator=g, dtype=torch.float64) + 2.0 * torch.nn.functional.one_hot(y, k)
    if k == 2:  # two classes: top-class confidences exactly on bin edges (sigmoid of log(p / (1 − p)))
        p = torch.arange(1, n_bins, dtype=torch.float64).repeat(n // (n_bins - 1) + 1)[:n] / n_bins
        p = torch.where(p < 0.5, 1 - p, p)
        z = torch.stack([torch.log(p / (1 - p)), torch.zeros(n, dtype=torch.float64)], 1)
    reference = _old_ece(z, y, n_bins)
    assert calibration.ece(z, y, n_bins=n_bins) == pytest.approx(reference, rel=1e-12, abs=1e-15)
    bins = calibration.reliability_bins(z, y, n_bins=n_bins)
    conf = torch.softmax(z, 1).max(1).values
    assert np.array_equal(bins.count, np.bincount(_old_bins(conf, n_bins).numpy(), minlength=n_bins))
    temperatures = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    grid = calibration._ece_per_temperature(z, y, temperatures, n_bins)
    for t, value in zip(temperatures.tolist(), grid.tolist()):
        assert value == pytest.approx(_old_ece(z, y, n_bins, t), rel=1e-12, abs=1e-15)
    value, low, high = stats.ece_interval([z, z * 0.7], y, n_bins=n_bins, n_resamples=50, seed=seed)
    expected = (reference + _old_ece(z * 0.7, y, n_bins)) / 2
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-15) and low <= value <= high


# --- one atomic writer; the umask read without changing it -------------------------------------

def test_umask_is_read_without_setting_it(monkeypatch, tmp_path):
    if _files._umask_from_proc() is None:
        pytest.skip("no /proc/self/status Umask line here")
    monkeypatch.setattr(_files, "_UMASK", None)

    def refuse(_):
        raise AssertionError("os.umask called: it changes the process's umask")

    monkeypatch.setattr(os, "umask", refuse)
    target = tmp_path / "file"
    _files._write_atomically(target, b"payload")
    mask = _files._umask()
    monkeypatch.undo()
    current = os.umask(0o022)
    os.umask(current)
    assert mask == current
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~current


def test_umask_falls_back_to_setting_it_back(monkeypatch):
    monkeypatch.setattr(_files, "_UMASK", None)
    monkeypatch.setattr(_files, "_umask_from_proc", lambda: None)
    before = os.umask(0o022)
    os.umask(before)
    assert _files._umask() == before
    after = os.umask(0o022)
    os.umask(after)
    assert after == before


def test_debian_fashion_mnist_is_unpacked_with_the_atomic_writer(monkeypatch, tmp_path):
    source = tmp_path / "debian"
    source.mkdir()
    for i, stem in enumerate(data._IDX_FILES):
        with gzip.open(source / f"{stem}.gz", "wb") as f:
            f.write(bytes([i]) * (1000 + i))
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", source)
    written = []
    real = data._write_atomically
    monkeypatch.setattr(data, "_write_atomically", lambda path, payload: (written.append(path.name),
                                                                          real(path, payload)))
    folder = tmp_path / "raw"
    data._unpack_debian_fashion_mnist(folder)
    assert written == list(data._IDX_FILES)
    for i, stem in enumerate(data._IDX_FILES):
        assert (folder / stem).read_bytes() == bytes([i]) * (1000 + i)
    assert sorted(p.name for p in folder.iterdir()) == sorted(data._IDX_FILES)  # no temporary file left
