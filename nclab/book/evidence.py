"""What chapters 2-5 conclude from the book's sweep: the numbers and verdicts their prose quotes, and the claims it guards.

Each chapter function turns the runs of :func:`nclab.runs.book_sweep` into an :class:`Evidence`:

- ``texts``: every number and verdict the chapter's prose quotes, as short text, inserted with
  myst-nb's ``glue`` (:meth:`Evidence.glue`) so the prose shows what *this* run of the book
  computed, on this machine;
- ``claims``: the statements the prose makes in plain words, each with whether it holds. They are
  chosen to hold with a wide margin wherever the book is built: a statement whose margin is
  comparable to the spread across seeds or across floating-point paths is not a claim but a glued
  verdict ("not separated" or not). :meth:`Evidence.check` stops a build whose text no longer
  matches, and the test suite re-runs the sweep under other floating-point paths and checks the
  same claims.

Verdicts are paired by seed with a 95% interval (:func:`nclab.stats.paired`).

Example
-------
>>> results = nc.runs.book_sweep()                     # doctest: +SKIP
>>> evidence = nc.book.evidence.chapter3(results)      # doctest: +SKIP
>>> evidence.glue(); evidence.check()                  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata, spearmanr

from .. import stats
from ..runs import select
from ..train import RunResult
from . import tables
from .scales import ClaimsAtScales, scale_name, side_by_side

__all__ = ["Evidence", "Text", "describe", "chapter2", "chapter3", "chapter4", "chapter5",
           "CHAPTER3_DELTAS", "ClaimsAtScales", "side_by_side", "scale_name"]

CHAPTER3_DELTAS = (0.0, 0.05, 0.3)   # CE, the paper's δ, and a strong δ


class Text(str):
    """A string that displays without quotes (so that ``{glue:text}`` inserts it as plain words)."""

    def __repr__(self) -> str:
        return str(self)


@dataclass
class Evidence:
    """The glued texts and the guarded claims of one chapter.

    Attributes
    ----------
    chapter : e.g. "chapter 3"
    texts : glue name -> text the prose quotes
    claims : a statement of the prose, in words -> whether it holds for these runs
    paper : a claim of the paper, in words -> whether these runs show it (paired, 95%); not
        guarded by :meth:`check`: the chapters show it for each scale with :func:`side_by_side`
    """

    chapter: str
    texts: dict[str, str] = field(default_factory=dict)
    claims: dict[str, bool] = field(default_factory=dict)
    paper: dict[str, bool] = field(default_factory=dict)

    def glue(self, prefix: str = "") -> None:
        """Make every text available to the page's ``{glue:text}`` roles (no-op outside myst-nb).

        ``prefix`` goes before every name, so that one chapter can glue the evidence of two
        scales (e.g. ``prefix="fm_"`` for the Fashion-MNIST bundle: ``{glue:text}`fm_ch3_seeds```).
        """
        try:
            from myst_nb import glue
        except ImportError:          # e.g. Colab: the roles are not rendered there anyway
            return
        for name, text in self.texts.items():
            glue(prefix + name, Text(text), display=False)

    def expect(self, holds=(), fails=()) -> None:
        """Stop (AssertionError) unless every claim of ``holds`` holds and every claim of ``fails`` does not.

        For prose that says which claims hold at a scale where not all of them do (a bundle).
        """
        known = {**self.claims, **self.paper}
        unknown = [c for c in (*holds, *fails) if c not in known]
        if unknown:
            raise KeyError(f"{self.chapter} has no claims {unknown}")
        wrong = [f"expected to hold, does not: {c}" for c in holds if not known[c]]
        wrong += [f"expected not to hold, holds: {c}" for c in fails if known[c]]
        if wrong:
            raise AssertionError(f"{self.chapter}: the text no longer matches the results:\n- " + "\n- ".join(wrong))

    def failed(self) -> list[str]:
        """The claims that do not hold."""
        return [claim for claim, holds in self.claims.items() if not holds]

    def check(self) -> None:
        """Raise AssertionError naming every claim of the prose that these runs contradict."""
        failed = self.failed()
        if failed:
            raise AssertionError(f"{self.chapter}: the text no longer matches the runs; these claims fail:\n- "
                                 + "\n- ".join(failed))

    def __str__(self) -> str:
        lines = [f"{self.chapter}: {len(self.texts)} glued texts, {len(self.claims)} claims "
                 f"({len(self.failed())} failing)"]
        lines += [f"  {name}: {text}" for name, text in self.texts.items()]
        lines += [f"  [{'ok' if holds else 'FAILS'}] {claim}" for claim, holds in self.claims.items()]
        return "\n".join(lines)

    __repr__ = __str__


def describe(p: stats.Paired, words: tuple[str, str] = ("lower", "higher"), unit: str = "") -> str:
    """A paired verdict in words, with the mean difference, its 95% interval and the exact test's p-value.

    After :func:`nclab.stats.adjust`, the adjusted p-value follows the raw one; values on a grid
    (epochs logged every few epochs) state the grid.

    Parameters
    ----------
    p : the comparison
    words : the words for a negative and a positive difference, e.g. ("earlier", "later")
    unit : appended to the mean difference, e.g. " epochs"

    Examples
    --------
    >>> describe(stats.paired([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2.0, 3.1, 3.9, 5.2, 6.1, 7.0]))
    'lower (-1.1, 95% CI [-1.2, -0.94], p = 0.031)'
    >>> describe(stats.paired([1.0, 2.0, 3.0], [2.0, 3.1, 3.9]))
    'too few seeds to decide (-1, 95% CI [-1.2, -0.75], p = 0.25)'
    """
    word = {"lower": words[0], "higher": words[1]}.get(p.verdict, p.verdict)
    test = f"p = {p.p_exact:.2g}" + ("" if p.p_adjusted is None else f", adjusted {p.p_adjusted:.2g}")
    grid = ("" if p.resolution is None else ", logged every epoch" if p.resolution == 1 and unit == " epochs"
            else f", logged every {p.resolution:g}{unit}")
    return f"{word} ({p.mean:+.2g}{unit}, 95% CI [{p.low:+.2g}, {p.high:+.2g}], {test}{grid})"


def adjusted(*groups: dict) -> tuple:
    """The chapter's comparisons adjusted as one family (Benjamini-Hochberg at 5%), in the same nested shape.

    Each group is a dict label -> (dict column -> Paired) or label -> Paired; every Paired of every
    group is one member of the family.
    """
    flat = {}
    for g, group in enumerate(groups):
        for label, value in group.items():
            if isinstance(value, stats.Paired):
                flat[(g, label, None)] = value
            else:
                flat.update({(g, label, column): c for column, c in value.items()})
    done = stats.adjust(flat, "bh")
    out = []
    for g, group in enumerate(groups):
        out.append({label: (done[(g, label, None)] if isinstance(value, stats.Paired)
                            else {column: done[(g, label, column)] for column in value})
                    for label, value in group.items()})
    return tuple(out)


def family_text(*groups: dict) -> str:
    """How many of a family's comparisons give a direction, in words (glued by chapters 3-5)."""
    members = [v for group in groups for value in group.values()
               for v in ([value] if isinstance(value, stats.Paired) else value.values())]
    directional = sum(v.verdict in ("lower", "higher") for v in members)
    too_few = sum(v.verdict == stats.TOO_FEW for v in members)
    text = f"{directional} of {len(members)} comparisons give a direction after the Benjamini-Hochberg adjustment"
    return text + (f" ({too_few} cannot: too few untied seed pairs)" if too_few else "")


def _key(delta: float) -> str:
    """A glue-name fragment for δ: 0.05 -> "005", 0.3 -> "03"."""
    return f"{delta:g}".replace(".", "")


def _count(verdicts, word: str) -> int:
    return sum(v.verdict == word for v in verdicts)


def _tally(verdicts, what: str = "LS settings") -> str:
    """How many verdicts went each way, in words: "lower for all 5 LS settings", "lower for 3, ..."."""
    n = len(verdicts)
    parts = [(word, _count(verdicts, word)) for word in stats.VERDICTS]
    parts = [(word, k) for word, k in parts if k]
    if len(parts) == 1:
        return f"{parts[0][0]} for all {n} {what}"
    return ", ".join(f"{word} for {k}" for word, k in parts) + f" of the {n} {what}"


def step_comparisons(table, column: str, labels: list[str]) -> list[stats.Paired]:
    """Each step of δ to the next in one column, as a paired comparison (next − previous)."""
    return [table.compare(b, a)[column] for a, b in zip(labels, labels[1:])]


def steps(verdicts: list[stats.Paired]) -> str:
    """How a measure moves from each δ to the next, from the (adjusted) step comparisons (chapters 4, 5).

    Returns "falls at every step of δ" or "rises at every step of δ" when every step is "lower"
    (or "higher") under the decision rule, and otherwise a tally of the steps.
    """
    if _count(verdicts, "lower") == len(verdicts):
        return "falls at every step of δ"
    if _count(verdicts, "higher") == len(verdicts):
        return "rises at every step of δ"
    return _tally(verdicts, "steps of δ").replace("lower", "falls").replace("higher", "rises")


# Chapter 2 ------------------------------------------------------------------------------------

def chapter2(results: list[RunResult]) -> Evidence:
    """Collapse of the cross-entropy runs from the first to the last logged epoch."""
    ce = select(results, 0.0)
    table = tables.collapse_table(ce)
    first, last = table.columns
    values = table.values
    keys = [k for k in values if k not in ("w_norm", "h_norm")]
    fell = [k for k in keys if (values[k][last] <= values[k][first]).all()]
    ratio = {k: float((values[k][first] / values[k][last]).mean()) for k in ("nc1", "nc2_wh", "nc3")}
    (family,) = adjusted({"equinorm": stats.paired(values["equinorm_w"][last], values["equinorm_h"][last])})
    equinorm = family["equinorm"]
    ev = Evidence("chapter 2")
    ev.texts = {
        "ch2_seeds": str(len(ce)),
        "ch2_fell": ", ".join(fell) if fell else "none",
        "ch2_not_fell": ", ".join(k for k in keys if k not in fell) or "none",
        "ch2_fell_p": f"{stats.paired(values['nc1'][last], values['nc1'][first]).p_exact:.2g}",
        "ch2_nc1_ratio": f"{ratio['nc1']:.3g}",
        "ch2_nc2_ratio": f"{ratio['nc2_wh']:.3g}",
        "ch2_nc3_ratio": f"{ratio['nc3']:.3g}",
        "ch2_equinorm": describe(equinorm),
    }
    ev.claims = {
        "NC1 and all three forms of NC2 and NC3 fell from the first to the last logged epoch in every seed":
            all(k in fell for k in ("nc1", "nc2_h", "nc2_w", "nc2_wh", "nc3")),
        "NC1 falls by a much larger factor (over 3x) than NC2 and NC3":
            ratio["nc1"] > 3 * max(ratio["nc2_wh"], ratio["nc3"]),
        "the classifier rows end closer to equal norms than the class means (paired)":
            equinorm.verdict == "lower",
        "none of the measures gets close to 0 (NC2 and NC3 stay above 0.02)":
            min(values["nc2_wh"][last].min(), values["nc3"][last].min()) > 0.02,
    }
    ev.paper = {
        "training drives CE networks toward collapse: NC1, NC2 and NC3 fall in every seed":
            all(k in fell for k in ("nc1", "nc2_wh", "nc3")),
        "NC1 falls by more than an order of magnitude": ratio["nc1"] > 10,
    }
    return ev


# Chapter 3 ------------------------------------------------------------------------------------

def chapter3_tables(results: list[RunResult]):
    """The two tables of chapter 3: epochs to thresholds, and final values (CE, δ = 0.05, δ = 0.3).

    Returns (runs compared, speed table, final table, names): ``names`` maps each threshold's
    glue name ("zero", "nc1_high", "nc1_low", "nc2_high", "nc2_low") to its column label; a
    threshold the speed table dropped (not strictly inside every run's range) has no column there.
    """
    compared = select(results, CHAPTER3_DELTAS)
    nc1 = tables.common_levels(compared, "nc1", 2)
    nc2 = tables.common_levels(compared, "nc2_wh", 2)
    thresholds = {"train_error": 0.0, "nc1": nc1, "nc2_wh": nc2}
    names = {"zero": "train_error ≤ 0", "nc1_high": f"nc1 ≤ {nc1[0]:.3g}", "nc1_low": f"nc1 ≤ {nc1[1]:.3g}",
             "nc2_high": f"nc2_wh ≤ {nc2[0]:.3g}", "nc2_low": f"nc2_wh ≤ {nc2[1]:.3g}"}
    speed = tables.threshold_table(compared, thresholds)
    ends = tables.final_table(compared, ["train_error", "test_error", "train_loss", "nc1", "nc2_wh", "nc3",
                                        "w_norm", "h_norm"])
    return compared, speed, ends, names


def _verdict(comparisons: dict, column: str, word: str) -> bool:
    """Whether a (possibly dropped) column's comparison has the verdict ``word``."""
    return column in comparisons and comparisons[column].verdict == word


def chapter3(results: list[RunResult]) -> Evidence:
    """CE against LS (δ = 0.05 and 0.3) over the epochs: how fast, and where they end.

    Every comparison of the chapter is one family, adjusted by Benjamini-Hochberg (``adjusted``).
    """
    compared, speed, ends, names = chapter3_tables(results)
    ev = Evidence("chapter 3")
    fast = {d: speed.compare(tables.delta_label(d), "CE") for d in CHAPTER3_DELTAS[1:]}
    end = {d: ends.compare(tables.delta_label(d), "CE") for d in CHAPTER3_DELTAS[1:]}
    strong = {"nc1": stats.paired(ends.values["LS δ=0.3"]["nc1"], ends.values["LS δ=0.05"]["nc1"])}
    fast, end, strong = adjusted(fast, end, strong)
    strong = strong["nc1"]
    for d in CHAPTER3_DELTAS[1:]:
        for name, column in names.items():
            ev.texts[f"ch3_{name}_{_key(d)}"] = (describe(fast[d][column], ("earlier", "later"), " epochs")
                                                 if column in fast[d] else
                                                 f"not compared ({speed.dropped[column]})")
        for key, p in end[d].items():
            ev.texts[f"ch3_end_{key}_{_key(d)}"] = describe(p)
    comparisons = sum(len(v) for v in fast.values()) + sum(len(v) for v in end.values()) + 1
    zero = names["zero"]
    zero_epochs = (np.concatenate([speed.values[label][zero] for label in speed.values])
                   if zero in speed.columns else np.array([np.nan]))
    setup = compared[0].config
    ev.texts.update({
        "ch3_seeds": str(len(select(results, 0.0))),
        "ch3_comparisons": str(comparisons),
        "ch3_chance": f"{0.05 * comparisons:.2g}",
        "ch3_family": family_text(fast, end, {"strong": strong}),
        "ch3_directional": str(sum(p.verdict in ("lower", "higher") for g in (*fast.values(), *end.values())
                                   for p in g.values()) + (strong.verdict in ("lower", "higher"))),
        "ch3_zero_latest": f"{np.nanmax(zero_epochs):g}" if np.isfinite(zero_epochs).any() else "never",
        "ch3_epochs": str(setup.epochs),
        "ch3_grid": f"{next(iter(speed.resolution.values()), setup.log_every):g}",
        "ch3_nc1_strong_vs_paper": describe(strong),
    })
    nc2 = (names["nc2_high"], names["nc2_low"])
    ev.claims = {
        "every run reaches zero training error within the first quarter of training":
            bool(np.isfinite(zero_epochs).all() and zero_epochs.max() <= setup.epochs / 4),
        "both LS settings reach both NC2 levels earlier than CE (paired)":
            all(_verdict(fast[d], c, "lower") for d in fast for c in nc2),
        "δ = 0.3 reaches the lower NC1 level earlier than CE (paired)": _verdict(fast[0.3], names["nc1_low"], "lower"),
        "NC1, NC2 and both norms end lower with both LS settings (paired)":
            all(end[d][k].verdict == "lower" for d in end for k in ("nc1", "nc2_wh", "w_norm", "h_norm")),
        "the training loss ends higher with LS (its optimum is not 0)":
            all(end[d]["train_loss"].verdict == "higher" for d in end),
        "NC3 ends higher with δ = 0.3 than with CE (paired)": end[0.3]["nc3"].verdict == "higher",
        "NC1 ends lower with δ = 0.3 than with δ = 0.05 (paired)": strong.verdict == "lower",
    }
    paper = fast[0.05], end[0.05]
    ev.paper = {
        "LS (δ = 0.05) reaches zero training error earlier than CE": _verdict(paper[0], zero, "lower"),
        "LS (δ = 0.05) reaches the lower NC1 level earlier than CE": _verdict(paper[0], names["nc1_low"], "lower"),
        "LS (δ = 0.05) ends with lower NC1 than CE": paper[1]["nc1"].verdict == "lower",
        "LS (δ = 0.05) ends with lower NC2 than CE": paper[1]["nc2_wh"].verdict == "lower",
        "LS (δ = 0.05) ends with smaller classifier and feature norms than CE":
            paper[1]["w_norm"].verdict == paper[1]["h_norm"].verdict == "lower",
        "LS (δ = 0.05) ends with a lower test error than CE": paper[1]["test_error"].verdict == "lower",
    }
    return ev


# Chapter 4 ------------------------------------------------------------------------------------

def chapter4_tables(results: list[RunResult]):
    """The tables of chapter 4: NC2 at four common NC1 levels, and the final values, every δ."""
    levels = tables.common_levels(results, "nc1", 4)
    matched = tables.matched_nc2_table(results, levels)
    ends = tables.final_table(results, ["test_error", "nc1", "nc2_wh", "nc3", "w_norm", "h_norm"])
    return levels, matched, ends


def chapter4(results: list[RunResult]) -> Evidence:
    """NC2 at equal NC1, and every measure against δ."""
    levels, matched, ends = chapter4_tables(results)
    labels = [tables.delta_label(d) for d in sorted({r.config.delta for r in results})]
    ls = labels[1:]
    versus = {label: matched.compare(label, "CE") for label in ls}
    end_versus = {label: ends.compare(label, "CE") for label in ls}
    step = {key: dict(enumerate(step_comparisons(ends, key, labels))) for key in ends.columns}
    strongest = {key: stats.paired(ends.values[labels[-1]][key], ends.values["LS δ=0.05"][key])
                 for key in ("nc1", "nc2_wh")}
    versus, end_versus, step, strongest = adjusted(versus, end_versus, step, strongest)
    upper, lowest = matched.columns[:-1], matched.columns[-1]
    ev = Evidence("chapter 4")
    cells = [versus[label][c] for label in ls for c in matched.columns]
    at_lowest = [versus[label][lowest] for label in ls]
    ev.texts.update({
        "ch4_seeds": str(len(select(results, 0.0))),
        "ch4_matched_lower": f"{_count(cells, 'lower')} of {len(cells)}",
        "ch4_matched_lowest": f"{_count(at_lowest, 'lower')} of {len(at_lowest)}",
        "ch4_matched_005_lowest": describe(versus["LS δ=0.05"][lowest]),
        "ch4_matched_005_upper": describe(versus["LS δ=0.05"][upper[0]]),
        "ch4_family": family_text(versus, end_versus, step, strongest),
    })
    for key in ends.columns:
        verdicts = [end_versus[label][key] for label in ls]
        ev.texts[f"ch4_end_{key}"] = _tally(verdicts)
    trend = {key: steps(list(step[key].values())) for key in ends.columns}
    for key, text in trend.items():
        ev.texts[f"ch4_trend_{key}"] = text
    # The sentences on the test error quote whichever verdicts these runs give: another machine's
    # floating-point path makes new draws, and a lone direction among them is possible.
    te = [end_versus[label]["test_error"] for label in ls] + list(step["test_error"].values())
    directed = sum(p.verdict in ("lower", "higher") for p in te)
    ev.texts["ch4_te_found"] = ("the exact tests find no difference in test error" if not directed else
                                f"the exact tests give a direction in {directed} of these {len(te)} comparisons")
    ev.texts["ch4_te_versus_ce"] = ("none does either" if not any(p.verdict in ("lower", "higher") for p in te[:len(ls)])
                                    else f"the test error against CE is {ev.texts['ch4_end_test_error']}")
    ev.texts["ch4_nc1_strongest"] = describe(strongest["nc1"])
    ev.texts["ch4_nc2_strongest"] = describe(strongest["nc2_wh"])
    ev.texts["ch4_largest"] = f"{max(r.config.delta for r in results):g}"
    ev.claims = {
        "at every common NC1 level but the lowest, every LS setting has lower NC2 than CE (paired)":
            all(versus[label][c].verdict == "lower" for label in ls for c in upper),
        "at every common NC1 level, the mean NC2 of δ = 0.05 is below that of CE":
            all(matched.mean("LS δ=0.05", c) < matched.mean("CE", c) for c in matched.columns),
        "the NC2 gap of δ = 0.05 to CE is smaller at the lowest NC1 level than at the highest (the effect shrinks)":
            abs(versus["LS δ=0.05"][lowest].mean) < abs(versus["LS δ=0.05"][upper[0]].mean),
        "both norms fall at every step of δ": trend["w_norm"] == trend["h_norm"] == "falls at every step of δ",
        "NC1 and NC2 end lower with the largest δ than with δ = 0.05 (paired)":
            all(p.verdict == "lower" for p in strongest.values()),
        "every LS setting ends with lower NC1, NC2 and norms than CE (paired)":
            all(end_versus[label][k].verdict == "lower" for label in ls for k in ("nc1", "nc2_wh", "w_norm", "h_norm")),
        "NC3 ends higher than CE for δ ≥ 0.1 (paired)":
            all(end_versus[label]["nc3"].verdict == "higher" for label in ls[1:]),
    }
    ev.paper = {
        "at equal NC1, δ = 0.05 has lower NC2 than CE, at every common NC1 level":
            all(versus["LS δ=0.05"][c].verdict == "lower" for c in matched.columns),
        "every LS setting ends with lower NC1 than CE":
            all(end_versus[label]["nc1"].verdict == "lower" for label in ls),
        "every LS setting ends with lower NC2 than CE":
            all(end_versus[label]["nc2_wh"].verdict == "lower" for label in ls),
        "both norms fall at every step of δ": trend["w_norm"] == trend["h_norm"] == "falls at every step of δ",
    }
    return ev


# Chapter 5 ------------------------------------------------------------------------------------

def across_runs(results: list[RunResult], x: str = "nc1", y: str = "test_ece"):
    """Spearman's ρ between two final-epoch measures across the runs, with δ held fixed (chapter 5).

    Within each δ, both measures are replaced by their ranks among the seeds of that δ, centred; the
    pooled ranks are then correlated. Seeds of one δ differ only by their initialization and batch
    order, so a correlation here is not a correlation with training time or with δ.

    Returns
    -------
    scipy's SignificanceResult (statistic, pvalue)
    """
    xs, ys = [], []
    for runs in tables.by_delta(results).values():
        a = np.array([r.final[x] for r in runs])
        b = np.array([r.final[y] for r in runs])
        xs.append(rankdata(a, method="ordinal") - (len(a) + 1) / 2)
        ys.append(rankdata(b, method="ordinal") - (len(b) + 1) / 2)
    return spearmanr(np.concatenate(xs), np.concatenate(ys))


def _scaled_ece_checks(rows: dict, test: dict, ls: list[str]) -> dict[str, str]:
    """The texts of chapter 5 on ECE differences: two-level intervals (δ = 0.05 − CE) and the bin-count check.

    A verdict on the ECE after temperature scaling is stated only when it is the same at every bin
    count of :func:`nclab.stats.ece_bins_agree`; otherwise it reads "depends on the bin count".
    """
    texts = {}
    deltas = {label: d for d in test for label in ls if tables.delta_label(d) == label}
    ce, ls05 = test[0.0], test[0.05]
    t_ce, t_05 = rows["CE"]["T from val"], rows["LS δ=0.05"]["T from val"]
    for name, temps in (("raw", (None, None)), ("scaled", (t_05, t_ce))):
        diff, low, high = stats.ece_difference([o.logits for o in ls05], [o.logits for o in ce], ce[0].labels,
                                               temperatures_a=temps[0], temperatures_b=temps[1], n_resamples=1000)
        texts[f"ch5_two_level_{name}"] = f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]"
    agreed = {}
    for label in ls:
        outs = test[deltas[label]]
        agreed[label], each = stats.ece_bins_agree([o.logits for o in outs], [o.logits for o in ce], ce[0].labels,
                                                   temperatures_a=rows[label]["T from val"], temperatures_b=t_ce)
        if label == "LS δ=0.05":
            texts["ch5_scaled_bins_each"] = ", ".join(f"{k} bins: {p.verdict}" for k, p in each.items())
            texts["ch5_scaled_005"] = agreed[label] + (" (the same at every bin count from 10 to 30)"
                                                       if agreed[label] != "depends on the bin count" else
                                                       " (between 10 and 30 bins)")
    counts = {v: sum(a == v for a in agreed.values()) for v in dict.fromkeys(agreed.values())}
    texts["ch5_scaled_summary"] = ", ".join(f"{v} for {k}" for v, k in counts.items()) + f" of the {len(ls)} LS settings"
    return texts


def chapter5(results: list[RunResult], val: dict, test: dict, calibration=None, entropies=None,
             correlations=None) -> Evidence:
    """Calibration across δ: raw and scaled ECE, fitted temperatures, entropy, and the link to collapse.

    Parameters
    ----------
    results : the book's sweep
    val, test : :func:`nclab.runs.outputs_by_delta` of the validation and test splits
    calibration, entropies, correlations : the chapter's tables, when already computed
    """
    calibration = calibration or tables.calibration_table(val, test, n_bins=20)
    entropies = entropies or tables.entropy_table(test)
    correlations = correlations or tables.collapse_calibration_table(results)
    rows = calibration.values
    labels = list(rows)
    ls = labels[1:]
    versus = {label: calibration.compare(label, "CE") for label in ls}
    entropy_versus = {label: entropies.compare(label, "CE") for label in ls}
    ece_steps = dict(enumerate(step_comparisons(calibration, "ECE", labels)))
    # Fitting on the test set, the only change: the same grid search on validation against on test.
    gap = {"optimism": stats.paired(np.concatenate([rows[label]["ECE, T from test"] for label in labels]),
                                    np.concatenate([rows[label]["ECE, grid T from val"] for label in labels]))}
    versus, entropy_versus, ece_steps, gap = adjusted(versus, entropy_versus, ece_steps, gap)
    ev = Evidence("chapter 5")
    ev.texts["ch5_family"] = family_text(versus, entropy_versus, ece_steps, gap)
    raw = [versus[label]["ECE"] for label in ls]
    ev.texts.update({
        "ch5_seeds": str(len(rows["CE"]["ECE"])),
        "ch5_ce_gap": f"{rows['CE']['confidence − accuracy'].mean():+.3f}",
        "ch5_ce_T": f"{rows['CE']['T from val'].mean():.2f}",
        "ch5_raw_higher": f"{_count(raw, 'higher')} of {len(raw)}",
        "ch5_scaled_005_20_bins": describe(versus["LS δ=0.05"]["ECE, T from val"]),
        "ch5_scaled_fraction": f"{max(calibration.mean(l, 'ECE, T from val') / calibration.mean(l, 'ECE') for l in labels):.2g}",
    })
    optimism = np.concatenate([rows[label]["ECE, grid T from val"] - rows[label]["ECE, T from test"] for label in labels])
    ev.texts["ch5_optimism"] = describe(gap["optimism"])
    ev.texts["ch5_optimism_share"] = f"{np.mean(optimism / np.concatenate([rows[l]['ECE, grid T from val'] for l in labels])):.0%}"
    # How much of an ECE is the luck of the test split: bootstrap over test samples.
    for d, label in ((0.0, "CE"), (0.05, "LS δ=0.05")):
        outs = test[d]
        value, low, high = stats.ece_interval([o.logits for o in outs], outs[0].labels, n_bins=20)
        ev.texts[f"ch5_ece_{_key(d)}"] = f"{value:.3f} (95% BCa bootstrap interval over test samples [{low:.3f}, {high:.3f}])"
        temps = rows[label]["T from val"]
        value, low, high = stats.ece_interval([o.logits for o in outs], outs[0].labels, n_bins=20,
                                              temperatures=temps)
        ev.texts[f"ch5_ece_scaled_{_key(d)}"] = f"{value:.3f} [{low:.3f}, {high:.3f}]"
    ev.texts.update(_scaled_ece_checks(rows, test, ls))
    ev.texts["ch5_entropy_incorrect"] = ", ".join(
        f"{label}: {entropy_versus[label]['incorrect'].verdict}" for label in ls)
    rho_nc1 = [correlations.mean(label, "ρ(NC1, ECE)") for label in labels]
    rho_norms = [correlations.mean(label, "ρ(norms, ECE)") for label in labels]
    ev.texts["ch5_rho_nc1"] = f"{min(rho_nc1):+.2f} to {max(rho_nc1):+.2f}"
    ev.texts["ch5_rho_norms"] = f"{min(rho_norms):+.2f} to {max(rho_norms):+.2f}"
    across = across_runs(results)
    ev.texts["ch5_across"] = f"ρ = {across.statistic:+.2f} (p = {across.pvalue:.2g}, {len(results)} runs)"
    ev.claims = {
        "the CE networks are underconfident: confidence below accuracy in every run, fitted T < 1 in every seed":
            bool((rows["CE"]["confidence − accuracy"] < 0).all() and (rows["CE"]["T from val"] < 1).all()),
        "every network of the sweep is underconfident": all((rows[l]["confidence − accuracy"] < 0).all() for l in labels),
        "the raw test ECE rises at every step of δ (paired)": steps(list(ece_steps.values())) == "rises at every step of δ",
        "every LS setting has a higher raw ECE than CE (paired)": _count(raw, "higher") == len(raw),
        "temperature scaling with T from validation cuts every setting's ECE to under a third":
            all(calibration.mean(l, "ECE, T from val") < calibration.mean(l, "ECE") / 3 for l in labels),
        "fitted on the test set, the grid search never scores worse on the test set than fitted on validation":
            bool((optimism >= -1e-9).all()),
        "wrong answers have higher median entropy than right ones, for every δ":
            all(entropies.mean(l, "incorrect") > entropies.mean(l, "correct") for l in labels),
        "LS raises the entropy of the correct predictions, for every δ (paired)":
            all(entropy_versus[l]["correct"].verdict == "higher" for l in ls),
        "over training, the test ECE rises with NC1 and falls with the norms (mean ρ signs), for every δ":
            min(rho_nc1) > 0 and max(rho_norms) < 0,
    }
    ev.paper = {
        "CE networks are overconfident: confidence above accuracy in every run":
            bool((rows["CE"]["confidence − accuracy"] > 0).all()),
        "LS (δ = 0.05) has a lower raw test ECE than CE": versus["LS δ=0.05"]["ECE"].verdict == "lower",
        "after temperature scaling, LS (δ = 0.05) still has a lower test ECE than CE":
            versus["LS δ=0.05"]["ECE, T from val"].verdict == "lower",
    }
    return ev
