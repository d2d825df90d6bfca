"""The unconstrained feature model (UFM) and its closed-form minimizer (chapter 6 of the book).

The UFM treats the penultimate-layer features as free variables. With K classes, n samples per
class (N = nK), classifier W (K x d), features H (d x N) and bias b (K), it minimizes

    f(W, H, b) = (1/N) sum_i L_delta(W h_i + b, y_i)
                 + (lambda_W/2) ||W||_F^2 + (lambda_H/2) ||H||_F^2 + (lambda_b/2) ||b||^2,

where L_delta is the label-smoothing loss (``torch.nn.functional.cross_entropy`` with
``label_smoothing=delta``; delta = 0 is plain cross-entropy). The loss is averaged over the
samples, the feature penalty is summed over all N columns.

Column ordering of H is class-major: columns ``k*n, ..., (k+1)*n - 1`` belong to class k, so
``UFM.labels()`` is ``[0]*n + [1]*n + ... + [K-1]*n``.

Theorem 1 (the global minimizer). Let beta = delta + K sqrt(n lambda_W lambda_H). If d >= K-1 and
beta < 1, every minimizer has collapsed features (h_i equals its class mean mu_k), class means
forming a simplex equiangular tight frame centred at 0, W = sqrt(n lambda_H / lambda_W) M with M
the K x d matrix of class means, rows mu_k^T (``class_means`` holds M^T, d x K), and

    ||w_k||^2     = ((K-1)/K) sqrt(n lambda_H / lambda_W) log(K/beta - K + 1),
    ||mu_k||^2 = ((K-1)/K) sqrt(lambda_W / (n lambda_H)) log(K/beta - K + 1).

The logit margin z_y - z_j is log(K/beta - K + 1) and the softmax confidence on the true class is
p*(beta) = 1 - (K-1) beta / K. If beta >= 1 the minimizer is W = 0, H = 0. The bias is b = 0 when
lambda_b > 0; when lambda_b = 0 the objective does not change along b -> b + s 1 (softmax is
shift invariant), so every b = s 1 is a minimizer too and :meth:`UFM.closed_form` returns b = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg import helmert

from . import metrics
from ._checks import (ArgumentTypeError, _shown, check_delta, check_num_classes, check_positive_int,
                      check_positive_number, check_seed)

__all__ = [
    "UFM",
    "UFMSolution",
    "Trajectory",
    "theorem1_curves",
    "simplex_basis",
]

DTYPE = torch.float64
# L-BFGS stops when the objective has not decreased (beyond float64 rounding) for this many
# iterations: its line search compares objective values, which stop changing once the gradient
# norm is near 1e-9.
_LBFGS_PATIENCE = 10
# torch's L-BFGS drops curvature pairs with y^T s <= 1e-10, an absolute threshold that the small
# final steps fall below; it minimizes this multiple of f instead (same minimizer, same steps).
_LBFGS_OBJECTIVE_SCALE = 1e6


def _beta(num_classes: int, per_class: int, lambda_W, lambda_H, delta):
    return delta + num_classes * np.sqrt(per_class * np.asarray(lambda_W) * np.asarray(lambda_H))


def theorem1_curves(num_classes: int, per_class: int, lambda_W: float, lambda_H: float,
                    deltas) -> dict[str, np.ndarray]:
    """Theorem 1's predictions as arrays over many smoothing values, for plotting against delta.

    For each delta: beta = delta + K sqrt(n lambda_W lambda_H), the per-class norms ||w_k|| and
    ||mu_k||, the logit margin log(K/beta - K + 1) and the confidence p*(beta) = 1 - (K-1) beta / K.
    Where beta >= 1 the minimizer is W = H = 0: norms and margin 0, confidence 1/K.
    See chapter 6 of the book.

    Parameters
    ----------
    num_classes : K >= 2
    per_class : n >= 1, samples per class
    lambda_W, lambda_H : weight-decay strengths, > 0
    deltas : float or array of smoothing values in [0, 1)

    Returns
    -------
    dict with float64 arrays of the shape of ``deltas``: "delta", "beta", "w_norm", "h_norm",
    "margin", "confidence".

    Example
    -------
    >>> c = theorem1_curves(10, 5000, 1e-3, 1e-6, [0.0, 0.1])
    >>> np.round(c["w_norm"], 4)
    array([3.4987, 2.9371])
    """
    num_classes = check_num_classes(num_classes)
    per_class = check_positive_int(per_class, "per_class")
    lambda_W = check_positive_number(lambda_W, "lambda_W", allow_zero=False)
    lambda_H = check_positive_number(lambda_H, "lambda_H", allow_zero=False)
    delta = np.asarray(deltas.detach().cpu() if isinstance(deltas, torch.Tensor) else deltas)
    if delta.dtype.kind not in "iuf":
        raise ArgumentTypeError(f"deltas must be a number or an array of numbers, got {type(deltas).__name__} "
                                f"of dtype {delta.dtype}")
    delta = delta.astype(np.float64)
    for value in delta.ravel():
        check_delta(value, "deltas")
    K, n = num_classes, per_class
    beta = _beta(K, n, lambda_W, lambda_H, delta)
    collapsed = beta < 1
    margin = np.where(collapsed, np.log(np.where(collapsed, K / beta - K + 1, 1.0)), 0.0)
    ratio = math.sqrt(n * lambda_H / lambda_W)
    return {
        "delta": delta,
        "beta": beta,
        "w_norm": np.sqrt((K - 1) / K * ratio * margin),
        "h_norm": np.sqrt((K - 1) / K / ratio * margin),
        "margin": margin,
        "confidence": np.where(collapsed, 1 - (K - 1) * beta / K, 1 / K),
    }


def simplex_basis(num_classes: int) -> torch.Tensor:
    """An orthonormal basis of the vectors of R^K whose entries sum to zero (Helmert's basis).

    Column j (j = 1..K-1) is (1, ..., 1, -j, 0, ..., 0) / sqrt(j (j + 1)) with j leading ones.
    With Q this K x (K-1) matrix, Q Q^T = I - 11^T/K, so the columns of Q^T (points in R^(K-1))
    form a simplex ETF. Used to embed Theorem 1's minimizer in R^d. It is the transpose of
    ``scipy.linalg.helmert(K)`` (Helmert's matrix without its first row), same signs and order.

    Returns
    -------
    torch.Tensor of shape (K, K-1), float64, with orthonormal columns.
    """
    K = check_num_classes(num_classes)
    return torch.from_numpy(np.ascontiguousarray(helmert(K).T, dtype=np.float64))


@dataclass(frozen=True)
class UFMSolution:
    """A point (W, H, b) of the UFM with the summary numbers Theorem 1 speaks about.

    Attributes
    ----------
    W : (K, d) float64 classifier
    H : (d, N) float64 features, class-major columns
    b : (K,) float64 bias
    w_norm : mean over classes of ||w_k||
    h_norm : mean over classes of ||mu_k - mu_G||, the norms of the centred class means of H (as in
        :class:`Trajectory` and :class:`nclab.metrics.CollapseReport`). At Theorem 1's minimizer the
        class means form a simplex ETF, whose global mean mu_G is 0, so it is also the mean ||mu_k||
        of the theorem (:func:`theorem1_curves`' "h_norm")
    margin : mean over samples of z_y - max_{j != y} z_j, with z = W h + b
    confidence : mean over samples of the softmax probability of the true class
    objective : the UFM objective at (W, H, b)
    """

    W: torch.Tensor
    H: torch.Tensor
    b: torch.Tensor
    w_norm: float
    h_norm: float
    margin: float
    confidence: float
    objective: float

    @property
    def class_means(self) -> torch.Tensor:
        """(d, K) matrix of class means of H."""
        K = self.W.shape[0]
        return self.H.reshape(self.H.shape[0], K, -1).mean(dim=2)


@dataclass(frozen=True)
class Trajectory:
    """What a solver recorded every ``log_every`` steps (arrays of equal length).

    Attributes
    ----------
    step : iteration number (0 is the starting point)
    objective : UFM objective
    grad_norm : Euclidean norm of the full gradient in (W, H, b)
    nc1 : within-class variability, tr(Sigma_W Sigma_B^+)/K (:func:`nclab.metrics.nc1`)
    nc2_wh : the classifier-feature ETF distance plotted in the paper (:func:`nclab.metrics.nc2_wh`)
    nc3 : self-duality distance (:func:`nclab.metrics.nc3`)
    w_norm : mean ‖w_k‖ (:func:`nclab.metrics.mean_w_norm`)
    h_norm : mean ||mu_k - mu_G|| (:func:`nclab.metrics.mean_h_norm`)
    """

    step: np.ndarray
    objective: np.ndarray
    grad_norm: np.ndarray
    nc1: np.ndarray
    nc2_wh: np.ndarray
    nc3: np.ndarray
    w_norm: np.ndarray
    h_norm: np.ndarray

    def __len__(self) -> int:
        return len(self.step)

    def to_dict(self) -> dict[str, np.ndarray]:
        """The recorded series by name."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class UFM:
    """The unconstrained feature model with label smoothing (chapter 6 of the book).

    Parameters
    ----------
    num_classes : K >= 2
    per_class : n >= 1, samples per class (N = nK)
    dim : d >= 1, feature dimension; Theorem 1 needs d >= K - 1
    lambda_W, lambda_H : weight decay on W and on H, > 0
    lambda_b : weight decay on the bias, >= 0
    delta : label smoothing in [0, 1); 0 is cross-entropy

    Example
    -------
    >>> ufm = UFM(num_classes=10, per_class=5000, dim=512, lambda_W=1e-3, lambda_H=1e-6,
    ...           lambda_b=1e-2, delta=0.1)
    >>> round(ufm.beta, 4)
    0.1224
    """

    num_classes: int
    per_class: int
    dim: int
    lambda_W: float
    lambda_H: float
    lambda_b: float = 0.0
    delta: float = 0.0

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "num_classes", check_num_classes(self.num_classes))
        set_(self, "per_class", check_positive_int(self.per_class, "per_class"))
        set_(self, "dim", check_positive_int(self.dim, "dim"))
        set_(self, "lambda_W", check_positive_number(self.lambda_W, "lambda_W", allow_zero=False))
        set_(self, "lambda_H", check_positive_number(self.lambda_H, "lambda_H", allow_zero=False))
        set_(self, "lambda_b", check_positive_number(self.lambda_b, "lambda_b", allow_zero=True))
        set_(self, "delta", check_delta(self.delta))

    @property
    def num_samples(self) -> int:
        """N = n K."""
        return self.num_classes * self.per_class

    @property
    def beta(self) -> float:
        """beta = delta + K sqrt(n lambda_W lambda_H); the features collapse to an ETF iff beta < 1."""
        return float(_beta(self.num_classes, self.per_class, self.lambda_W, self.lambda_H, self.delta))

    @property
    def num_parameters(self) -> int:
        """Kd + dN + K, the number of scalar variables."""
        K, d = self.num_classes, self.dim
        return K * d + d * self.num_samples + K

    def labels(self) -> torch.Tensor:
        """Class-major labels: column i of H belongs to class ``i // n``."""
        return torch.arange(self.num_classes).repeat_interleave(self.per_class)

    def expand_means(self, class_means: torch.Tensor) -> torch.Tensor:
        """The (d, N) feature matrix whose every column equals its class mean (class-major)."""
        return class_means.repeat_interleave(self.per_class, dim=1)

    def replace(self, **changes) -> UFM:
        """A copy with some parameters changed, e.g. ``ufm.replace(delta=0.1)``."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return UFM(**values)

    # objective and gradient ------------------------------------------------------------------

    def check_point(self, W, H, b, *, num_columns: int | None = None,
                    H_name: str = "H") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Check that (W, H, b) is a point of this problem: floating-point tensors of the right shapes.

        Parameters
        ----------
        W, H, b : the classifier (K, d), the features (d, ``num_columns``) and the bias (K,)
        num_columns : columns of H; default N = nK (``class_means`` have K)
        H_name : the name of H in the error message

        Returns
        -------
        (W, H, b), unchanged.

        Raises
        ------
        ValueError naming the first argument that is not a floating-point tensor of its shape.

        Example
        -------
        >>> ufm = UFM(3, 2, 4, 1e-2, 1e-2)
        >>> W, H, b = ufm.check_point(torch.zeros(3, 4), torch.zeros(4, 5), torch.zeros(3))
        Traceback (most recent call last):
        ...
        ValueError: H must have shape (4, 6), got (4, 5)
        """
        K, d = self.num_classes, self.dim
        num_columns = self.num_samples if num_columns is None else num_columns
        shapes = {"W": (K, d), H_name: (d, num_columns), "b": (K,)}
        tensors = {}
        for name, value in zip(shapes, (W, H, b)):
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                what = f"a {value.dtype} tensor" if isinstance(value, torch.Tensor) else type(value).__name__
                raise ArgumentTypeError(f"{name} must be a floating-point torch tensor, got {what}")
            if tuple(value.shape) != shapes[name]:
                raise ValueError(f"{name} must have shape {shapes[name]}, got {tuple(value.shape)}")
            tensors[name] = value
        return tensors["W"], tensors[H_name], tensors["b"]

    def objective(self, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The UFM objective f(W, H, b) (differentiable; a 0-dim tensor).

        Parameters
        ----------
        W : (K, d) tensor; H : (d, N) tensor, class-major columns; b : (K,) tensor

        Returns
        -------
        torch.Tensor, a scalar of the dtype of the inputs.
        """
        return self._objective(*self.check_point(W, H, b), self.labels())

    def _objective(self, W, H, b, labels) -> torch.Tensor:
        loss = F.cross_entropy((W @ H).T + b, labels, label_smoothing=self.delta)
        return loss + 0.5 * (self.lambda_W * W.square().sum() + self.lambda_H * H.square().sum()
                             + self.lambda_b * b.square().sum())

    def collapsed_objective(self, W: torch.Tensor, class_means: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """f(W, H, b) at a collapsed point, every h_i equal to its class mean, from the K means alone.

        Equals ``objective(W, expand_means(class_means), b)`` at O(Kd) instead of O(Nd) cost:
        (1/K) sum_k L_delta(W mu_k + b, k) + (lambda_W/2)||W||^2 + (n lambda_H/2)||M||^2
        + (lambda_b/2)||b||^2. The Hessian of the class-mean modes is built from it.
        """
        W, class_means, b = self.check_point(W, class_means, b, num_columns=self.num_classes, H_name="class_means")
        logits = (W @ class_means).T + b
        loss = F.cross_entropy(logits, torch.arange(self.num_classes), label_smoothing=self.delta)
        return loss + 0.5 * (self.lambda_W * W.square().sum()
                             + self.per_class * self.lambda_H * class_means.square().sum()
                             + self.lambda_b * b.square().sum())

    def gradient(self, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The gradient (dW, dH, db) of :meth:`objective` by autograd."""
        params = [t.detach().clone().requires_grad_(True) for t in (W, H, b)]
        return torch.autograd.grad(self.objective(*params), params)

    def summarize(self, W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> UFMSolution:
        """Measure norms, margin, confidence and objective of a point (see :class:`UFMSolution`)."""
        W, H, b = (t.detach().to(DTYPE) for t in self.check_point(W, H, b))
        labels = self.labels()
        logits = (W @ H).T + b
        true = logits.gather(1, labels[:, None])[:, 0]
        others = logits.scatter(1, labels[:, None], -math.inf).amax(dim=1)
        means = H.reshape(self.dim, self.num_classes, self.per_class).mean(dim=2)
        centred = means - means.mean(dim=1, keepdim=True)
        return UFMSolution(
            W=W, H=H, b=b,
            w_norm=float(W.norm(dim=1).mean()),
            h_norm=float(centred.norm(dim=0).mean()),
            margin=float((true - others).mean()),
            confidence=float(logits.softmax(dim=1).gather(1, labels[:, None]).mean()),
            objective=float(self.objective(W, H, b)),
        )

    # Theorem 1 -----------------------------------------------------------------------------------

    def require_etf_dim(self) -> None:
        """Raise a ValueError unless dim >= K - 1, the premise of Theorem 1 (a simplex ETF of K
        vectors needs K - 1 dimensions); everything computed at the minimizer needs it."""
        if self.dim < self.num_classes - 1:
            raise ValueError(
                f"dim must be >= num_classes - 1 = {self.num_classes - 1} for Theorem 1 "
                f"(a simplex ETF of K vectors needs K - 1 dimensions), got dim={self.dim}"
            )

    def theorem1(self) -> dict[str, float]:
        """Theorem 1's scalars for this problem: beta, w_norm, h_norm, margin, confidence.

        Raises
        ------
        ValueError if dim < K - 1: the theorem's premise fails, and its numbers would describe a
        minimizer that does not exist in so few dimensions.
        """
        self.require_etf_dim()
        curves = theorem1_curves(self.num_classes, self.per_class, self.lambda_W, self.lambda_H, self.delta)
        return {name: float(value) for name, value in curves.items() if name != "delta"}

    def minimizer_scales(self) -> tuple[float, float]:
        """(s, rho) with W = s J^T and M = rho J^T at the minimizer, J^T J = I - 11^T/K.

        s = ||w_k|| sqrt(K/(K-1)) and rho = ||mu_k|| sqrt(K/(K-1)); both 0 when beta >= 1.
        ValueError if dim < K - 1 (see :meth:`theorem1`).
        """
        K = self.num_classes
        t = self.theorem1()
        return t["w_norm"] * math.sqrt(K / (K - 1)), t["h_norm"] * math.sqrt(K / (K - 1))

    def closed_form(self) -> UFMSolution:
        """The explicit global minimizer of Theorem 1, embedded in R^d (float64).

        Class means mu_k = rho J e_k with J = [Q^T; 0] (d x K), Q from :func:`simplex_basis`,
        so the ETF lies in the first K-1 feature coordinates; W = sqrt(n lambda_H/lambda_W) M, M the
        K x d matrix with rows mu_k^T;
        b = 0 (see the module docstring for lambda_b = 0); every h_i equals its class mean. When
        beta >= 1, W = H = 0 (margin 0, confidence 1/K). The scalar fields hold Theorem 1's exact
        values. H has N = nK columns: at K=10, n=5000, d=512 it takes 205 MB; use
        :meth:`theorem1` or :func:`theorem1_curves` when only the numbers are needed.

        Raises
        ------
        ValueError if dim < K - 1.
        """
        self.require_etf_dim()
        K, d = self.num_classes, self.dim
        t = self.theorem1()
        s, rho = self.minimizer_scales()
        J = torch.zeros(d, K, dtype=DTYPE)
        J[: K - 1] = simplex_basis(K).T
        W, means, b = s * J.T, rho * J, torch.zeros(K, dtype=DTYPE)
        return UFMSolution(
            W=W, H=self.expand_means(means), b=b,
            w_norm=t["w_norm"], h_norm=t["h_norm"], margin=t["margin"], confidence=t["confidence"],
            objective=float(self.collapsed_objective(W, means, b)),
        )

    # numerical solvers -------------------------------------------------------------------------

    def initial_point(self, seed: int = 0, scale: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A random start: W, H and b with independent N(0, scale^2) entries (float64, seeded).

        ``seed`` is an integer in [0, 2**64 - 1] and ``scale`` a number > 0.
        """
        scale = check_positive_number(scale, "scale", allow_zero=False)
        generator = torch.Generator().manual_seed(check_seed(seed))
        K, d, N = self.num_classes, self.dim, self.num_samples
        return tuple(scale * torch.randn(shape, generator=generator, dtype=DTYPE) for shape in ((K, d), (d, N), (K,)))

    def solve(self, method: str = "lbfgs", *, steps: int = 1000, lr: float | None = None, seed: int = 0,
              init=None, log_every: int = 1, tol: float = 1e-10,
              init_scale: float = 0.1) -> tuple[UFMSolution, Trajectory]:
        """Minimize the UFM objective numerically in float64 (chapters 6 and 7).

        Parameters
        ----------
        method : "gd" (plain gradient descent, fixed step) or "lbfgs" (``torch.optim.LBFGS`` with
            a strong-Wolfe line search and a memory of 50; one step is one L-BFGS iteration).
            L-BFGS runs in the rescaled variables (sqrt(lambda_W) W, sqrt(lambda_H) H,
            sqrt(lambda_b) b), which makes every weight-decay term (1/2)||.||^2; the trajectory
            is reported in (W, H, b)
        steps : maximum number of iterations, >= 1
        lr : step size; required for "gd" (:func:`nclab.descent.default_lr` gives 1 / lambda_max
            at the minimizer), default 1 for "lbfgs"
        seed, init_scale : the random start when ``init`` is None or "random" (:meth:`initial_point`)
        init : None, "random", or a tuple (W, H, b) to start from (copied)
        log_every : record the trajectory every this many iterations (and at the last one)
        tol : stop once the gradient norm is at most ``tol``. L-BFGS also stops when the objective
            has not decreased for 10 iterations: its line search works with objective values,
            whose float64 rounding (about 1e-16 relative) limits the gradient norm it can reach

        Returns
        -------
        (UFMSolution, Trajectory): the final point with its summary numbers, and the recorded
        objective, gradient norm, NC1, NC2 (classifier-feature form), NC3 and mean norms.

        Raises
        ------
        ValueError if the objective becomes non-finite or grows 1000-fold (the step is too large).

        Example
        -------
        >>> ufm = UFM(4, 5, 6, 5e-3, 5e-3, 5e-3, delta=0.1)
        >>> sol, traj = ufm.solve("lbfgs", steps=500)
        >>> abs(sol.w_norm - ufm.closed_form().w_norm) < 1e-6
        True
        """
        if not isinstance(method, str) or method not in ("gd", "lbfgs"):
            raise ValueError(f"method must be 'gd' or 'lbfgs', got {method!r}")
        # With no step, the random start would come back as "the solution".
        steps = check_positive_int(steps, "steps")
        seed = check_seed(seed)
        log_every = check_positive_int(log_every, "log_every")
        tol = check_positive_number(tol, "tol", allow_zero=True)
        if lr is None and method == "gd":
            raise ValueError("method 'gd' needs a step size lr; nclab.descent.default_lr(ufm) gives "
                             "1 / lambda_max of the Hessian at the minimizer")
        if lr is None:
            lr = 1.0
        lr = check_positive_number(lr, "lr", allow_zero=False)
        if init is None or (isinstance(init, str) and init == "random"):
            start = self.initial_point(seed, init_scale)
        elif isinstance(init, (tuple, list)) and len(init) == 3:
            start = self.check_point(*init)
        elif isinstance(init, (str, tuple, list)):
            raise ValueError(f"init must be None, 'random' or a tuple (W, H, b), got {_shown(init)}")
        else:
            raise ArgumentTypeError(f"init must be None, 'random' or a tuple (W, H, b), got {type(init).__name__}")
        labels = self.labels()
        recorder = _Recorder(self)
        # L-BFGS works in the variables sqrt(lambda) * (W, H, b), where the weight decay is
        # (1/2)||.||^2 for every block: a diagonal preconditioner for unequal lambda_W, lambda_H.
        # Without weight decay on b, b is scaled like W (both multiply into the logits).
        scales = [1.0, 1.0, 1.0]
        if method == "lbfgs":
            scales = [math.sqrt(self.lambda_W), math.sqrt(self.lambda_H),
                      math.sqrt(self.lambda_b if self.lambda_b > 0 else self.lambda_W)]
        variables = [(t.detach().to(DTYPE) * c).requires_grad_(True) for t, c in zip(start, scales)]

        def point():
            return [v / c for v, c in zip(variables, scales)]

        optimizer = None
        if method == "lbfgs":
            optimizer = torch.optim.LBFGS(variables, lr=lr, max_iter=1, max_eval=25, history_size=50,
                                          tolerance_grad=0.0, tolerance_change=0.0,
                                          line_search_fn="strong_wolfe")

            def closure():
                optimizer.zero_grad()
                loss = _LBFGS_OBJECTIVE_SCALE * self._objective(*point(), labels)
                loss.backward()
                return loss

        best, stalled, initial_loss = math.inf, 0, math.inf
        for step in range(steps + 1):
            current = [x.detach().requires_grad_(True) for x in point()]
            loss = self._objective(*current, labels)
            grads = torch.autograd.grad(loss, current)
            loss = float(loss.detach())
            grad_norm = math.sqrt(sum(float(g.square().sum()) for g in grads))
            stalled = 0 if loss < best - 1e-15 * abs(best) else stalled + 1
            best = min(best, loss)
            if step == 0:
                initial_loss = loss
            if not math.isfinite(loss) or not math.isfinite(grad_norm) or loss > 1e3 * initial_loss:
                raise ValueError(f"{method} diverged at step {step} (objective {loss:.3g}, starting at "
                                 f"{initial_loss:.3g}): lr={lr:.4g} is too large, pass a smaller lr")
            done = (step == steps or grad_norm <= tol
                    or (optimizer is not None and stalled >= _LBFGS_PATIENCE))
            if done or step % log_every == 0:
                recorder.record(step, loss, grad_norm, *current)
            if done:
                break
            if optimizer is None:
                with torch.no_grad():
                    for v, g in zip(variables, grads):
                        v -= lr * g
            else:
                optimizer.step(closure)
        return self.summarize(*point()), recorder.trajectory()


class _Recorder:
    """Collects a solver's trajectory, the NC measures taken from :mod:`nclab.metrics`."""

    def __init__(self, ufm: UFM):
        self.ufm = ufm
        self.labels = ufm.labels()
        self.rows: list[tuple[float, ...]] = []

    def record(self, step: int, objective: float, grad_norm: float, W, H, b) -> None:
        W, H = W.detach(), H.detach()
        stats = metrics.FeatureStats(self.ufm.num_classes, self.ufm.dim).update(H.T, self.labels)
        self.rows.append((step, objective, grad_norm, metrics.nc1(stats), metrics.nc2_wh(W, stats),
                          metrics.nc3(W, stats), metrics.mean_w_norm(W), metrics.mean_h_norm(stats)))

    def trajectory(self) -> Trajectory:
        columns = np.array(self.rows, dtype=np.float64).reshape(-1, 8).T
        return Trajectory(columns[0].astype(np.int64), *columns[1:])
