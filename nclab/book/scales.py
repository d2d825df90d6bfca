"""The paper's claims at several scales side by side: the table chapters 2-5 show under their figures.

Each scale's :class:`~nclab.book.evidence.Evidence` comes from the same chapter function on other
runs (the book's quick sweep, a bundle); :func:`side_by_side` lines up their ``paper`` claims.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..runs import profile_of
from ..tables import text_table
from ..train import RunResult

__all__ = ["ClaimsAtScales", "scale_name", "side_by_side"]


@dataclass
class ClaimsAtScales:
    """Whether each claim of a chapter holds at each scale: the table chapters 2-5 show.

    Attributes
    ----------
    scales : scale name -> that scale's :class:`Evidence` (the same chapter function on other runs)
    """

    scales: dict[str, "Evidence"]  # noqa: F821 (nclab.book.evidence.Evidence)

    @property
    def claims(self) -> list[str]:
        """The paper's claims this chapter tests."""
        first = next(iter(self.scales.values()))
        return list(first.paper)

    def holds(self, claim: str) -> dict[str, bool]:
        """Scale name -> whether the runs of that scale show ``claim``."""
        return {name: ev.paper[claim] for name, ev in self.scales.items()}

    def __str__(self) -> str:
        names = list(self.scales)
        rows = [[claim, *("shown" if ok else "not shown" for ok in self.holds(claim).values())]
                for claim in self.claims]
        return text_table(["claim of the paper", *names], rows, align="<",
                          widths=[max(len(c) for c in self.claims), *(len(n) for n in names)])

    def _repr_html_(self) -> str:
        from html import escape
        head = "".join(f"<th>{escape(n)}</th>" for n in self.scales)
        rows = []
        for claim in self.claims:
            cells = "".join(f"<td style='text-align:center'>{'✔ shown' if ok else '✘ not shown'}</td>"
                            for ok in self.holds(claim).values())
            rows.append(f"<tr><td>{escape(claim)}</td>{cells}</tr>")
        return (f"<table><thead><tr><th>claim of the paper</th>{head}</tr></thead><tbody>{''.join(rows)}"
                "</tbody></table>")


def scale_name(results: list[RunResult]) -> str:
    """A column title for the scale of a set of runs, e.g. "digits, mlp (quick profile)"."""
    c = results[0].config
    profile = profile_of(c)
    return f"{c.dataset}, {c.model}" + (f" ({profile} profile)" if profile else "")


def side_by_side(**scales: "Evidence") -> ClaimsAtScales:
    """The paper's claims tested in one chapter, at several scales, in one table.

    A claim is "shown" when the runs of that scale show it with the chapter's paired 95% test,
    and "not shown" otherwise (the opposite, or no separation).

    Example
    -------
    >>> from nclab.book.evidence import Evidence
    >>> quick = Evidence("chapter 9", paper={"LS ends with smaller norms": True})
    >>> fashion = Evidence("chapter 9", paper={"LS ends with smaller norms": False})
    >>> print(side_by_side(digits=quick, fashion=fashion))
    claim of the paper          digits  fashion
    LS ends with smaller norms  shown   not shown
    """
    if not scales:
        raise ValueError("side_by_side needs at least one scale")
    claims = [list(ev.paper) for ev in scales.values()]
    if any(c != claims[0] for c in claims):
        raise ValueError("the scales' evidence must come from the same chapter function (same claims)")
    return ClaimsAtScales(dict(scales))
