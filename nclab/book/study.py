"""The pre-registered real-image study, analysed as ``results/fashion-study/PREREGISTRATION.md`` fixes it.

CE (δ = 0) against label smoothing δ = 0.05, a ResNet18 of width 8 on 2000 Fashion-MNIST
images, seeds 0-15 paired by seed; d_s = value(δ = 0.05) − value(CE).

- **Primary endpoints** (:func:`primary`), at epoch 50: the test error and the raw test ECE
  (20 bins). Each gets the 95% paired-t interval and the exact two-sided sign-flip permutation
  test over all 2^16 sign vectors; Holm controls the two at family-wise 5%, and a direction
  needs Holm to reject *and* the interval to exclude 0 (:func:`nclab.stats.adjust`). The ten
  pairs trained after the pilot (seeds 6-15) are also reported alone, descriptively, and the raw
  ECE at 10, 15, 20 and 30 bins beside the primary one.
- **Secondary endpoints** (:func:`secondary`), each under the same rule at unadjusted 5%, no
  multiplicity claim: S1 the first epoch ≤ 30 at zero training error (censored at 31: the lr
  drop after epoch 30 must not decide it); S2 the first epoch ≤ 30 with NC1 at or below 1.0 and
  0.37 (censored at 31); S3 the test ECE after temperature scaling, stated only when 10, 15, 20
  and 30 bins agree; S4 NC2 at the NC1 levels 1.4, 0.73, 0.37, 0.19 (interpolated on the
  full-record epochs, as :func:`nclab.tables.nc2_at_nc1`).

S1 and S2 read the light records (one per epoch), so their resolution is one epoch.
:func:`reproduction` is the plan's check of seeds 0-5 against the pilot bundle (``results/fashion``).
The deviations from the plan are logged in ``results/fashion-study/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import stats
from ..calibration import ece
from ..tables import nc2_at_nc1
from ..train import RunResult

__all__ = ["PRIMARY", "NC1_LEVELS", "NC2_AT_NC1_LEVELS", "CENSOR", "SCALED_BINS", "Study", "pairs", "primary",
           "secondary", "analyse", "texts", "numbers", "reproduction", "reproduction_text"]

PRIMARY = {"test_error": "final test error", "test_ece": "raw test ECE (20 bins)"}
NC1_LEVELS = (1.0, 0.37)                  # S2, fixed in the pre-registration
NC2_AT_NC1_LEVELS = (1.4, 0.73, 0.37, 0.19)   # S4
CENSOR = 31                               # S1, S2: not reached by epoch 30 -> 31
SCALED_BINS = (10, 15, 20, 30)            # S3's bin-count check
DELTAS = (0.0, 0.05)


@dataclass
class Study:
    """The analysis: every comparison with its verdict, and counts the pre-registration asks to report.

    Attributes
    ----------
    seeds : the paired seeds
    primary : endpoint -> Paired (Holm over the two primary endpoints)
    fresh : endpoint -> Paired over seeds 6-15 alone (descriptive, unadjusted)
    secondary : name -> Paired (each at unadjusted 5%)
    scaled_bins : bin count -> Paired of the scaled test ECE (S3)
    scaled_verdict : S3's verdict: the common one, or "not separated (bin-dependent)"
    notes : counts the pre-registration asks for (censored runs, relapses, runs left out), and the
        range of the fitted temperatures of each arm
    raw_bins : bin count -> Paired of the raw test ECE (reported beside the 20-bin primary)
    """

    seeds: list[int]
    primary: dict[str, stats.Paired]
    fresh: dict[str, stats.Paired]
    secondary: dict[str, stats.Paired]
    scaled_bins: dict[int, stats.Paired]
    scaled_verdict: str
    notes: dict[str, str] = field(default_factory=dict)
    raw_bins: dict[int, stats.Paired] = field(default_factory=dict)


def pairs(results: list[RunResult]) -> tuple[list[int], list[RunResult], list[RunResult]]:
    """The seeds with both a CE and a δ = 0.05 run, and those runs in seed order (CE, LS).

    Raises ValueError when a run of another δ is present, or a seed has a run on one side only.
    """
    by = {}
    for r in results:
        if r.config.delta not in DELTAS:
            raise ValueError(f"the study compares δ = 0 and 0.05 only; got a run with δ = {r.config.delta:g}")
        by.setdefault(r.config.seed, {})[r.config.delta] = r
    lonely = sorted(s for s, runs in by.items() if len(runs) != 2)
    if lonely:
        raise ValueError(f"seeds {lonely} have a run for one δ only: the study pairs CE and δ = 0.05 by seed")
    seeds = sorted(by)
    return seeds, [by[s][0.0] for s in seeds], [by[s][0.05] for s in seeds]


def _first_epoch(result: RunResult, key: str, level: float) -> float:
    """The first epoch ≤ 30 of the light records with ``key`` at or below ``level``; CENSOR if none."""
    values = result.light_series(key)
    epochs = result.light_series("epoch")
    hit = np.flatnonzero((values <= level) & (epochs < CENSOR))
    return float(epochs[hit[0]]) if hit.size else float(CENSOR)


def primary(ce: list[RunResult], ls: list[RunResult]) -> dict[str, stats.Paired]:
    """The two primary endpoints, Holm-adjusted as a family of two."""
    raw = {key: stats.paired([r.final[key] for r in ls], [r.final[key] for r in ce]) for key in PRIMARY}
    return stats.adjust(raw, "holm")


def secondary(ce: list[RunResult], ls: list[RunResult]) -> tuple[dict[str, stats.Paired], dict[str, str]]:
    """S1, S2 and S4 (S3 needs the logits: :func:`analyse`), and the counts the pre-registration asks for."""
    out, notes = {}, {}
    times = {"zero": ("train_error", 0.0), **{f"nc1_{_tag(level)}": ("nc1", level) for level in NC1_LEVELS}}
    for name, (key, level) in times.items():
        t_ce = np.array([_first_epoch(r, key, level) for r in ce])
        t_ls = np.array([_first_epoch(r, key, level) for r in ls])
        out[f"time_{name}"] = stats.paired(t_ls, t_ce, resolution=1)
        notes[f"censored_{name}"] = f"CE {int((t_ce == CENSOR).sum())}, δ = 0.05 {int((t_ls == CENSOR).sum())}"
        notes[f"at_epoch_1_{name}"] = str(int((t_ce == 1).sum() + (t_ls == 1).sum()))
    relapsed = [f"{'CE' if r.config.delta == 0 else 'δ = 0.05'} seed {r.config.seed}" for r in (*ce, *ls)
                if _relapses(r)]
    notes["relapses"] = ", ".join(relapsed) if relapsed else "none"
    nc2_ce = np.array([nc2_at_nc1(r, NC2_AT_NC1_LEVELS) for r in ce])
    nc2_ls = np.array([nc2_at_nc1(r, NC2_AT_NC1_LEVELS) for r in ls])
    for k, level in enumerate(NC2_AT_NC1_LEVELS):
        out[f"nc2_at_nc1_{_tag(level)}"] = stats.paired(nc2_ls[:, k], nc2_ce[:, k])
        notes[f"left_out_nc2_at_nc1_{_tag(level)}"] = (f"CE {int(np.isnan(nc2_ce[:, k]).sum())}, "
                                                       f"δ = 0.05 {int(np.isnan(nc2_ls[:, k]).sum())}")
    return out, notes


def _tag(level: float) -> str:
    """A level as a name fragment: 0.37 -> "037", 1.0 -> "1"."""
    return f"{level:g}".replace(".", "")


def _relapses(result: RunResult) -> bool:
    """Whether the training error is positive again after a first zero, within epochs ≤ 30."""
    errors = result.light_series("train_error")[result.light_series("epoch") < CENSOR]
    zero = np.flatnonzero(errors == 0)
    return bool(zero.size and (errors[zero[0]:] > 0).any())


def analyse(results: list[RunResult], test_logits: dict | None = None, labels=None) -> Study:
    """The whole pre-registered analysis of the study's runs.

    Parameters
    ----------
    results : the study's RunResults (CE and δ = 0.05, paired by seed)
    test_logits : δ -> list of the final test logits, one per seed in seed order (for S3's bin
        check); None skips the bin check (S3 then rests on the recorded 20-bin value alone)
    labels : the test labels, with ``test_logits``
    """
    seeds, ce, ls = pairs(results)
    fresh = [i for i, s in enumerate(seeds) if s >= 6]
    fresh_pairs = {key: stats.paired([ls[i].final[key] for i in fresh], [ce[i].final[key] for i in fresh])
                   for key in PRIMARY}
    second, notes = secondary(ce, ls)
    second["test_ece_scaled"] = stats.paired([r.final["test_ece_scaled"] for r in ls],
                                             [r.final["test_ece_scaled"] for r in ce])
    scaled_bins: dict[int, stats.Paired] = {}
    raw_bins: dict[int, stats.Paired] = {}
    verdict = second["test_ece_scaled"].verdict
    t_ce = [r.final["temperature"] for r in ce]
    t_ls = [r.final["temperature"] for r in ls]
    notes["temperature_ce"] = f"{min(t_ce):.2f} to {max(t_ce):.2f}"
    notes["temperature_ls"] = f"{min(t_ls):.2f} to {max(t_ls):.2f}"
    if test_logits is not None:
        for k in SCALED_BINS:
            scaled_bins[k] = stats.paired([ece(z / t, labels, k) for z, t in zip(test_logits[0.05], t_ls)],
                                          [ece(z / t, labels, k) for z, t in zip(test_logits[0.0], t_ce)])
            raw_bins[k] = stats.paired([ece(z, labels, k) for z in test_logits[0.05]],
                                       [ece(z, labels, k) for z in test_logits[0.0]])
        verdicts = {p.verdict for p in scaled_bins.values()}
        verdict = verdicts.pop() if len(verdicts) == 1 else "not separated (bin-dependent)"
    return Study(seeds, primary(ce, ls), fresh_pairs, second, scaled_bins, verdict, notes, raw_bins)


def _reading(p: stats.Paired, what: str, words=("lower", "higher")) -> str:
    """One sentence fragment for a verdict, whichever way it came out."""
    if p.verdict in ("lower", "higher"):
        word = words[0] if p.verdict == "lower" else words[1]
        return f"δ = 0.05 gives a {word} {what} than CE"
    if p.verdict == stats.TOO_FEW:
        return f"the pairs are too few to decide whether δ = 0.05 changes the {what}"
    return f"the {what} of δ = 0.05 and of CE are not separated"


def _scaled_reading(s: Study) -> str:
    """S3 in words: a direction only when every bin count gives it (without the logits: 20 bins alone)."""
    what = "test ECE after temperature scaling"
    if s.scaled_verdict.endswith("(bin-dependent)"):
        return f"the bin counts disagree on the {what}, so no direction is stated"
    return _reading(s.scaled_bins.get(20, s.secondary["test_ece_scaled"]), what)


def numbers(p: stats.Paired) -> str:
    """A paired difference without a verdict: mean, 95% interval, exact p (for descriptive readings)."""
    return f"mean {p.mean:+.2g}, 95% CI [{p.low:+.2g}, {p.high:+.2g}], p = {p.p_exact:.2g}"


def texts(s: Study) -> dict[str, str]:
    """The study's numbers and verdicts as short texts, for the chapter's ``{glue:text}`` (prefix ``st_``)."""
    from .evidence import describe
    out = {"st_seeds": str(len(s.seeds)), "st_fresh": str(s.fresh["test_error"].n)}
    for key, what in (("test_error", "final test error"), ("test_ece", "raw test ECE")):
        p = s.primary[key]
        out[f"st_{key}"] = describe(p)
        out[f"st_{key}_reading"] = _reading(p, what)
        out[f"st_{key}_counts"] = f"lower in {p.lower_in} of {p.n} pairs, higher in {p.higher_in}"
        out[f"st_{key}_fresh"] = numbers(s.fresh[key])
    for name, p in s.secondary.items():
        words = ("earlier", "later") if name.startswith("time_") else ("lower", "higher")
        out[f"st_{name}"] = describe(p, words, " epochs" if name.startswith("time_") else "")
    out["st_scaled_verdict"] = s.scaled_verdict
    out["st_scaled_bins"] = ", ".join(f"{k} bins: {p.verdict}" for k, p in s.scaled_bins.items())
    out["st_scaled_reading"] = _scaled_reading(s)
    out["st_raw_bins"] = "; ".join(f"{k} bins: {numbers(p)}" for k, p in s.raw_bins.items())
    out.update({f"st_{k}": v for k, v in s.notes.items()})
    return out


def reproduction(study: list[RunResult], pilot: list[RunResult]) -> dict[str, tuple[float, str]]:
    """The plan's check of the seeds the study shares with the pilot: the largest absolute difference of each field.

    For every run of the study with a pilot run of the same δ and seed: the final test error and
    raw test ECE (epoch 50, full test split in both), and the training error at every epoch both
    logged (a training-set field, so the study's evaluation subset does not enter).

    Returns
    -------
    dict field -> (largest absolute difference study − pilot, which run and epoch)
    """
    by = {(r.config.delta, r.config.seed): r for r in pilot}
    common = [(r, by[r.config.delta, r.config.seed]) for r in study if (r.config.delta, r.config.seed) in by]
    if not common:
        raise ValueError("the study and the pilot share no run (same δ and seed)")
    out = {}
    for key, every_epoch in (("test_error", False), ("test_ece", False), ("train_error", True)):
        largest = (-1.0, "")
        for a, b in common:
            ha = {h["epoch"]: h[key] for h in a.history}
            hb = {h["epoch"]: h[key] for h in b.history}
            epochs = sorted(set(ha) & set(hb)) if every_epoch else [a.final["epoch"]]
            if not every_epoch and b.final["epoch"] != a.final["epoch"]:
                raise ValueError(f"the final epochs differ: {a.final['epoch']} and {b.final['epoch']}")
            for e in epochs:
                if abs(ha[e] - hb[e]) > largest[0]:
                    arm = "CE" if a.config.delta == 0 else f"δ = {a.config.delta:g}"
                    largest = (abs(ha[e] - hb[e]), f"{arm} seed {a.config.seed}, epoch {e:g}")
        out[key] = largest
    return out


def reproduction_text(check: dict[str, tuple[float, str]]) -> str:
    """:func:`reproduction` in words, for the chapter."""
    return (f"the final test error differs from the pilot's by up to {check['test_error'][0]:.2g} "
            f"({check['test_error'][1]}), the final raw test ECE by up to {check['test_ece'][0]:.2g}, and the "
            f"training error at the epochs both logged by up to {check['train_error'][0]:.2g} "
            f"({check['train_error'][1]})")
