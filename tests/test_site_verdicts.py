"""The built book states no direction that its own exact test does not support (the decision rule of chapter 3).

Every glued verdict reads "word (mean, 95% CI [low, high], p = P[, adjusted Q][, logged every ...])".
A directional word (lower, higher, earlier, later) needs the p-value it rests on (the adjusted one
when there is one) at or below 0.05 and the interval on one side of 0.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html" / "book"
VERDICT = re.compile(r"\b(lower|higher|earlier|later|not separated|too few seeds to decide) \(([+\-−]?[0-9.e+\-]+)[^()]*?"
                     r"95% CI \[([+\-−]?[0-9.e+\-]+), ([+\-−]?[0-9.e+\-]+)\], p = ([0-9.e+\-]+)"
                     r"(?:, adjusted ([0-9.e+\-]+))?")
DIRECTIONAL = {"lower", "higher", "earlier", "later"}


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def verdict_problems(text: str) -> list[str]:
    """Each directional verdict in ``text`` whose p-value exceeds 0.05 or whose interval includes 0."""
    problems = []
    for match in VERDICT.finditer(text):
        word, _, low, high, p, adjusted = match.groups()
        if word not in DIRECTIONAL:
            continue
        level_p = _number(adjusted if adjusted is not None else p)
        low, high = _number(low), _number(high)
        if level_p > 0.05 or low <= 0 <= high:
            problems.append(match.group(0))
    return problems


def test_the_checker_catches_a_direction_without_its_test():
    assert verdict_problems("earlier (+1 epochs, 95% CI [+0.11, +1.9], p = 0.12, adjusted 0.15)") == [
        "earlier (+1 epochs, 95% CI [+0.11, +1.9], p = 0.12, adjusted 0.15"]
    assert verdict_problems("lower (-0.0021, 95% CI [-0.0037, -0.00044], p = 0.062)")
    assert verdict_problems("lower (-1, 95% CI [-2, +0.5], p = 0.01)")                     # interval includes 0
    assert verdict_problems("lower (-0.088, 95% CI [-0.094, -0.077], p = 0.0078, adjusted 0.012)") == []
    assert verdict_problems("not separated (-0.0045, 95% CI [-0.0094, +0.00042], p = 0.094)") == []


def _pages():
    return sorted(SITE.glob("[0-9]*.html"))


def test_no_page_of_the_built_book_states_a_direction_its_exact_test_does_not_support():
    pages = _pages()
    if not pages:
        if os.environ.get("CI"):
            pytest.fail("_build/html holds no chapter: run `make book` first")
        pytest.skip("_build/html holds no chapter: run `make book` first")
    found, problems = 0, []
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        found += sum(1 for _ in VERDICT.finditer(text))
        problems += [f"{page.name}: {p}" for p in verdict_problems(text)]
    assert found > 50, f"only {found} verdicts found in the built chapters: has their format changed?"
    assert not problems, "\n".join(problems)
