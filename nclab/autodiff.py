"""The UFM Hessian by automatic differentiation (chapter 7): the numerical check of :mod:`nclab.hessian`.

Where :func:`nclab.hessian.reduced_spectrum` gets the spectrum at Theorem 1's minimizer from a few
small matrices, the functions here work at any point (W, H, b) and form nothing they do not have to:

* :func:`dense_hessian` builds the full matrix by autograd; usable up to a few thousand
  variables. Variables are flattened as ``[W.ravel(), H.ravel(), b]`` (row-major W of shape
  (K, d), row-major H of shape (d, N) with class-major columns, then b): see :func:`flatten`.
* :func:`hessian_vector_product` multiplies by the Hessian without forming it (double backward).
* :func:`lanczos_extremes` runs Lanczos (scipy's ``eigsh``) on those products: the largest and
  the smallest nonzero eigenvalue, the latter once the zeros of the rotation symmetry are moved
  out of the way.

The rotations W -> W Q, H -> Q^T H (Q orthogonal) leave f unchanged, so the Hessian has one zero
eigenvalue for each dimension of the rotation orbit, :func:`orbit_dimension` = r(r-1)/2 + r(d-r)
for a configuration of rank r (plus one along b -> b + s 1 when lambda_b = 0).

Every name here is also importable from :mod:`nclab.hessian`, as before.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as sla
import torch

from ._checks import ArgumentTypeError, check_fraction, check_positive_int, check_positive_number, check_seed
from .ufm import DTYPE, UFM

__all__ = [
    "flatten",
    "unflatten",
    "dense_hessian",
    "hessian_vector_product",
    "orbit_dimension",
    "lanczos_extremes",
]

# Hessian columns computed per vectorized pass in dense_hessian (bounds its working memory).
_DENSE_CHUNK = 256


# flattening and the dense Hessian ------------------------------------------------------------


def _check_tensors(**tensors: torch.Tensor) -> None:
    """Raise an ArgumentTypeError naming the first argument that is not a floating-point torch tensor."""
    for name, value in tensors.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            what = f"a {value.dtype} tensor" if isinstance(value, torch.Tensor) else type(value).__name__
            raise ArgumentTypeError(f"{name} must be a floating-point torch tensor, got {what}")


def _check_problem(ufm) -> UFM:
    """Raise an ArgumentTypeError unless ``ufm`` is a UFM."""
    if not isinstance(ufm, UFM):
        raise ArgumentTypeError(f"ufm must be an nclab.ufm.UFM, got {type(ufm).__name__}")
    return ufm


def flatten(W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Concatenate ``[W.ravel(), H.ravel(), b]`` (row-major) into one float64 vector."""
    _check_tensors(W=W, H=H, b=b)
    return torch.cat([W.reshape(-1), H.reshape(-1), b.reshape(-1)]).to(DTYPE)


def unflatten(ufm: UFM, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse of :func:`flatten` for the shapes of ``ufm``: (W (K, d), H (d, N), b (K,))."""
    _check_problem(ufm)
    _check_tensors(theta=theta)
    K, d, N = ufm.num_classes, ufm.dim, ufm.num_samples
    if theta.shape != (ufm.num_parameters,):
        raise ValueError(f"theta must have shape ({ufm.num_parameters},), got {tuple(theta.shape)}")
    return theta[: K * d].reshape(K, d), theta[K * d: K * d + d * N].reshape(d, N), theta[K * d + d * N:]


def dense_hessian(ufm: UFM, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The full Hessian of the UFM objective at (W, H, b), by autograd.

    Rows and columns follow :func:`flatten`: W row-major, then H row-major, then b. The matrix
    has (Kd + dN + K)^2 entries, so this is for small problems (``benchmarks/bench_hessian.py``
    measures where it stops being usable); :func:`nclab.hessian.reduced_spectrum` handles large ones.

    Returns
    -------
    torch.Tensor of shape (P, P), float64, P = ``ufm.num_parameters``.

    Example
    -------
    >>> ufm = UFM(3, 2, 3, 1e-2, 1e-2, 1e-2, 0.1)
    >>> sol = ufm.closed_form()
    >>> dense_hessian(ufm, sol.W, sol.H, sol.b).shape
    torch.Size([30, 30])
    """
    theta = flatten(*_check_problem(ufm).check_point(W, H, b)).detach()
    gradient = torch.func.grad(lambda t: ufm.objective(*unflatten(ufm, t)))
    hessian = torch.func.jacrev(gradient, chunk_size=_DENSE_CHUNK)(theta)
    return 0.5 * (hessian + hessian.T)


def orbit_dimension(W: torch.Tensor, H: torch.Tensor, *, rtol: float = 1e-9) -> int:
    """Dimension of the rotation orbit {(W Q, Q^T H) : Q orthogonal} through (W, H).

    With r the rank of [W^T, H] (the span of the classifier rows and the features) in R^d,
    skew matrices acting inside that span give r(r-1)/2 directions, those mixing it with its
    complement give r(d-r); rotations of the complement change nothing. Each direction is a zero
    eigenvalue of the Hessian at a critical point. ``rtol`` in (0, 1): singular values at most
    ``rtol`` times the largest count as zero.
    """
    _check_tensors(W=W, H=H)
    rtol = check_fraction(rtol, "rtol")
    if W.ndim != 2 or H.ndim != 2 or W.shape[1] != H.shape[0]:
        raise ValueError(f"W (K, d) and H (d, N) must be matrices of a common d, got shapes {tuple(W.shape)} "
                         f"and {tuple(H.shape)}")
    stacked = torch.cat([W.T, H], dim=1).to(DTYPE)
    d = stacked.shape[0]
    singular = torch.linalg.svdvals(stacked)
    r = int((singular > rtol * max(float(singular.max()), 1e-300)).sum()) if singular.numel() else 0
    return r * (r - 1) // 2 + r * (d - r)



def _orth(A: torch.Tensor, atol: float = 1e-8) -> torch.Tensor:
    """Orthonormal basis of the column span of A (its nonzero columns have norm of order 1); also
    the basis of every invariant subspace of :mod:`nclab.hessian`."""
    if A.shape[1] == 0:
        return A
    U, S, _ = torch.linalg.svd(A, full_matrices=False)
    return U[:, S > atol]



# Lanczos on Hessian-vector products ----------------------------------------------------------


def _symmetry_projector(ufm: UFM, W: torch.Tensor, H: torch.Tensor, rtol: float = 1e-9):
    """Orthogonal projector onto the directions along which f is flat for symmetry reasons:
    the tangent space {(W Omega, -Omega H, 0) : Omega skew} of the rotation orbit, plus b -> b + s 1 when
    lambda_b = 0. Works on flattened vectors (see :func:`flatten`)."""
    K, N = ufm.num_classes, ufm.num_samples
    W, H = W.detach().to(DTYPE), H.detach().to(DTYPE)
    U, S, _ = torch.linalg.svd(torch.cat([W.T, H], dim=1), full_matrices=False)
    E = U[:, S > rtol * max(float(S.max()), 1e-300)] if S.numel() else U[:, :0]
    r = E.shape[1]
    W_E, H_E = W @ E, E.T @ H
    # rotations mixing span(E) with its complement: per complement direction f, the span of
    # the columns of [W E; H^T E] (times f^T)
    mixing = _orth(torch.cat([W_E, H_E.T], dim=0), atol=rtol)
    # rotations inside span(E): (W_E B, -B H_E) for skew B
    i, j = torch.triu_indices(r, r, offset=1)
    B = torch.zeros(len(i), r, r, dtype=DTYPE)
    B[torch.arange(len(i)), i, j], B[torch.arange(len(i)), j, i] = 1.0, -1.0
    inner = _orth(torch.cat([(W_E @ B).reshape(len(i), -1), (-B @ H_E).reshape(len(i), -1)], dim=1).T, atol=rtol)

    def project(v: torch.Tensor) -> torch.Tensor:
        dW, dH, db = unflatten(ufm, v)
        dW_E, dH_E = dW @ E, E.T @ dH
        coef = inner.T @ torch.cat([dW_E.reshape(-1), dH_E.reshape(-1)])
        rot = inner @ coef
        out_W = rot[: K * r].reshape(K, r) @ E.T
        out_H = E @ rot[K * r:].reshape(r, N)
        Z = torch.cat([dW - dW_E @ E.T, (dH - E @ dH_E).T], dim=0)
        Z = mixing @ (mixing.T @ Z)
        out_b = db.mean() * torch.ones_like(db) if ufm.lambda_b == 0 else torch.zeros_like(db)
        return flatten(out_W + Z[:K], out_H + Z[K:].T, out_b)

    return project


def hessian_vector_product(ufm: UFM, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor):
    """A function v -> (Hessian at (W, H, b)) v on flattened vectors (double backward).

    Costs about two evaluations of the objective per product; the Hessian is never formed.
    Accepts and returns float64 torch vectors of length ``ufm.num_parameters``.
    """
    theta = flatten(*_check_problem(ufm).check_point(W, H, b)).detach().requires_grad_(True)
    grad = torch.autograd.grad(ufm.objective(*unflatten(ufm, theta)), theta, create_graph=True)[0]
    return lambda v: torch.autograd.grad(grad, theta, grad_outputs=v.to(DTYPE), retain_graph=True)[0]


def lanczos_extremes(ufm: UFM, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor, *, tol: float = 1e-10,
                     maxiter: int | None = None, seed: int = 0) -> tuple[float, float]:
    """Largest and smallest nonzero Hessian eigenvalues by Lanczos (ARPACK), from autograd
    Hessian-vector products: an independent check of :func:`nclab.hessian.reduced_spectrum` (chapter 7).

    The smallest eigenvalues of the Hessian at a minimizer are the zeros of the rotation symmetry.
    To reach the smallest nonzero one, Lanczos runs on the Hessian plus lambda_max P, where P projects
    onto the symmetry directions (the tangent space of the rotation orbit through (W, H), and b -> b + s 1
    when lambda_b = 0); this moves exactly those zeros up to lambda_max and leaves the rest of the
    spectrum alone. Convergence to the smallest eigenvalue slows down as the condition number
    grows: meant for problems of moderate size and conditioning.

    Parameters
    ----------
    ufm : the problem
    W, H, b : the point (usually ``ufm.closed_form()``)
    tol : relative accuracy asked of ARPACK, >= 0 (0: machine precision)
    maxiter : ARPACK's limit on restarts, a positive integer (default: its own)
    seed : starting vector, an integer >= 0

    Returns
    -------
    (lambda_max, lambda_min_nonzero)
    """
    tol = check_positive_number(tol, "tol", allow_zero=True)
    maxiter = None if maxiter is None else check_positive_int(maxiter, "maxiter")
    seed = check_seed(seed)
    hvp = hessian_vector_product(ufm, W, H, b)
    project = _symmetry_projector(ufm, W, H)
    P = ufm.num_parameters
    v0 = np.random.default_rng(seed).standard_normal(P)

    def operator(shift: float) -> sla.LinearOperator:
        def matvec(v):
            x = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).reshape(-1))
            out = hvp(x)
            if shift:
                out = out + shift * project(x)
            return out.numpy()

        return sla.LinearOperator((P, P), matvec=matvec, dtype=np.float64)

    lam_max = float(sla.eigsh(operator(0.0), k=1, which="LA", tol=tol, maxiter=maxiter, v0=v0,
                              return_eigenvectors=False)[0])
    lam_min = float(sla.eigsh(operator(lam_max), k=1, which="SA", tol=tol, maxiter=maxiter, v0=v0,
                              return_eigenvectors=False)[0])
    return lam_max, lam_min
