"""Calibration: expected calibration error, reliability diagrams and temperature scaling (chapter 5).

A classifier is calibrated when, among the samples it predicts with confidence p, a share p
is correct. Cross-entropy training tends to make networks overconfident; label smoothing and
temperature scaling (dividing the logits by a fitted T > 0) both pull confidence down.
Following Guo et al. (2017), confidence is the top-class softmax probability and the
expected calibration error (ECE) compares it with accuracy in equal-width confidence bins.

All functions take logits of shape (N, K) and integer labels of shape (N,), as torch tensors
or NumPy arrays, and compute in float64. The functions that apply a softmax (all but
:func:`accuracy`, which only takes the argmax) warn when the logits look like probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import optimize

from nclab._checks import as_tensor, check_bins, check_finite, check_labels, warn_if_probabilities

__all__ = [
    "ReliabilityBins", "reliability_bins", "ece", "nll", "accuracy",
    "fit_temperature", "prediction_entropy", "ECE_TEMPERATURE_GRID",
]

# Temperatures tried by fit_temperature(method="ece"): 603 from 0.05 to 20, each 1 % above the last.
ECE_TEMPERATURE_GRID = np.geomspace(0.05, 20.0, 603)
# Search interval of fit_temperature(method="nll").
_NLL_BOUNDS = (1e-2, 1e2)


def _check_logits(logits, name: str = "logits") -> torch.Tensor:
    z = as_tensor(logits, name).detach()
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"{name} must have shape (N, K) with N >= 1 and K >= 2, got {tuple(z.shape)}")
    z = z.to(torch.float64)
    check_finite(z, name)
    return z


def _check_pair(logits, labels) -> tuple[torch.Tensor, torch.Tensor]:
    z = _check_logits(logits)
    y = check_labels(as_tensor(labels, "labels"), z.shape[1]).to(z.device)
    if y.shape[0] != z.shape[0]:
        raise ValueError(
            f"labels must have one entry per row of logits: got {y.shape[0]} labels for {z.shape[0]} rows"
        )
    return z, y


def _check_bins(n_bins: int) -> int:
    """An integer number of bins in [1, MAX_BINS] (10000): far more bins than that only fill memory."""
    return check_bins(n_bins)


@dataclass
class ReliabilityBins:
    """What a reliability diagram plots: per confidence bin, mean confidence, accuracy and count.

    Bin i holds the samples with confidence in (edges[i], edges[i+1]]; empty bins have NaN
    confidence and accuracy.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        """Σ_b (n_b/N) abs(acc_b − conf_b) over the non-empty bins."""
        filled = self.count > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((self.count[filled] * gaps).sum() / self.count.sum())


def _confidence_bins(confidence: torch.Tensor, n_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The package's one ECE binning: the edges of ``n_bins`` equal-width bins on [0, 1] and each confidence's bin.

    Bin i holds the confidences in (edges[i], edges[i+1]] (bin 0 also holds 0), so a confidence
    exactly on an inner edge goes to the bin below it. Returns (edges, index): float64 edges of
    shape (n_bins + 1,) on ``confidence``'s device, and an int64 index of ``confidence``'s shape.
    :func:`reliability_bins`, :func:`ece`, ``fit_temperature(method="ece")`` and
    :func:`nclab.stats.ece_interval` all bin through it.
    """
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=confidence.device)
    return edges, torch.bucketize(confidence, edges[1:-1])  # edges[i] < conf <= edges[i+1]


def _binned(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int) -> ReliabilityBins:
    edges, index = _confidence_bins(confidence, n_bins)
    count = torch.bincount(index, minlength=n_bins).to(torch.float64)
    conf_sum = torch.zeros(n_bins, dtype=torch.float64, device=confidence.device).index_add_(0, index, confidence)
    hits = torch.zeros(n_bins, dtype=torch.float64, device=confidence.device).index_add_(0, index, correct)
    return ReliabilityBins(  # 0/0 gives NaN for the empty bins
        edges=edges.cpu().numpy(),
        confidence=(conf_sum / count).cpu().numpy(),
        accuracy=(hits / count).cpu().numpy(),
        count=count.cpu().numpy().astype(np.int64),
    )


def _warn_if_probabilities(z: torch.Tensor) -> None:
    """Warn when the "logits" look like probabilities: every row non-negative and summing to 1.

    The softmax of probabilities is far flatter than the probabilities themselves, so their ECE
    would be computed for confidences near 1/K: a different, meaningless number. Logits of a
    network are practically never such rows; it is a warning, not an error, for the rare ones.
    The warning points at the caller of the public function that called this one.
    """
    warn_if_probabilities(z, "logits", stacklevel=4)


def reliability_bins(logits, labels, n_bins: int = 15) -> ReliabilityBins:
    """Equal-width confidence bins of a classifier's predictions (chapter 5).

    Confidence is the top-class softmax probability; a sample is correct when its argmax
    equals its label.

    Parameters
    ----------
    logits : array-like of shape (N, K)
    labels : array-like of shape (N,)
    n_bins : int, default 15
        Number of equal-width bins on [0, 1], at most :data:`nclab._checks.MAX_BINS` (10000).

    Returns
    -------
    ReliabilityBins
        Bin edges, mean confidence, accuracy and sample count per bin.

    Examples
    --------
    >>> bins = reliability_bins([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]], [0, 0, 0], n_bins=2)
    >>> bins.count.tolist(), bins.accuracy.tolist()
    ([0, 3], [nan, 0.6666666666666666])
    """
    z, y = _check_pair(logits, labels)
    n_bins = _check_bins(n_bins)
    _warn_if_probabilities(z)
    return _softmax_bins(z, y, n_bins)


def _softmax_bins(z: torch.Tensor, y: torch.Tensor, n_bins: int) -> ReliabilityBins:
    confidence, predicted = torch.softmax(z, dim=1).max(dim=1)
    return _binned(confidence, (predicted == y).to(torch.float64), n_bins)


def ece(logits, labels, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width bins (chapter 5).

    ECE = Σ_b (n_b/N) abs(acc_b − conf_b), where bin b holds the n_b samples whose top-class
    softmax confidence falls in it, acc_b is their accuracy and conf_b their mean confidence
    (Guo et al. 2017). The paper reports 20 bins; 15 is the common default.

    Parameters
    ----------
    logits : array-like of shape (N, K)
        Logits (or log-probabilities), not probabilities: the softmax is applied here, and
        rows that are non-negative and sum to 1 draw a warning.
    labels : array-like of shape (N,)
    n_bins : int, default 15
        At most 10000.

    Returns
    -------
    float
        ECE in [0, 1].

    Examples
    --------
    >>> round(ece([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]], [0, 0, 0], n_bins=2), 4)
    0.1881
    """
    z, y = _check_pair(logits, labels)
    n_bins = _check_bins(n_bins)
    _warn_if_probabilities(z)
    return _softmax_bins(z, y, n_bins).ece


def nll(logits, labels) -> float:
    """Mean negative log-likelihood (cross-entropy) of the labels, in nats (chapter 5).

    Takes logits (or log-probabilities), as :func:`ece` does, and warns as it does for rows that
    look like probabilities.
    """
    z, y = _check_pair(logits, labels)
    _warn_if_probabilities(z)
    return float(F.cross_entropy(z, y))


def accuracy(logits, labels) -> float:
    """Share of samples whose argmax logit equals the label (chapter 5)."""
    z, y = _check_pair(logits, labels)
    return float((z.argmax(1) == y).to(torch.float64).mean())


def prediction_entropy(logits) -> torch.Tensor:
    """Entropy −Σ_k p_k log p_k of each softmax prediction, in nats, shape (N,) (chapter 5).

    Low entropy means confident predictions; label smoothing keeps it away from 0. Takes logits,
    and warns as :func:`ece` does for rows that look like probabilities.
    """
    z = _check_logits(logits)
    _warn_if_probabilities(z)
    log_p = torch.log_softmax(z, dim=1)
    return -(log_p.exp() * log_p).sum(1)


def _ece_per_temperature(
    z: torch.Tensor, y: torch.Tensor, temperatures: torch.Tensor, n_bins: int
) -> torch.Tensor:
    """ECE of z / T for every T, a block of temperatures at a time.

    Predictions do not depend on T, only the top-class confidence 1 / Σ_j exp((z_j − z_max)/T)
    does. Per bin, n_b abs(acc_b − conf_b) = abs(hits_b − Σ conf), so ECE = Σ_b abs(hits_b − Σ conf) / N.
    """
    n, k = z.shape
    gaps = (z - z.max(1, keepdim=True).values).T.contiguous()  # (K, N): the sum over K is fast
    correct = (z.argmax(1) == y).to(torch.float64)
    temperatures = temperatures.to(z.device, torch.float64)
    block = max(1, 2**22 // (n * k))
    errors = []
    for t in temperatures.split(block):
        # Exponents below −700 add < 1e-300 each; clamping avoids slow subnormal arithmetic.
        scaled = gaps / t[:, None, None]
        confidence = 1.0 / scaled.clamp_(min=-700.0).exp_().sum(1)  # (T, N)
        index = _confidence_bins(confidence, n_bins)[1] + n_bins * torch.arange(len(t), device=z.device)[:, None]
        size = len(t) * n_bins
        conf_sum = torch.bincount(index.flatten(), confidence.flatten(), minlength=size)
        hits = torch.bincount(index.flatten(), correct.expand(len(t), n).flatten(), minlength=size)
        errors.append((hits - conf_sum).view(len(t), n_bins).abs().sum(1) / n)
    return torch.cat(errors)


def fit_temperature(logits, labels, *, method: str = "nll", n_bins: int = 15) -> float:
    """Temperature T that calibrates ``logits / T`` on a held-out split (chapter 5).

    Temperature scaling (Guo et al. 2017) divides all logits by one scalar T > 0: predictions
    are unchanged, only confidence moves (T > 1 softens, T < 1 sharpens). Fit T on data the
    network was not trained on, and evaluate calibration on yet other data.

    Parameters
    ----------
    logits : array-like of shape (N, K)
        Logits of a held-out (validation) split (not probabilities: rows that look like them
        draw a warning, as in :func:`ece`).
    labels : array-like of shape (N,)
    method : {"nll", "ece"}, default "nll"
        ``"nll"`` minimises the mean negative log-likelihood over T in [0.01, 100]. NLL is
        convex in β = 1/T, so its slope in β has one root, which Brent's method
        (``scipy.optimize.brentq``) finds to rounding.
        ``"ece"`` minimises ECE by grid search, as the paper did, over
        :data:`ECE_TEMPERATURE_GRID` (603 temperatures from 0.05 to 20, 1 % apart); ECE is
        piecewise and noisy in T, so the result is coarser than the NLL fit.
    n_bins : int, default 15
        Bins of the ECE for ``method="ece"``.

    Returns
    -------
    float
        The fitted temperature.

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0) is not None
    True
    >>> calibrated = 3 * torch.randn(20000, 5)
    >>> labels = torch.distributions.Categorical(logits=calibrated).sample()
    >>> round(fit_temperature(calibrated / 2.0, labels), 1)
    0.5
    """
    z, y = _check_pair(logits, labels)
    if not isinstance(method, str) or method not in ("nll", "ece"):
        raise ValueError(f"method must be 'nll' or 'ece', got {method!r}")
    if method == "ece":
        n_bins = _check_bins(n_bins)
    _warn_if_probabilities(z)
    if method == "nll":
        return _fit_temperature_nll(z.cpu().numpy(), y.cpu().numpy())
    errors = _ece_per_temperature(z, y, torch.as_tensor(ECE_TEMPERATURE_GRID), n_bins)
    return float(ECE_TEMPERATURE_GRID[int(errors.argmin())])


def _fit_temperature_nll(z: np.ndarray, y: np.ndarray) -> float:
    """argmin over T in [0.01, 100] of NLL(z / T): the root of its slope in β = 1/T (float64).

    f(β) = mean_n [log Σ_j exp(β z_nj) − β z_n,y_n] has f'(β) = mean_n (E_p[z_n] − z_n,y_n) and
    f''(β) = mean_n Var_p[z_n] ≥ 0, with p = softmax(β z_n): f is convex and f' non-decreasing,
    so when f' changes sign on [0.01, 100] its root is the unique minimum. Brent's method
    (``scipy.optimize.brentq``) finds it to a relative tolerance of 4 ε, the finest it accepts:
    the same temperatures, to rounding, as a safeguarded Newton iteration.
    """
    rows = np.arange(len(y))
    target = z[rows, y]

    def slope(beta: float) -> float:
        scaled = beta * z
        p = np.exp(scaled - scaled.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return float(((p * z).sum(1) - target).mean())

    low, high = 1.0 / _NLL_BOUNDS[1], 1.0 / _NLL_BOUNDS[0]
    slope_low, slope_high = slope(low), slope(high)
    if slope_low >= 0.0 and slope_high <= 0.0:
        return 1.0  # NLL does not depend on T (e.g. every row's logits are equal)
    if slope_low >= 0.0:
        return 1.0 / low
    if slope_high <= 0.0:
        return 1.0 / high
    beta = optimize.brentq(slope, low, high, xtol=1e-300, rtol=4 * np.finfo(np.float64).eps, maxiter=500)
    return 1.0 / beta
