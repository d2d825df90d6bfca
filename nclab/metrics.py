"""Neural collapse, measured: streaming feature statistics and the NC1-NC4 measures (chapter 2).

Measuring collapse takes two steps, kept apart on purpose:

1. :class:`FeatureStats` gathers per-class counts, means and the within-class scatter of the
   penultimate features in one streaming pass (batch by batch, in float64, O(d² + K·d) memory).
2. Each measure is a small function of those statistics and, where it involves the classifier,
   of its weight ``W`` (K×d) and bias ``b``: :func:`nc1`, :func:`nc2_h`, :func:`nc2_w`,
   :func:`nc2_wh`, :func:`nc3`, :func:`equinorm`, :func:`equiangularity`, the norms, and NC4
   (:func:`~nclab.nearest_mean.nc4`, :class:`~nclab.nearest_mean.NC4Accumulator`, in
   :mod:`nclab.nearest_mean`). :func:`collapse_report` computes them all at once.

When the features are in memory anyway, :func:`collapse_report_from_features` computes the same
report in two passes over them (class means, then deviations projected on the K − 1 directions
the means span), without the d×d scatter: several times faster for wide features.

Notation (chapter 2): K classes, features h ∈ R^d, class means μ_k, global mean
μ_G = (1/K) Σ_k μ_k (the mean of the class means), centred means M̃ = [μ_k − μ_G]_k (K×d),
Σ_W = (1/N) Σ_k Σ_i (h_ki − μ_k)(h_ki − μ_k)ᵀ and Σ_B = (1/K) M̃ᵀ M̃. A simplex equiangular
tight frame (ETF) is a set of K equal-norm vectors with Gram matrix ∝ I − 11ᵀ/K; every measure
here is 0 for features collapsed onto such a frame with classifier rows proportional to it.

:class:`FeatureStats` lives in :mod:`nclab.features` (the streaming statistics, one job) and NC4's
nearest-class-mean rule in :mod:`nclab.nearest_mean` (the measure that needs a second pass); both
are imported here, so ``nclab.metrics.FeatureStats`` and ``nclab.metrics.nc4`` keep working.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
from scipy.linalg import helmert

from nclab._checks import as_tensor, check_finite, check_labels
from nclab.features import FeatureStats, _exact_float32_matmul  # noqa: F401 (nclab.metrics.FeatureStats)
from nclab.nearest_mean import NC4Accumulator, _as_matrix, _predicted_classes, nc4, nearest_mean_predictions

__all__ = [
    "FeatureStats", "CollapseReport", "collapse_report", "collapse_report_from_features",
    "nc1", "etf_distance", "nc2_h", "nc2_w", "nc2_wh", "nc3",
    "equinorm", "equiangularity", "mean_w_norm", "mean_h_norm",
    "nearest_mean_predictions", "nc4", "NC4Accumulator",
]

# Float64 elements per block of collapse_report_from_features (512 KiB: freed blocks get reused).
_BLOCK_ELEMENTS = 2**16


def _check_stats(stats) -> FeatureStats:
    if not isinstance(stats, FeatureStats):
        raise ValueError(f"stats must be a FeatureStats, got {type(stats).__name__}")
    return stats


def _classifier(W, stats: FeatureStats) -> torch.Tensor:
    """W as a float64 (K, d) matrix on the statistics' device, checked against ``stats``."""
    shape = (stats.num_classes, stats.dim)
    w = as_tensor(W, "W").detach()
    if tuple(w.shape) != shape:
        raise ValueError(f"W must have shape {shape} (classes × feature dim), got {tuple(w.shape)}")
    return _as_matrix(w, "W", stats.device)


# The measures of K×d and K×K matrices run in NumPy on the CPU: for such small matrices a
# NumPy call costs a fraction of a torch call, and a GPU would only add launches.

def _host(a) -> np.ndarray:
    """A float64 tensor as a NumPy array on the CPU (NumPy arrays pass through)."""
    return a if isinstance(a, np.ndarray) else a.detach().cpu().numpy()


def _distance_to_etf(gram: np.ndarray) -> float:
    """‖G/‖G‖_F − (I − 11ᵀ/K)/√(K−1)‖_F for a K×K matrix G; NaN when G = 0."""
    K = gram.shape[0]
    norm = np.linalg.norm(gram)
    if norm == 0.0:
        return math.nan
    etf = (np.eye(K) - 1.0 / K) / math.sqrt(K - 1)
    return float(np.linalg.norm(gram / norm - etf))


def nc1(stats: FeatureStats) -> float:
    """NC1, within-class variability relative to between-class spread (chapter 2).

    NC1 = (1/K) tr(Σ_W Σ_B†), with † the Moore-Penrose pseudo-inverse (Papyan et al. 2020;
    Zhu et al. 2021). It tends to 0 as features collapse onto their class means. The paper's
    released code omits the factor 1/K, so its NC1 values are K times these.

    Σ_B has rank at most K − 1, so no d×d pseudo-inverse is formed. The rows of M̃ sum to 0,
    so with E an orthonormal K×(K−1) basis of the vectors orthogonal to 1 (a Helmert basis),
    M̃ = E B for the (K−1)×d matrix B = Eᵀ[μ_k]_k, and Σ_B = (1/K) BᵀB. With the thin SVD
    B = U S Vᵀ, Σ_B† = K V S⁻² Vᵀ and therefore

        NC1 = Σ_i v_iᵀ Σ_W v_i / s_i²,

    over the singular values s_i above a relative rank tolerance, max(K, d) · ε₆₄ · ‖[μ_k]‖₂
    (the rounding level of the means). Working with B rather than M̃ removes the direction of
    1 exactly, instead of leaving a rounding-size singular value that a large common offset
    of the features would inflate.

    Parameters
    ----------
    stats : FeatureStats
        Statistics holding samples of every class.

    Returns
    -------
    float
        NC1 (NaN if all class means coincide, to rounding).

    Examples
    --------
    >>> import torch
    >>> stats = FeatureStats(2, 2).update(torch.tensor([[1., 0.], [1., 2.], [-1., 0.], [-1., 2.]]),
    ...                                   torch.tensor([0, 0, 1, 1]))
    >>> round(nc1(stats), 6)  # the spread (along y) is orthogonal to the means' direction (x)
    0.0
    """
    stats = _check_stats(stats)
    return _nc1(stats.means, stats.within_cov)


def _nc1(means: torch.Tensor, within_cov: torch.Tensor) -> float:
    v, s = _between_directions(means)
    if v is None:
        return math.nan
    v = torch.from_numpy(v).to(within_cov.device)
    return float((((v @ within_cov) * v).sum(1).cpu().numpy() / s**2).sum())


def _between_directions(means) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """(V, s): the r ≤ K − 1 right singular vectors (rows of V) and singular values of B = Eᵀ[μ_k]_k
    above the rank tolerance (see :func:`nc1`), as float64 arrays; (None, None) if all class
    means coincide."""
    m = _host(means)
    K, d = m.shape
    _, s, vh = np.linalg.svd(_helmert(K).T @ m, full_matrices=False)
    keep = s > max(K, d) * np.finfo(np.float64).eps * np.linalg.norm(m, ord=2)
    if not keep.any():
        return None, None
    return vh[keep], s[keep]


def _helmert(K: int) -> np.ndarray:
    """Orthonormal K×(K−1) basis of the vectors orthogonal to 1 (Helmert's contrasts).

    ``scipy.linalg.helmert(K).T``: column j (j = 1..K−1) is (1, ..., 1, −j, 0, ..., 0) / √(j (j+1)),
    the same matrix as :func:`nclab.ufm.simplex_basis`.
    """
    return helmert(K).T


def etf_distance(A) -> float:
    """Distance of the rows of A to a simplex ETF (chapter 2).

    ‖ AAᵀ/‖AAᵀ‖_F − (I_K − 11ᵀ/K)/√(K−1) ‖_F: 0 exactly when the K rows have equal norms and
    pairwise cosines −1/(K−1), at any scale and rotation; at most 2.

    Parameters
    ----------
    A : array-like of shape (K, r)
        One row per class (K >= 2).

    Returns
    -------
    float
        The distance (NaN if A = 0).

    Examples
    --------
    >>> import torch
    >>> etf_distance(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    0.0
    """
    a = _host(_as_matrix(A, "A"))
    return _distance_to_etf(a @ a.T)


def nc2_h(stats: FeatureStats) -> float:
    """NC2_H, the ETF distance of the centred class means M̃ (chapter 2)."""
    centred = _host(_check_stats(stats).centred_means)
    return _distance_to_etf(centred @ centred.T)


def nc2_w(W) -> float:
    """NC2_W, the ETF distance of the classifier rows w_k, W of shape (K, d) (chapter 2)."""
    w = _host(_as_matrix(W, "W"))
    return _distance_to_etf(w @ w.T)


def nc2_wh(W, stats: FeatureStats) -> float:
    """NC2 as the paper plots it: the classifier-feature ETF distance (chapter 2).

    ‖ WM̃ᵀ/‖WM̃ᵀ‖_F − (I_K − 11ᵀ/K)/√(K−1) ‖_F, the quantity Zhu et al. (2021) call NC3.
    It is 0 when the means form a simplex ETF and the classifier rows are aligned with them.

    Parameters
    ----------
    W : array-like of shape (K, d)
        Classifier weights.
    stats : FeatureStats
        Statistics holding samples of every class.

    Returns
    -------
    float
    """
    stats = _check_stats(stats)
    w = _host(_classifier(W, stats))
    return _distance_to_etf(w @ _host(stats.centred_means).T)


def nc3(W, stats: FeatureStats) -> float:
    """NC3, self-duality of classifier and class means (chapter 2).

    ‖ W/‖W‖_F − M̃/‖M̃‖_F ‖_F, 0 when the classifier rows are proportional to the centred class
    means. Papyan, Han & Donoho (2020) and the paper's released code report the square of this
    value (a squared Frobenius distance); this is the distance itself.

    Parameters
    ----------
    W : array-like of shape (K, d)
        Classifier weights.
    stats : FeatureStats
        Statistics holding samples of every class.

    Returns
    -------
    float
        NC3 (NaN if W = 0 or all class means coincide).
    """
    stats = _check_stats(stats)
    return _nc3(_host(_classifier(W, stats)), _host(stats.centred_means))


def _nc3(w: np.ndarray, centred: np.ndarray) -> float:
    w_norm, m_norm = np.linalg.norm(w), np.linalg.norm(centred)
    if w_norm == 0.0 or m_norm == 0.0:
        return math.nan
    return float(np.linalg.norm(w / w_norm - centred / m_norm))


def equinorm(vectors) -> float:
    """Papyan's equinorm measure: std/mean of the row norms (chapter 2).

    Pass the centred class means (``stats.centred_means``) or the classifier weights W. The
    standard deviation is the sample one (divisor K − 1), as in Papyan et al.'s code. 0 when
    all rows have the same length.

    Parameters
    ----------
    vectors : array-like of shape (K, r)

    Returns
    -------
    float
        Coefficient of variation of the norms (NaN if all rows are 0).
    """
    return _equinorm(_host(_as_matrix(vectors, "vectors")))


def _equinorm(v: np.ndarray) -> float:
    norms = np.linalg.norm(v, axis=1)
    mean = norms.mean()
    return math.nan if mean == 0.0 else float(norms.std(ddof=1) / mean)


def equiangularity(vectors) -> float:
    """Papyan, Han & Donoho's maximal-angle equiangularity: mean abs(cos(v_i, v_j) + 1/(K−1)) over pairs i < j.

    0 when every pair of rows meets at the simplex angle, cos = −1/(K−1) (chapter 2). The name is
    short for that measure: what Papyan, Han & Donoho (2020) call *equiangularity* is another one,
    the standard deviation of the pairwise cosines, which is 0 whenever all pairs share one angle,
    whatever it is. Pass ``stats.centred_means`` or W.

    Parameters
    ----------
    vectors : array-like of shape (K, r)

    Returns
    -------
    float
        The measure (NaN if a row is 0, where a cosine is undefined).
    """
    return _equiangularity(_host(_as_matrix(vectors, "vectors")))


def _equiangularity(v: np.ndarray) -> float:
    norms = np.linalg.norm(v, axis=1)
    if (norms == 0).any():
        return math.nan
    u = v / norms[:, None]
    K = v.shape[0]
    i, j = np.triu_indices(K, k=1)
    cosines = (u @ u.T)[i, j]
    return float(np.abs(cosines + 1.0 / (K - 1)).mean())


def mean_w_norm(W) -> float:
    """Mean classifier row norm (1/K) Σ_k ‖w_k‖, which Theorem 1 predicts (chapters 2 and 6)."""
    return float(torch.linalg.vector_norm(_as_matrix(W, "W"), dim=1).mean())


def mean_h_norm(stats: FeatureStats) -> float:
    """Mean centred class-mean norm (1/K) Σ_k ‖μ_k − μ_G‖, which Theorem 1 predicts (chapters 2 and 6)."""
    return float(torch.linalg.vector_norm(_check_stats(stats).centred_means, dim=1).mean())



@dataclass
class CollapseReport:
    """Every collapse measure of one model state (chapter 2); see :func:`collapse_report`."""

    nc1: float
    nc2_h: float
    nc2_w: float
    nc2_wh: float
    nc3: float
    nc4: float
    equinorm_h: float
    equinorm_w: float
    equiangularity_h: float
    equiangularity_w: float
    w_norm: float
    h_norm: float
    b_norm: float

    def to_dict(self) -> dict[str, float]:
        """The measures as a dict of plain Python floats (ready for JSON)."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


def collapse_report(stats: FeatureStats, W, *, b=None, nc4: float | None = None) -> CollapseReport:
    """All NC measures from feature statistics and the classifier (chapter 2).

    Parameters
    ----------
    stats : FeatureStats
        Training-set feature statistics, holding samples of every class.
    W : array-like of shape (K, d)
        Classifier weights.
    b : array-like of shape (K,), optional
        Classifier bias; its Euclidean norm is reported (NaN when omitted).
    nc4 : float, optional
        NC4 computed separately (:class:`~nclab.nearest_mean.NC4Accumulator`); NaN when omitted.

    Returns
    -------
    CollapseReport

    Examples
    --------
    >>> import torch
    >>> etf = torch.eye(3, dtype=torch.float64) - 1 / 3
    >>> stats = FeatureStats(3, 3).update(etf.repeat(4, 1), torch.arange(3).repeat(4))
    >>> report = collapse_report(stats, 2 * etf)
    >>> all(abs(v) < 1e-12 for v in (report.nc1, report.nc2_h, report.nc2_wh, report.nc3))
    True
    """
    stats = _check_stats(stats)
    w = _classifier(W, stats)
    means = stats.means
    return _report(means, _nc1(means, stats.within_cov), w, b, nc4)


def _report(means, nc1_value: float, w, b, nc4) -> CollapseReport:
    """The CollapseReport of float64 class means and classifier weights (tensors or arrays),
    given NC1 (and NC4)."""
    K = means.shape[0]
    means, w = _host(means), _host(w)
    centred = means - means.mean(0)
    if b is None:
        b_norm = math.nan
    else:
        bias = as_tensor(b, "b").detach()
        if tuple(bias.shape) != (K,):
            raise ValueError(f"b must have shape ({K},), got {tuple(bias.shape)}")
        bias = bias.to(torch.float64)
        check_finite(bias, "b")
        b_norm = float(torch.linalg.vector_norm(bias))
    if nc4 is None:
        nc4_value = math.nan
    else:
        nc4_value = float(nc4)
        if not 0.0 <= nc4_value <= 1.0:
            raise ValueError(f"nc4 must be a rate in [0, 1], got {nc4!r}")
    return CollapseReport(
        nc1=nc1_value,
        nc2_h=_distance_to_etf(centred @ centred.T),
        nc2_w=_distance_to_etf(w @ w.T),
        nc2_wh=_distance_to_etf(w @ centred.T),
        nc3=_nc3(w, centred),
        nc4=nc4_value,
        equinorm_h=_equinorm(centred),
        equinorm_w=_equinorm(w),
        equiangularity_h=_equiangularity(centred),
        equiangularity_w=_equiangularity(w),
        w_norm=float(np.linalg.norm(w, axis=1).mean()),
        h_norm=float(np.linalg.norm(centred, axis=1).mean()),
        b_norm=b_norm,
    )


def _numpy_passes(x: torch.Tensor) -> bool:
    """Whether collapse_report_from_features runs its passes in NumPy (CPU) or in torch."""
    return x.device.type == "cpu"


def collapse_report_from_features(features, labels, W, b=None, logits=None) -> CollapseReport:
    """All NC measures of a feature matrix held in memory, in two passes over it (chapter 2).

    The same measures as :func:`collapse_report`, computed from the stored features instead of
    streamed statistics, and without any d×d matrix:

    1. class means μ_k, summed in float64;
    2. NC1 from the within-class deviations projected on the r ≤ K − 1 directions the class
       means span. With v_i, s_i the right singular vectors and values of :func:`nc1`,

           NC1 = Σ_i v_iᵀ Σ_W v_i / s_i² = Σ_i (1/N) Σ_n ((h_n − μ_{y_n}) · v_i)² / s_i²,

       so the pass costs O(N·d·K) instead of the O(N·d²) of Σ_W. In the same pass, with
       ``logits``, NC4 compares the network's argmax with the nearest class mean.

    Use it when the features fit in memory (a measurement pass that keeps them anyway, as
    :func:`nclab.evaluate.measure` does); :class:`FeatureStats` streams data of any size.

    Parameters
    ----------
    features : array-like of shape (N, d)
    labels : array-like of shape (N,)
        Integer classes in [0, K), every class present.
    W : array-like of shape (K, d)
        Classifier weights.
    b : array-like of shape (K,), optional
        Classifier bias; its Euclidean norm is reported (NaN when omitted).
    logits : array-like of shape (N, K), optional
        The network's outputs on the same samples, for NC4 (NaN when omitted).

    Returns
    -------
    CollapseReport

    Examples
    --------
    >>> import torch
    >>> etf = torch.eye(3, dtype=torch.float64) - 1 / 3
    >>> features, labels = etf.repeat(4, 1), torch.arange(3).repeat(4)
    >>> report = collapse_report_from_features(features, labels, 2 * etf, logits=features @ etf.T)
    >>> all(abs(v) < 1e-12 for v in (report.nc1, report.nc2_h, report.nc3, report.nc4))
    True
    """
    x, y, w, counts, predicted = _checked_inputs(features, labels, W, logits)
    N, d = x.shape
    K = w.shape[0]

    # The passes run in NumPy on the CPU (there its BLAS multiplies these float64 matrices two
    # to three times faster than torch) and in torch on other devices; the code is the same.
    if _numpy_passes(x):
        x = (x if x.dtype in (torch.float32, torch.float64) else x.float()).numpy()
        y, counts = y.numpy(), counts.numpy()
        predicted = None if predicted is None else predicted.numpy()

        def to64(a):
            return a.astype(np.float64)

        def local(a):
            return a
    else:
        def to64(a):
            return a.to(torch.float64)

        def local(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(x.device)

    block = max(1, _BLOCK_ELEMENTS // d)
    one_hot = local(np.eye(K))
    sums = local(np.zeros((K, d)))
    for start in range(0, N, block):
        sums += one_hot[y[start:start + block]].T @ to64(x[start:start + block])
    means = _host(sums) / _host(counts)[:, None]

    # One product per block gives both the projections on the v_i and the nearest-mean scores:
    # (h − μ_y)·v_i = h·v_i − μ_y·v_i, and the scores of nearest_mean_predictions.
    v, s = _between_directions(means)
    r = 0 if v is None else len(s)
    centre = means.mean(0)
    centred = means - centre
    directions = centred if v is None else np.concatenate([v, centred])
    means_along_v = local(means @ directions[:r].T)  # (K, r)
    score_offsets = local(centre @ centred.T + 0.5 * (centred * centred).sum(1))  # (K,)
    directions = local(directions.T)
    projected, mismatches = local(np.zeros(r)), 0
    for start in range(0, N, block):
        yb = y[start:start + block]
        products = to64(x[start:start + block]) @ directions
        if r:
            projected += ((products[:, :r] - means_along_v[yb]) ** 2).sum(0)
        if predicted is not None:
            nearest = (products[:, r:] - score_offsets).argmax(1)
            mismatches = mismatches + (nearest != predicted[start:start + block]).sum()
    nc1_value = math.nan if v is None else float((_host(projected) / N / s**2).sum())
    nc4_value = None if predicted is None else int(mismatches) / N
    return _report(means, nc1_value, w, b, nc4_value)


def _checked_inputs(features, labels, W, logits):
    """Check the arguments of :func:`collapse_report_from_features` against each other.

    Returns (x, y, w, counts, predicted): the features (N, d), the labels (N,), W as a float64
    (K, d) matrix and the samples per class (K,), all on the features' device, and the classes
    predicted by ``logits`` (N,), or None without logits.
    """
    x = as_tensor(features, "features").detach()
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (N, d) matrix, got shape {tuple(x.shape)}")
    N, d = x.shape
    w = as_tensor(W, "W").detach()
    if w.ndim != 2 or w.shape[1] != d:
        raise ValueError(f"W must have shape (K, {d}) (classes × feature dim), got {tuple(w.shape)}")
    w = _as_matrix(w, "W", x.device)
    K = w.shape[0]
    y = check_labels(as_tensor(labels, "labels"), K).to(x.device)
    if y.shape[0] != N:
        raise ValueError(f"labels must have one entry per row of features: got {y.shape[0]} labels "
                         f"for {N} feature rows")
    predicted = None
    if logits is not None:
        z = as_tensor(logits, "logits").detach()
        if tuple(z.shape) != (N, K):
            raise ValueError(f"logits must have shape ({N}, {K}) (samples × classes), got {tuple(z.shape)}")
        predicted = _predicted_classes(z, N, K).to(x.device)
    check_finite(x, "features")
    counts = torch.bincount(y, minlength=K)
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        raise ValueError(f"labels have no samples of class(es) {empty}; class means and NC1 need "
                         "samples of every class")
    return x, y, w, counts, predicted
