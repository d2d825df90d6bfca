"""Chapter 7's tables and conclusions: condition numbers and gradient-descent step counts against delta.

Chapter 7 compares several condition numbers of the UFM Hessian at Theorem 1's minimizer
(:func:`nclab.hessian.condition_numbers`) with the number of gradient-descent steps the UFM needs
(:func:`nclab.descent.convergence_experiment`). This module prints what the chapter shows and
puts what it concludes into words:

- :func:`kappa_table`, :func:`step_table` and :func:`correlation_table` format the condition
  numbers, the step counts and the Spearman rank correlations between them as aligned text;
- :func:`rank_correlations` and :func:`trend` are the numbers and words behind those tables;
- :func:`kappa_evidence` and :func:`descent_evidence` return an :class:`nclab.book.evidence.Evidence`:
  the numbers the prose quotes (glued with myst-nb's ``glue``) and the claims it makes in words,
  each with whether it holds, so that the book's build stops when a change breaks a claim.

Example
-------
>>> from nclab.ufm import UFM
>>> from nclab.hessian import condition_numbers
>>> problem = UFM(4, 5, 6, 5e-3, 5e-3, 5e-3)
>>> kappas = [condition_numbers(problem.replace(delta=delta)) for delta in (0.0, 0.1, 0.3)]
>>> trend([k.full for k in kappas]), trend([k.logit for k in kappas])
('rises', 'falls')
>>> kappa_evidence(kappas, "small").failed()
[]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr

from ..descent import ConvergenceResult
from ..hessian import ConditionNumbers
from ..tables import text_table
from .evidence import Evidence

__all__ = ["DEFINITIONS", "QUANTITIES", "POLICIES", "trend", "kappa_table", "step_table",
           "predictors", "rank_correlations", "correlation_table", "kappa_evidence",
           "descent_evidence"]

# The condition numbers of nclab.hessian.ConditionNumbers that chapter 7 compares.
DEFINITIONS = ("full", "weights", "data", "logit", "nc1")
# The step counts of a ConvergenceResult row, with their short column names.
QUANTITIES = {"objective_gap": "gap", "nc1": "NC1", "w_norm": "|w|", "h_norm": "|h|"}
# The step-size policies of convergence_experiment, with their names in the chapter.
POLICIES = {"auto": "own", "shared": "shared"}
# A rank correlation counts as "ordering" the step counts beyond this (chapter 7's claims).
_ORDERS = 0.7


def trend(values: Sequence[float]) -> str:
    """"rises", "falls" or "is not monotone": how a sequence moves, step by step.

    >>> trend([1, 2, 5]), trend([3, 1]), trend([1, 3, 2])
    ('rises', 'falls', 'is not monotone')
    """
    steps = np.diff(np.asarray(values, dtype=float))
    if (steps > 0).all():
        return "rises"
    return "falls" if (steps < 0).all() else "is not monotone"


def _check_kappas(kappas) -> list[ConditionNumbers]:
    kappas = list(kappas)
    if not kappas or not all(isinstance(k, ConditionNumbers) for k in kappas):
        raise ValueError("kappas must be a non-empty sequence of nclab.hessian.ConditionNumbers")
    return kappas


def _check_runs(runs) -> dict[str, ConvergenceResult]:
    if not isinstance(runs, dict) or not runs or not all(
            policy in POLICIES and isinstance(result, ConvergenceResult) for policy, result in runs.items()):
        raise ValueError('runs must map "auto" and/or "shared" to nclab.descent.ConvergenceResult')
    return runs


def kappa_table(kappas: Sequence[ConditionNumbers]) -> str:
    """The condition numbers against delta, then the eigenvalues behind them, as aligned text.

    Parameters
    ----------
    kappas : one :class:`nclab.hessian.ConditionNumbers` per delta

    Returns
    -------
    str: a first table with delta, beta and the five definitions of :data:`DEFINITIONS`; a second
    with lambda_max, lambda_min+ (smallest nonzero eigenvalue), the smallest within-class
    eigenvalue inside span(W) and the number of zero eigenvalues of the full Hessian.
    """
    kappas = _check_kappas(kappas)
    numbers = text_table(["delta", "beta", *DEFINITIONS],
                         ([f"{k.delta:g}", f"{k.beta:.4f}", *(f"{getattr(k, name):.4g}" for name in DEFINITIONS)]
                          for k in kappas), widths=[5, 6, *[9] * len(DEFINITIONS)], sep=" ")
    eigenvalues = text_table(["delta", "lambda_max", "lambda_min+", "within min", "zeros"],
                             ([f"{k.delta:g}", f"{k.full_max:.4g}", f"{k.full_min:.4g}", f"{k.within_span_min:.4g}",
                               f"{k.num_zero}"] for k in kappas), widths=[5, 10, 11, 10, 6], sep=" ")
    return numbers + "\n\n" + eigenvalues


def step_table(runs: dict[str, ConvergenceResult]) -> str:
    """Steps until each distance to the minimizer stays below its threshold, per step-size policy.

    Parameters
    ----------
    runs : policy ("auto": each delta at its own step 1/lambda_max; "shared": one step for all)
        -> the :func:`nclab.descent.convergence_experiment` run with that ``lr``

    Returns
    -------
    str: one table per policy (delta, step size, then the step counts of :data:`QUANTITIES`;
    "never" where a quantity did not settle), then the thresholds.
    """
    runs = _check_runs(runs)
    lines = []
    for policy, result in runs.items():
        lines.append(f"{POLICIES[policy]} step: steps until each quantity stays below its threshold")
        lines.append(text_table(["delta", "step", *QUANTITIES.values()],
                                ([f"{row['delta']:g}", f"{row['lr']:.3f}",
                                  *("never" if row[q] is None else f"{row[q]}" for q in QUANTITIES)]
                                 for row in result.table), widths=[5, *[6] * (1 + len(QUANTITIES))], sep=" "))
        lines.append("")
    thresholds = next(iter(runs.values())).thresholds
    lines.append("thresholds: " + ", ".join(f"{QUANTITIES[q]} {t:g}" for q, t in thresholds.items()))
    return "\n".join(lines)


def predictors(kappas: Sequence[ConditionNumbers]) -> dict[str, list[float]]:
    """What might predict the step counts, per delta: each definition of :data:`DEFINITIONS`, and
    "1/within", the inverse of the slowest within-class rate inside span(W) (the steps per e-fold
    of the slowest NC1 mode at a shared step size, up to the factor 1/lr)."""
    kappas = _check_kappas(kappas)
    table = {name: [float(getattr(k, name)) for k in kappas] for name in DEFINITIONS}
    table["1/within"] = [1 / k.within_span_min for k in kappas]
    return table


def rank_correlations(kappas: Sequence[ConditionNumbers],
                      runs: dict[str, ConvergenceResult]) -> dict[tuple[str, str], dict[str, float] | None]:
    """Spearman's rho across delta between every predictor and every step count.

    Parameters
    ----------
    kappas : condition numbers, one per delta, in the order of the runs' deltas
    runs : as for :func:`step_table`

    Returns
    -------
    dict (policy, quantity) -> {predictor: rho}, or None where the count is the same for every
    delta (rho is undefined) or a run never settled. rho = +1: the predictor orders the deltas
    exactly as the step counts do (larger predictor, more steps); -1: exactly backwards.
    """
    kappas, runs = _check_kappas(kappas), _check_runs(runs)
    values = predictors(kappas)
    out: dict[tuple[str, str], dict[str, float] | None] = {}
    for policy, result in runs.items():
        if [row["delta"] for row in result.table] != [k.delta for k in kappas]:
            raise ValueError("kappas and runs must cover the same deltas, in the same order")
        for quantity in QUANTITIES:
            counts = [row[quantity] for row in result.table]
            if None in counts or len(set(counts)) == 1:
                out[policy, quantity] = None
            else:
                out[policy, quantity] = {name: float(spearmanr(v, counts).statistic)
                                         for name, v in values.items()}
    return out


def correlation_table(kappas: Sequence[ConditionNumbers], runs: dict[str, ConvergenceResult]) -> str:
    """:func:`rank_correlations` as aligned text: predictors in columns, step counts in rows."""
    rho = rank_correlations(kappas, runs)
    names = list(predictors(kappas))
    rows = [[f"{POLICIES[policy]:>6} {QUANTITIES[quantity]:>4}",
             *(["   (the same count for every delta, or a run that never settled)"] if row is None
               else [f"{row[name]:.2f}" for name in names])]
            for (policy, quantity), row in rho.items()]
    return ("Spearman rho across delta: predictors (columns), step counts (rows)\n"
            + text_table(["", *names], rows, widths=[11, *[9] * len(names)], sep=""))


# the chapter's conclusions, in words ------------------------------------------------------------


def _number(value: float, fmt: str) -> str:
    return f"{value:,.0f}" if fmt != "d" and abs(value) >= 1000 else f"{value:{fmt}}"


def _span(values: Sequence[float], deltas: Sequence[float], fmt: str = ".3g") -> str:
    """'A at δ = first to B at δ = last'."""
    return (f"{_number(values[0], fmt)} at δ = {deltas[0]:g} to "
            f"{_number(values[-1], fmt)} at δ = {deltas[-1]:g}")


def kappa_evidence(kappas: Sequence[ConditionNumbers], name: str) -> Evidence:
    """What chapter 7 says about the condition numbers of one problem, for several deltas.

    Parameters
    ----------
    kappas : one :class:`nclab.hessian.ConditionNumbers` per delta, deltas increasing
    name : the problem's name in the glue keys, e.g. "small" -> "ch7_small_full", ...

    Returns
    -------
    :class:`nclab.book.evidence.Evidence` with texts ``ch7_{name}_`` + full, full_max, full_min, logit,
    within, weights_trend, data_trend, nc1_trend, zeros, and the claims: the full-Hessian
    condition number rises with delta, its smallest nonzero eigenvalue is lambda_H for every delta
    while its largest rises, the logit-space one falls and equals K p*(beta) = K - (K-1) beta,
    the slowest within-class rate inside span(W) rises, and the zero eigenvalues are exactly the
    symmetry zeros.
    """
    kappas = _check_kappas(kappas)
    deltas = [k.delta for k in kappas]
    if len(kappas) < 2 or trend(deltas) != "rises":
        raise ValueError("kappas must cover at least two deltas, in increasing order")
    full, logit = [k.full for k in kappas], [k.logit for k in kappas]
    within = [k.within_span_min for k in kappas]
    lam_H = kappas[0].within_outside
    key = f"ch7_{name}"
    evidence = Evidence(f"chapter 7 ({name})")
    evidence.texts.update({
        f"{key}_full": _span(full, deltas),
        f"{key}_full_max": _span([k.full_max for k in kappas], deltas),
        f"{key}_full_min": f"{kappas[0].full_min:.3g}",
        f"{key}_logit": _span(logit, deltas),
        f"{key}_within": _span(within, deltas),
        f"{key}_weights_trend": trend([k.weights for k in kappas]),
        f"{key}_data_trend": trend([k.data for k in kappas]),
        f"{key}_nc1_trend": trend([k.nc1 for k in kappas]),
        f"{key}_zeros": f"{kappas[0].num_zero}",
    })
    evidence.claims.update({
        f"{name}: the full-Hessian condition number rises with δ": trend(full) == "rises",
        f"{name}: λ_min+ of the full Hessian is λ_H for every δ":
            all(abs(k.full_min - lam_H) <= 1e-8 * lam_H for k in kappas),
        f"{name}: λ_max of the full Hessian rises with δ": trend([k.full_max for k in kappas]) == "rises",
        f"{name}: the logit-space condition number falls with δ": trend(logit) == "falls",
        f"{name}: the logit-space condition number is K p*(β)":
            all(abs(k.logit - k.logit_analytic) <= 1e-8 * k.logit_analytic for k in kappas),
        f"{name}: the slowest within-class rate inside span(W) rises with δ": trend(within) == "rises",
        f"{name}: the zero eigenvalues are exactly the symmetry zeros":
            all(k.num_zero == k.symmetry_zeros for k in kappas),
    })
    return evidence


def descent_evidence(kappas: Sequence[ConditionNumbers], runs: dict[str, ConvergenceResult]) -> Evidence:
    """What chapter 7 concludes from gradient descent with each delta at its own step and at one
    shared step, and from the rank correlations between the step counts and the condition numbers.

    Parameters
    ----------
    kappas : condition numbers of the problem that was run, one per delta (deltas increasing,
        the first one 0, cross-entropy)
    runs : {"auto": ..., "shared": ...}, both policies of :func:`nclab.descent.convergence_experiment`

    Returns
    -------
    :class:`nclab.book.evidence.Evidence` with texts ``ch7_own_*``, ``ch7_shared_*``, ``ch7_rho_*`` and
    ``ch7_ratio`` (see the chapter), and the claims its prose makes: at its own step every
    quantity needs more steps as delta grows and the full condition number orders the counts (the
    logit-space one backwards); at a shared step the objective gap needs the same number of steps
    for every delta, NC1 fewer steps with label smoothing than with cross-entropy (ordered by the
    within-class rate and the logit-space number, backwards by the full one), the norms more.
    """
    kappas, runs = _check_kappas(kappas), _check_runs(runs)
    if set(runs) != set(POLICIES):
        raise ValueError('descent_evidence needs both policies: runs = {"auto": ..., "shared": ...}')
    deltas = [k.delta for k in kappas]
    if deltas[0] != 0 or trend(deltas) != "rises":
        raise ValueError("the deltas must increase from 0 (cross-entropy)")
    rho = rank_correlations(kappas, runs)
    own, shared = runs["auto"].table, runs["shared"].table
    counts = {(policy, q): [row[q] for row in runs[policy].table] for policy in POLICIES for q in QUANTITIES}
    if any(None in c for c in counts.values()):
        raise ValueError("a run never settled: run more steps before drawing conclusions")
    log_every = int(np.diff(runs["auto"].trajectories[deltas[0]].step[:2])[0])
    ratio = [row["objective_gap"] / k.full for row, k in zip(own, kappas)]
    gap = counts["shared", "objective_gap"]
    nc1 = counts["shared", "nc1"]
    evidence = Evidence("chapter 7 (gradient descent)")
    texts = evidence.texts
    for q in QUANTITIES:
        texts[f"ch7_own_{q}"] = _span(counts["auto", q], deltas, "d")
    texts["ch7_shared_gap"] = (f"{gap[0]} steps for every δ" if len(set(gap)) == 1
                               else f"between {min(gap)} and {max(gap)} steps")
    texts["ch7_shared_nc1"] = (f"{nc1[0]} steps with cross-entropy and between {min(nc1[1:])} and "
                               f"{max(nc1[1:])} with label smoothing")
    for q in ("w_norm", "h_norm"):
        c = counts["shared", q]
        texts[f"ch7_shared_{q}"] = f"{c[0]} steps with cross-entropy, {c[-1]} at δ = {deltas[-1]:g}"
    texts["ch7_rho_own_full"] = f"{min(rho['auto', q]['full'] for q in QUANTITIES):+.2f}"
    texts["ch7_rho_own_logit"] = f"{max(rho['auto', q]['logit'] for q in QUANTITIES):+.2f}"
    shared_nc1 = rho["shared", "nc1"] or {}
    for name, label in (("1/within", "within"), ("logit", "logit"), ("full", "full")):
        texts[f"ch7_rho_nc1_{label}"] = f"{shared_nc1.get(name, float('nan')):+.2f}"
    norms = [rho["shared", q] or {} for q in ("w_norm", "h_norm")]
    texts["ch7_rho_norms_full"] = " and ".join(f"{r.get('full', float('nan')):+.2f}" for r in norms)
    texts["ch7_rho_norms_logit"] = " and ".join(f"{r.get('logit', float('nan')):+.2f}" for r in norms)
    texts["ch7_ratio"] = f"{min(ratio):.1f} to {max(ratio):.1f}"

    def orders(key, name, sign=+1):
        return rho[key] is not None and sign * rho[key][name] >= _ORDERS

    evidence.claims.update({
        "own step: every quantity needs more steps at the largest δ than with CE":
            all(counts["auto", q][-1] > counts["auto", q][0] for q in QUANTITIES),
        "own step: the full κ orders every step count": all(orders(("auto", q), "full") for q in QUANTITIES),
        "own step: the logit κ orders every step count backwards":
            all(orders(("auto", q), "logit", -1) for q in QUANTITIES),
        "own step: objective-gap steps are close to a fixed multiple of the full κ": max(ratio) <= 1.25 * min(ratio),
        "shared step: the objective gap needs the same steps for every δ (to one logged step)":
            max(gap) - min(gap) <= log_every,
        "shared step: NC1 needs fewer steps with every δ > 0 than with CE": all(c < nc1[0] for c in nc1[1:]),
        "shared step: the within-class rate orders the NC1 counts": orders(("shared", "nc1"), "1/within"),
        "shared step: the logit κ orders the NC1 counts": orders(("shared", "nc1"), "logit"),
        "shared step: the full κ orders the NC1 counts backwards": orders(("shared", "nc1"), "full", -1),
        "shared step: both norms need more steps at the largest δ than with CE":
            all(counts["shared", q][-1] > counts["shared", q][0] for q in ("w_norm", "h_norm")),
        "shared step: the full κ orders the norm counts":
            all(orders(("shared", q), "full") for q in ("w_norm", "h_norm")),
        "shared step: the logit κ orders the norm counts backwards":
            all(orders(("shared", q), "logit", -1) for q in ("w_norm", "h_norm")),
    })
    return evidence
