"""Gradient descent on the UFM: its step size and how fast it converges, against delta (chapter 7).

Curvature sets the speed of gradient descent: near a minimizer a mode of curvature mu shrinks by
a factor (1 - lr mu) per step, and the step must stay below 2 / lambda_max. This module turns the
Hessian spectrum of :mod:`nclab.hessian` into step sizes (:func:`default_lr`) and runs plain
gradient descent (:meth:`nclab.ufm.UFM.solve` with ``method="gd"``) for several smoothing values
from one random start, counting the steps until each measure of distance to Theorem 1's
minimizer settles (:func:`convergence_experiment`). :func:`check_solver` solves a problem from one
random start (L-BFGS by default) and measures how far the solution is from Theorem 1's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import math

import numpy as np

from ._checks import check_positive_number
from .hessian import reduced_spectrum
from .ufm import UFM, Trajectory, UFMSolution

__all__ = ["default_lr", "distances", "ConvergenceResult", "DEFAULT_THRESHOLDS", "convergence_experiment",
           "SolverCheck", "check_solver"]


def default_lr(ufm: UFM) -> float:
    """1 / lambda_max of the Hessian at Theorem 1's minimizer (chapter 7).

    Gradient descent near a minimizer is stable for lr < 2 / lambda_max; 1 / lambda_max is the
    step at which the stiffest mode is removed in one step, and the number of steps to shrink
    a mode of curvature mu by a factor e is then about lambda_max / mu.

    Parameters
    ----------
    ufm : the problem (dim >= K - 1)

    Returns
    -------
    float, the step size to pass to ``ufm.solve("gd", lr=...)``.

    Example
    -------
    >>> ufm = UFM(4, 5, 6, 5e-3, 5e-3, 5e-3, delta=0.1)
    >>> lr = default_lr(ufm)
    >>> sol, traj = ufm.solve("gd", steps=2000, lr=lr, log_every=2000)
    >>> bool(traj.objective[-1] < traj.objective[0])
    True
    """
    return 1.0 / reduced_spectrum(ufm).max


def distances(trajectory: Trajectory, minimizer: UFMSolution) -> dict[str, np.ndarray]:
    """How far each recorded point of a solver is from the minimizer, four ways (chapter 7).

    Parameters
    ----------
    trajectory : the :class:`nclab.ufm.Trajectory` of :meth:`nclab.ufm.UFM.solve`
    minimizer : the problem's :meth:`nclab.ufm.UFM.closed_form`

    Returns
    -------
    dict of arrays over the recorded steps: "objective_gap" (f - f*), "nc1", and "w_norm",
    "h_norm", the relative errors abs(mean ‖w_k‖ / ‖w*‖ - 1) and the same for the class means
    (absolute values where the minimizer is W = H = 0).
    """
    def relative_error(values: np.ndarray, target: float) -> np.ndarray:
        return np.abs(values / target - 1) if target > 0 else np.abs(values)

    return {"objective_gap": trajectory.objective - minimizer.objective, "nc1": trajectory.nc1,
            "w_norm": relative_error(trajectory.w_norm, minimizer.w_norm),
            "h_norm": relative_error(trajectory.h_norm, minimizer.h_norm)}


@dataclass(frozen=True)
class ConvergenceResult:
    """Gradient descent on the UFM for several deltas from one random start.

    Attributes
    ----------
    table : one dict per delta: "delta", "beta", "lr", "lambda_max" and "lambda_min" (largest and
        smallest nonzero Hessian eigenvalue at the minimizer), "kappa" (their ratio), then for
        each threshold name the first logged step after which the quantity stays below its
        threshold (None if it never settles), and "final_gap"
    trajectories : delta -> :class:`nclab.ufm.Trajectory`, for plotting
    thresholds : the thresholds used, by name (see :func:`convergence_experiment`)
    """

    table: list[dict]
    trajectories: dict[float, Trajectory]
    thresholds: dict[str, float]

    def format(self) -> str:
        """The table as aligned text."""
        names = ["delta", "beta", "lr", "kappa", *self.thresholds]
        lines = ["  ".join(f"{name:>12}" for name in names)]
        for row in self.table:
            cells = []
            for name in names:
                value = row[name]
                if value is None:
                    cells.append(f"{'never':>12}")
                elif isinstance(value, (int, np.integer)):
                    cells.append(f"{value:>12d}")
                else:
                    cells.append(f"{value:>12.4g}")
            lines.append("  ".join(cells))
        return "\n".join(lines)


DEFAULT_THRESHOLDS = {"objective_gap": 1e-10, "nc1": 1e-6, "w_norm": 1e-5, "h_norm": 1e-5}


def _settling_step(steps: np.ndarray, values: np.ndarray, threshold: float) -> int | None:
    """First recorded step after which ``values`` stay below ``threshold`` (NaN counts as above)."""
    above = np.nonzero(~(values < threshold))[0]
    if len(above) == 0:
        return int(steps[0])
    first_good = above[-1] + 1
    return int(steps[first_good]) if first_good < len(steps) else None


def convergence_experiment(deltas: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3), *, num_classes: int = 4,
                           per_class: int = 5, dim: int = 6, lambda_W: float = 5e-3, lambda_H: float = 5e-3,
                           lambda_b: float = 5e-3, steps: int = 3000, lr: float | str = "auto",
                           seed: int = 0, init_scale: float = 0.1,
                           thresholds: dict[str, float] | None = None,
                           log_every: int = 5) -> ConvergenceResult:
    """How many gradient-descent steps each delta needs, from the same random start (chapter 7).

    For each delta, plain gradient descent runs on the UFM from one shared random point and the
    trajectory is compared with Theorem 1's minimizer. A quantity has converged at the first
    recorded step after which it stays below its threshold:

    - "objective_gap": f(W, H, b) - f*, absolute
    - "nc1": NC1 of the features
    - "w_norm", "h_norm": relative errors abs(mean ‖w_k‖ / ‖w*‖ − 1) and the same for the
      centred class means

    Step size: ``lr="auto"`` uses 1/lambda_max(delta) of the Hessian at each delta's minimizer
    (the largest step that removes the stiffest mode without oscillation; then the steps per
    e-fold decay of a mode of curvature mu are lambda_max / mu, so step counts compare condition
    numbers). ``lr="shared"`` uses the smallest of those for every delta (then step counts
    compare the smallest curvatures, as when CE and LS are trained with the same optimizer
    settings). A number is used as is. Far from the minimizer the curvature can be larger: at a
    random start the softmax is nearly uniform and the bias alone has curvature about 1/K, so
    for weakly regularized problems "auto" can diverge; a ValueError then asks for a smaller lr.
    The defaults run in a few seconds.

    Parameters
    ----------
    deltas : smoothing values to compare
    num_classes, per_class, dim, lambda_W, lambda_H, lambda_b : the UFM (see :class:`nclab.ufm.UFM`)
    steps : gradient-descent steps per delta (runs stop early once the gradient norm is 1e-13)
    lr : "auto", "shared" or a positive number
    seed, init_scale : the shared random start (:meth:`nclab.ufm.UFM.initial_point`)
    thresholds : dict overriding some of the default thresholds
        {"objective_gap": 1e-10, "nc1": 1e-6, "w_norm": 1e-5, "h_norm": 1e-5}
    log_every : record every this many steps (the resolution of the step counts)

    Returns
    -------
    :class:`ConvergenceResult` with the table and the per-delta trajectories.

    Example
    -------
    >>> result = convergence_experiment(deltas=(0.0, 0.1))
    >>> print(result.format())  # doctest: +SKIP
    """
    chosen = dict(DEFAULT_THRESHOLDS)
    for name, value in (thresholds or {}).items():
        if name not in DEFAULT_THRESHOLDS:
            raise ValueError(f"thresholds keys must be among {sorted(DEFAULT_THRESHOLDS)}, got {name!r}")
        chosen[name] = check_positive_number(value, f"thresholds[{name!r}]", allow_zero=False)
    if len(deltas) == 0:
        raise ValueError("deltas must hold at least one smoothing value")
    problems = [UFM(num_classes, per_class, dim, lambda_W, lambda_H, lambda_b, delta) for delta in deltas]
    spectra = [reduced_spectrum(ufm) for ufm in problems]
    if isinstance(lr, str):
        if lr not in ("auto", "shared"):
            raise ValueError(f"lr must be 'auto', 'shared' or a positive number, got {lr!r}")
        rates = [1.0 / spectrum.max for spectrum in spectra]
        rates = rates if lr == "auto" else [min(rates)] * len(rates)
    else:
        rates = [check_positive_number(lr, "lr", allow_zero=False)] * len(problems)
    start = problems[0].initial_point(seed, init_scale)

    table, trajectories = [], {}
    for ufm, spectrum, rate in zip(problems, spectra, rates):
        best = ufm.closed_form()
        _, traj = ufm.solve("gd", steps=steps, lr=rate, init=start, log_every=log_every, tol=1e-13)
        series = distances(traj, best)
        row = {"delta": ufm.delta, "beta": ufm.beta, "lr": rate, "lambda_max": spectrum.max,
               "lambda_min": spectrum.min_nonzero(), "kappa": spectrum.max / spectrum.min_nonzero()}
        row.update({name: _settling_step(traj.step, series[name], chosen[name]) for name in chosen})
        row["final_gap"] = float(series["objective_gap"][-1])
        table.append(row)
        trajectories[ufm.delta] = traj
    return ConvergenceResult(table, trajectories, chosen)


@dataclass(frozen=True)
class SolverCheck:
    """A numerical solution of a UFM problem against Theorem 1's closed form (:func:`check_solver`).

    Attributes
    ----------
    beta : the problem's β (the minimizer is zero when β ≥ 1)
    iterations : the solver's last logged step
    gap : objective f − f* of the solution minus the closed form's
    w_error, h_error : relative errors of the mean ‖w_k‖ and ‖μ_k‖; when β ≥ 1, the norms themselves
    nc1, nc2, nc3 : the collapse measures at the solution (NaN when β ≥ 1, where they are undefined)
    rounding : ``|f − f*|`` in units of the float64 rounding of f* (eps · f*)
    """

    beta: float
    iterations: float
    gap: float
    w_error: float
    h_error: float
    nc1: float
    nc2: float
    nc3: float
    rounding: float


def check_solver(problem: UFM, seed: int = 0, *, steps: int = 500, method: str = "lbfgs") -> SolverCheck:
    """Solve ``problem`` from the random start ``seed`` and compare the solution with Theorem 1 (chapter 6).

    A solver that found the global minimum shows a gap of a few units of float64 rounding and
    errors of the norms near zero.

    Parameters
    ----------
    problem : a :class:`nclab.ufm.UFM` with dim >= K − 1
    seed : the seed of the random start (:meth:`nclab.ufm.UFM.solve`)
    steps : solver iterations at most
    method : the solver of :meth:`nclab.ufm.UFM.solve`

    Returns
    -------
    SolverCheck

    Example
    -------
    >>> check = check_solver(UFM(3, 4, 3, 1e-2, 1e-2, delta=0.1), steps=200)
    >>> check.rounding < 100 and check.w_error < 1e-4
    True
    """
    best = problem.closed_form()
    sol, traj = problem.solve(method, steps=steps, seed=seed, log_every=steps)
    if problem.beta < 1:  # relative errors of the norms, and the collapse measures
        norms = (abs(sol.w_norm / best.w_norm - 1), abs(sol.h_norm / best.h_norm - 1))
        collapse = (traj.nc1[-1], traj.nc2_wh[-1], traj.nc3[-1])
    else:  # the minimizer is zero: the norms themselves; no collapse to measure
        norms, collapse = (sol.w_norm, sol.h_norm), (math.nan,) * 3
    gap = sol.objective - best.objective
    return SolverCheck(*map(float, (problem.beta, traj.step[-1], gap, *norms, *collapse)),
                       rounding=abs(gap) / (np.finfo(float).eps * best.objective))
