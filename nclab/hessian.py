"""Hessians and condition numbers of the UFM at its minimizer (chapter 7 of the book).

Two ways to get at the Hessian of the UFM objective f(W, H, b) (see :mod:`nclab.ufm`):

* :func:`reduced_spectrum` gives the exact spectrum at Theorem 1's minimizer, with
  multiplicities, for any size (K = 10, d = 512, n = 5000 has 25.6 million variables) from a few
  small matrices. The reduction, derived in chapter 7:

  1. *Within-class modes.* Write h_i = mu_k + xi_i with the deviations xi_i of class k summing
     to zero. At a collapsed point the quadratic form of the Hessian splits: deviations see
     lambda_H I + (1/N) W^T S_k W, S_k = diag(p_k) - p_k p_k^T the softmax Hessian of class k,
     once for each of the n - 1 zero-sum patterns of the class. In span(W) this has K - 1
     eigenvalues, outside span(W) it is lambda_H.
  2. *Class-mean modes.* What is left is the Hessian of the collapsed objective in (W, M, b)
     with M rescaled by sqrt(n) (so that the coordinates stay orthonormal). Split R^d into
     U = span of the ETF (dimension r = K - 1) and its complement. For each unit vector v
     outside U the perturbations (x v^T, v y^T) with x, y in R^K decouple into the same 2K x 2K
     block, repeated d - r times.
  3. *Inside U.* Coordinates in which the ETF is the centred identity turn the rest into a
     problem of size 2K^2 - K whose Hessian commutes with relabelling the classes. By the
     representation theory of the symmetric group it splits into at most four isotypic parts
     (the trivial, standard, [K-2, 2] and [K-2, 1, 1] representations, of dimensions 1, K - 1,
     K(K-3)/2 and (K-1)(K-2)/2). Their eigenvalues come from the Hessian restricted to vectors
     fixed by permutations of all but two classes: a 17 x 17 problem whatever K is.

  At beta >= 1 the minimizer is 0: U is empty, the bias block is the only coupled part.
* Automatic differentiation at any point, in :mod:`nclab.autodiff`:
  :func:`~nclab.autodiff.dense_hessian` builds the full matrix (up to a few thousand variables,
  flattened as :func:`~nclab.autodiff.flatten` says), and :func:`~nclab.autodiff.lanczos_extremes`
  runs Lanczos on Hessian-vector products, an independent check of the largest and smallest
  nonzero eigenvalues. Those functions are importable from here too (``nclab.hessian.dense_hessian``).

The rotations W -> W Q, H -> Q^T H (Q orthogonal) leave f unchanged, so the Hessian has one zero
eigenvalue for each dimension of the rotation orbit, :func:`~nclab.autodiff.orbit_dimension` =
r(r-1)/2 + r(d-r) for a configuration of rank r (plus one along b -> b + s 1 when lambda_b = 0).
:func:`condition_numbers` compares several ways of turning the spectrum into one number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ._checks import check_fraction
# the autograd routes, importable from here as before
from .autodiff import (  # noqa: F401
    _check_problem, _orth, dense_hessian, flatten, hessian_vector_product, lanczos_extremes,
    orbit_dimension, unflatten,
)
from .ufm import DTYPE, UFM, simplex_basis

__all__ = [
    "Spectrum",
    "ConditionNumbers",
    "flatten",
    "unflatten",
    "dense_hessian",
    "hessian_vector_product",
    "orbit_dimension",
    "reduced_spectrum",
    "lanczos_extremes",
    "condition_numbers",
]

_HESSIANS = ("full", "data", "W")


# the symmetry-reduced spectrum --------------------------------------------------------------


@dataclass(frozen=True)
class Spectrum:
    """Eigenvalues with multiplicities, grouped by the mode they belong to.

    Attributes
    ----------
    eigenvalues : (m,) float64 array
    multiplicities : (m,) int array, each >= 1
    modes : m labels: "mean/trivial", "mean/standard", "mean/[K-2,2]", "mean/[K-2,1,1]" (class-mean
        modes inside span(W), by symmetry type), "mean/outside" (class-mean modes along directions
        outside span(W)), "within/span", "within/outside" (within-class deviation modes)
    """

    eigenvalues: np.ndarray
    multiplicities: np.ndarray
    modes: tuple[str, ...]

    @property
    def dim(self) -> int:
        """Sum of multiplicities: the number of variables."""
        return int(self.multiplicities.sum())

    def expand(self) -> np.ndarray:
        """All eigenvalues, repeated by multiplicity and sorted (only for small problems)."""
        return np.sort(np.repeat(self.eigenvalues, self.multiplicities))

    def select(self, prefix: str) -> Spectrum:
        """The part whose mode label starts with ``prefix`` (e.g. "within" or "mean/outside")."""
        keep = np.array([mode.startswith(prefix) for mode in self.modes], dtype=bool)
        return Spectrum(self.eigenvalues[keep], self.multiplicities[keep],
                        tuple(m for m, k in zip(self.modes, keep) if k))

    @property
    def max(self) -> float:
        """Largest eigenvalue."""
        return float(self.eigenvalues.max())

    @property
    def abs_max(self) -> float:
        """Largest abs(eigenvalue)."""
        return float(np.abs(self.eigenvalues).max())

    def num_zero(self, rtol: float = 1e-9) -> int:
        """How many eigenvalues (with multiplicity) satisfy abs(lambda) <= rtol * max abs(lambda)."""
        return int(self.multiplicities[self._is_zero(rtol)].sum())

    def min_nonzero(self, rtol: float = 1e-9) -> float:
        """Smallest abs(eigenvalue) among those that are not zero in the sense of :meth:`num_zero`."""
        return float(np.abs(self.eigenvalues[~self._is_zero(rtol)]).min())

    def num_negative(self, rtol: float = 1e-9) -> int:
        """How many eigenvalues (with multiplicity) are below -rtol * max abs(lambda)."""
        return int(self.multiplicities[(self.eigenvalues < 0) & ~self._is_zero(rtol)].sum())

    def _is_zero(self, rtol: float) -> np.ndarray:
        # rtol <= 0 would count no zero (and divide by it), rtol >= 1 every eigenvalue.
        return np.abs(self.eigenvalues) <= check_fraction(rtol, "rtol") * self.abs_max

    def __repr__(self) -> str:
        lines = [f"Spectrum(dim={self.dim}, {len(self.eigenvalues)} distinct entries)"]
        for value, mult, mode in zip(self.eigenvalues, self.multiplicities, self.modes):
            lines.append(f"  {mode:<16} {value: .10e}  x {mult}")
        return "\n".join(lines)


def _spectrum(parts: list[tuple[np.ndarray, int, str]], rtol: float = 1e-12) -> Spectrum:
    """Assemble (eigenvalues, multiplicity each, mode) parts; merge equal values within a mode."""
    values, mults, modes = [], [], []
    scale = max((float(np.abs(v).max()) for v, m, _ in parts if m > 0 and len(v)), default=1.0)
    for eig, mult, mode in parts:
        if mult <= 0 or len(eig) == 0:
            continue
        eig = np.sort(np.asarray(eig, dtype=np.float64))
        start = 0
        for i in range(1, len(eig) + 1):
            if i == len(eig) or eig[i] - eig[start] > rtol * scale:
                values.append(eig[start:i].mean())
                mults.append(mult * (i - start))
                modes.append(mode)
                start = i
    return Spectrum(np.array(values), np.array(mults, dtype=np.int64), tuple(modes))


class _ClassSpace:
    """The collapsed problem in K-dimensional feature coordinates.

    There the minimizer is W = s M, H_bar = rho M, b = 0 with M = I - 11^T/K, and relabelling the
    classes by a permutation P maps (W, H_bar, b) to (P W P^T, P H_bar P^T, P b). Vectors are
    [W.ravel(), u.ravel(), b] with u = sqrt(n) H_bar, so that the class-mean modes have
    orthonormal coordinates. Feature directions inside 1-perp form span(W); the direction
    v = 1/sqrt(K) stands for any one of the d - r directions outside it.
    """

    def __init__(self, ufm: UFM):
        K = ufm.num_classes
        self.K, self.ufm = K, ufm
        self.collapsed = ufm.beta < 1
        s, rho = ufm.minimizer_scales()
        self.M = torch.eye(K, dtype=DTYPE) - 1.0 / K
        self.W, self.means, self.b = s * self.M, rho * self.M, torch.zeros(K, dtype=DTYPE)
        self.reg = torch.cat([torch.full((K * K,), ufm.lambda_W, dtype=DTYPE),
                              torch.full((K * K,), ufm.lambda_H, dtype=DTYPE),
                              torch.full((K,), ufm.lambda_b, dtype=DTYPE)])
        self.scale = torch.ones(2 * K * K + K, dtype=DTYPE)
        self.scale[K * K: 2 * K * K] = 1.0 / math.sqrt(ufm.per_class)
        theta = torch.cat([self.W.reshape(-1), self.means.reshape(-1), self.b]).requires_grad_(True)
        kufm = ufm.replace(dim=K)
        self._theta = theta
        self._grad = torch.autograd.grad(kufm.collapsed_objective(*self.split(theta)), theta, create_graph=True)[0]

    def hvp(self, V: torch.Tensor, hessian: str) -> torch.Tensor:
        """The Hessian ("full" or "data") in orthonormal mean-mode coordinates times V's columns."""
        scaled = self.scale[:, None] * V
        columns = [torch.autograd.grad(self._grad, self._theta, grad_outputs=scaled[:, j], retain_graph=True)[0]
                   for j in range(V.shape[1])]
        out = self.scale[:, None] * torch.stack(columns, dim=1)
        return out - self.reg[:, None] * V if hessian == "data" else out

    def split(self, V: torch.Tensor):
        K = self.K
        tail = V.shape[1:]
        return (V[: K * K].reshape(K, K, *tail), V[K * K: 2 * K * K].reshape(K, K, *tail),
                V[2 * K * K:])

    def join(self, X, A, c) -> torch.Tensor:
        K = self.K
        return torch.cat([X.reshape(K * K, -1), A.reshape(K * K, -1), c.reshape(K, -1)])

    def orbit_labels(self, fixed: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Indicators (K, m1) of the class orbits and (K, K, m2) of the orbits of class pairs
        under the permutations that keep every class in ``fixed`` in place."""
        K = self.K
        label = torch.full((K,), -1, dtype=torch.long)
        label[list(fixed)] = torch.tensor(fixed, dtype=torch.long)
        same = torch.eye(K, dtype=torch.bool) & (label[:, None] < 0)
        pair_code = ((label[:, None] + 1) * (K + 1) + (label[None, :] + 1)) * 2 + same.long()
        singles = torch.stack([label == c for c in label.unique()], dim=-1).to(DTYPE)
        pairs = torch.stack([pair_code == c for c in pair_code.unique()], dim=-1).to(DTYPE)
        return singles, pairs

    def span_vectors(self, fixed: tuple[int, ...], blocks: str) -> torch.Tensor:
        """Invariant vectors of the class-mean modes inside span(W), in the named blocks."""
        singles, pairs = self.orbit_labels(fixed)
        columns = []
        if self.collapsed and "W" in blocks:  # feature index (columns of W) inside 1-perp
            columns.append(self.block_vectors(W=torch.einsum("ijm,jk->ikm", pairs, self.M)))
        if self.collapsed and "H" in blocks:  # feature index (rows of H_bar) inside 1-perp
            columns.append(self.block_vectors(H=torch.einsum("ij,jkm->ikm", self.M, pairs)))
        if "b" in blocks:
            columns.append(self.block_vectors(b=singles))
        return torch.cat(columns, dim=1) if columns else torch.zeros(self.scale.shape[0], 0, dtype=DTYPE)

    def outside_vectors(self, fixed: tuple[int, ...], blocks: str) -> torch.Tensor:
        """Invariant vectors (x v^T, v y^T) along one feature direction v outside span(W)."""
        singles, _ = self.orbit_labels(fixed)
        v = torch.full((self.K,), 1 / math.sqrt(self.K), dtype=DTYPE)
        columns = [self.block_vectors(W=torch.einsum("im,j->ijm", singles, v))]
        if "H" in blocks:
            columns.append(self.block_vectors(H=torch.einsum("i,jm->ijm", v, singles)))
        return torch.cat(columns, dim=1)

    def block_vectors(self, W=None, H=None, b=None) -> torch.Tensor:
        """Full-length columns from the given blocks (K, K, m) or (K, m); the others are zero."""
        K = self.K
        width = next(t.shape[-1] for t in (W, H, b) if t is not None)
        W = torch.zeros(K, K, width, dtype=DTYPE) if W is None else W
        H = torch.zeros(K, K, width, dtype=DTYPE) if H is None else H
        b = torch.zeros(K, width, dtype=DTYPE) if b is None else b
        return self.join(W, H, b)

    def swap01(self, V: torch.Tensor) -> torch.Tensor:
        """Exchange the labels of classes 0 and 1."""
        perm = torch.arange(self.K)
        perm[[0, 1]] = perm[[1, 0]]
        X, A, c = self.split(V)
        return self.join(X[perm][:, perm], A[perm][:, perm], c[perm])

    def isotypic_spectrum(self, hessian: str, vectors) -> list[tuple[np.ndarray, int, str]]:
        """Eigenvalues of the Hessian on an invariant subspace, by representation of S_K.

        ``vectors(fixed)`` spans the vectors of the subspace fixed by the permutations that keep
        the classes in ``fixed`` in place. The Hessian commutes with relabelling, so on each
        isotypic part it is a small matrix tensored with the identity of the representation;
        that small matrix is the Hessian restricted to: fixed vectors of S_K (trivial), fixed
        vectors of S_(K-1) orthogonal to those (standard), and fixed vectors of S_(K-2) outside
        the span of the previous two kinds, split by the swap of classes 0 and 1 into symmetric
        ([K-2, 2]) and antisymmetric ([K-2, 1, 1]) ones.
        """
        K = self.K
        B2 = _orth(vectors((0, 1)))
        if B2.shape[1] == 0:
            return []
        small = B2.T @ self.hvp(B2, hessian)
        small = 0.5 * (small + small.T)
        # Everything else lies in span(B2); work with coordinates in that basis.
        swap = B2.T @ self.swap01(B2)
        B0, B1 = (_orth(B2.T @ vectors(fixed)) for fixed in ((), (0,)))
        standard = _orth(B1 - B0 @ (B0.T @ B1))
        T = _orth(torch.cat([B1, swap @ B1], dim=1))
        rest = _orth(torch.eye(B2.shape[1], dtype=DTYPE) - T @ T.T)

        def eigs(Y: torch.Tensor) -> np.ndarray:
            return torch.linalg.eigvalsh(Y.T @ small @ Y).numpy()

        return [
            (eigs(B0), 1, "trivial"),
            (eigs(standard), K - 1, "standard"),
            (eigs(_orth(rest + swap @ rest)), K * (K - 3) // 2, "[K-2,2]"),
            (eigs(_orth(rest - swap @ rest)), (K - 1) * (K - 2) // 2, "[K-2,1,1]"),
        ]

    def within_span(self) -> np.ndarray:
        """(1/N) eig(W^T S_0 W) on span(W), S_0 = diag(p) - p p^T for class 0 (every class has
        the same eigenvalues, by the relabelling symmetry)."""
        if not self.collapsed:
            return np.zeros(0)
        p = (self.W @ self.means[:, 0] + self.b).softmax(dim=0)
        S = torch.diag(p) - torch.outer(p, p)
        WQ = self.W @ simplex_basis(self.K)
        return torch.linalg.eigvalsh(WQ.T @ S @ WQ / self.ufm.num_samples).numpy()


def _check_ufm(ufm) -> UFM:
    """A UFM for which Theorem 1 holds (dim >= K - 1)."""
    _check_problem(ufm).require_etf_dim()
    return ufm


def reduced_spectrum(ufm: UFM, hessian: str = "full") -> Spectrum:
    """Exact Hessian spectrum at Theorem 1's minimizer, with multiplicities, at any problem size.

    Uses the decomposition in the module docstring: within-class modes, class-mean modes outside
    span(W) (one 2K x 2K block repeated d - r times) and inside span(W) (four small matrices
    whose eigenvalues carry the dimensions of the symmetric group's representations). The cost
    does not depend on n or d and is a fraction of a second at K = 100.

    Parameters
    ----------
    ufm : the problem; needs dim >= K - 1
    hessian : which Hessian.
        "full": of f in (W, H, b), the one gradient descent sees.
        "data": of the loss term (1/N) sum_i L_delta alone, without the weight-decay terms, still
        at the minimizer of the regularized problem (indefinite: the loss gradient is not zero there).
        "W": of f in W alone with H and b held at the minimizer (a K d x K d matrix).

    Returns
    -------
    :class:`Spectrum` whose multiplicities sum to the number of variables.

    Example
    -------
    >>> spec = reduced_spectrum(UFM(10, 5000, 512, 1e-3, 1e-6, 1e-2, 0.1))
    >>> spec.dim
    25605130
    """
    ufm = _check_ufm(ufm)
    if hessian not in _HESSIANS:
        raise ValueError(f"hessian must be one of {_HESSIANS}, got {hessian!r}")
    space = _ClassSpace(ufm)
    K, n, d = ufm.num_classes, ufm.per_class, ufm.dim
    r = K - 1 if space.collapsed else 0
    blocks = "W" if hessian == "W" else "WHb"
    parts = [(eig, mult, f"mean/{kind}") for eig, mult, kind
             in space.isotypic_spectrum(hessian, lambda fixed: space.span_vectors(fixed, blocks))]
    parts += [(eig, mult * (d - r), "mean/outside") for eig, mult, _
              in space.isotypic_spectrum(hessian, lambda fixed: space.outside_vectors(fixed, blocks))]
    if hessian != "W":
        lam_H = ufm.lambda_H if hessian == "full" else 0.0
        parts.append((lam_H + space.within_span(), K * (n - 1), "within/span"))
        parts.append((np.array([lam_H]), K * (n - 1) * (d - r), "within/outside"))
    spectrum = _spectrum(parts)
    expected = K * d if hessian == "W" else ufm.num_parameters
    if spectrum.dim != expected:
        raise RuntimeError(f"reduced spectrum has {spectrum.dim} eigenvalues, expected {expected}")
    return spectrum


# condition numbers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionNumbers:
    """Condition numbers of the UFM at Theorem 1's minimizer, several definitions side by side.

    Attributes
    ----------
    delta, beta : the problem's smoothing and beta
    full : lambda_max / lambda_min+ of the full Hessian in (W, H, b), after removing the zero
        eigenvalues; their number is ``num_zero`` and equals ``symmetry_zeros``, the dimension
        of the rotation orbit, r(r-1)/2 + r(d-r) with r = K-1 (0 when beta >= 1), plus one
        when lambda_b = 0 (b -> b + s 1). This is the Hessian gradient descent sees.
    full_max, full_min : lambda_max and lambda_min+ of the full Hessian
    weights : of the Hessian in W alone with H and b fixed at the minimizer (a regularized
        logistic regression on collapsed features; its smallest eigenvalue is lambda_W)
    data : of the loss term (1/N) sum_i L alone, without the weight decay, at the same point:
        max abs(lambda) / min abs(lambda) over the eigenvalues that are not zero to rtol (null space
        and symmetry zeros removed). It is indefinite; ``data_negative`` counts its negative
        eigenvalues
    logit : lambda_max / lambda_min of the softmax Hessian diag(p) - p p^T of one sample, on the
        logit directions orthogonal to 1 (numerical); ``logit_analytic`` = K p*, its exact value
    within_span_min, within_span_max : smallest and largest within-class eigenvalue inside
        span(W), lambda_H + (1/N) eig(W^T S_k W): the rates at which within-class variability
        seen by NC1 decays (NC1 only sees span of the class means); nan when beta >= 1
    within_outside : the within-class eigenvalue outside span(W), lambda_H
    nc1 : full_max / within_span_min, the number of gradient-descent steps of size 1/lambda_max
        per e-fold decay of the slowest NC1 mode
    """

    delta: float
    beta: float
    full: float
    full_max: float
    full_min: float
    num_zero: int
    symmetry_zeros: int
    weights: float
    data: float
    data_negative: int
    logit: float
    logit_analytic: float
    within_span_min: float
    within_span_max: float
    within_outside: float
    nc1: float

    def to_dict(self) -> dict[str, float]:
        """The fields by name."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def condition_numbers(ufm: UFM, rtol: float = 1e-9) -> ConditionNumbers:
    """Several condition numbers of the UFM Hessian at Theorem 1's minimizer (chapter 7).

    The paper states that label smoothing lowers the condition number of the Hessian at the
    minimizer; which Hessian and how its zero eigenvalues are treated decides the answer. Each
    definition is documented on :class:`ConditionNumbers`. All come from :func:`reduced_spectrum`,
    so any problem size is fine.

    Parameters
    ----------
    ufm : the problem (dim >= K - 1)
    rtol : eigenvalues with abs(lambda) <= rtol * max abs(lambda) count as zero; in (0, 1)

    Returns
    -------
    :class:`ConditionNumbers`

    Example
    -------
    >>> ufm = UFM(10, 5000, 512, 1e-3, 1e-6, 1e-2, 0.0)
    >>> kappa = condition_numbers(ufm)
    >>> kappa.num_zero == kappa.symmetry_zeros
    True
    """
    ufm = _check_ufm(ufm)
    # rtol <= 0 (or NaN) would count no eigenvalue as zero and divide by a zero; rtol >= 1 all of them.
    rtol = check_fraction(rtol, "rtol")
    K, d = ufm.num_classes, ufm.dim
    full = reduced_spectrum(ufm, "full")
    data = reduced_spectrum(ufm, "data")
    weights = reduced_spectrum(ufm, "W")
    r = K - 1 if ufm.beta < 1 else 0
    space = _ClassSpace(ufm)
    p = (space.W @ space.means[:, 0] + space.b).softmax(dim=0)
    Q = simplex_basis(K)
    logit = torch.linalg.eigvalsh(Q.T @ (torch.diag(p) - torch.outer(p, p)) @ Q)
    within = ufm.lambda_H + space.within_span()
    within_min = float(within.min()) if len(within) else math.nan
    return ConditionNumbers(
        delta=ufm.delta,
        beta=ufm.beta,
        full=full.max / full.min_nonzero(rtol),
        full_max=full.max,
        full_min=full.min_nonzero(rtol),
        num_zero=full.num_zero(rtol),
        symmetry_zeros=r * (r - 1) // 2 + r * (d - r) + (ufm.lambda_b == 0),
        weights=weights.max / weights.min_nonzero(rtol),
        data=data.abs_max / data.min_nonzero(rtol),
        data_negative=data.num_negative(rtol),
        logit=float(logit.max() / logit.min()),
        logit_analytic=K * ufm.theorem1()["confidence"],
        within_span_min=within_min,
        within_span_max=float(within.max()) if len(within) else math.nan,
        within_outside=ufm.lambda_H,
        nc1=full.max / within_min,
    )
