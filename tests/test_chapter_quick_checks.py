"""Chapters 1-8: two to four quick checks each, every one followed by its folded answer; every chapter's
opening states its study time, glued from the measured data."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import pytest

from nclab import widgets

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [p for p in sorted((ROOT / "book").glob("0[1-8]_*.md"))]


def quick_checks(md: Path) -> list[tuple[dict, object, object]]:
    """Each quick check of a chapter: (its arguments, its cell, the cell after it)."""
    cells = jupytext.read(md).cells
    found = []
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and "quick_check(" in cell.source:
            call = ast.parse(cell.source).body[-1].value
            assert isinstance(call, ast.Call) and ast.unparse(call.func) == "nc.widgets.quick_check", cell.source
            names = ["question", "options", "answer", "explanation"]
            arguments = {name: ast.literal_eval(node) for name, node in zip(names, call.args)}
            arguments |= {k.arg: ast.literal_eval(k.value) for k in call.keywords}
            found.append((arguments, cell, cells[i + 1] if i + 1 < len(cells) else None))
    return found


def folded_answer(cell) -> str | None:
    """The text of the folded answer that opens a markdown cell, else None."""
    if cell is None or cell.cell_type != "markdown":
        return None
    match = re.match(r":::\{admonition\} Answer\n:class: dropdown\n(.*?)\n:::", cell.source, flags=re.S)
    return match.group(1) if match else None


def test_chapters_1_to_8_are_all_found():
    assert [p.name[:2] for p in CHAPTERS] == [f"0{i}" for i in range(1, 9)]


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_two_to_four_quick_checks_each_with_its_folded_answer(md):
    checks = quick_checks(md)
    assert 2 <= len(checks) <= 4, f"{md.name} has {len(checks)} quick checks"
    for arguments, cell, after in checks:
        # the arguments are valid: the call builds the static view without an error
        widgets.quick_check(**arguments, static=True)
        assert "remove-input" in cell.metadata.get("tags", []), "the call holds the answer: hide it on the site"
        answer = folded_answer(after)
        assert answer, f"{md.name}: no folded answer (:::{{admonition}} Answer, :class: dropdown) after {cell.source[:80]}"
        if arguments["options"] is None:
            assert f"{arguments['answer']:g}" in answer, f"{md.name}: the folded answer does not state the number"
        else:   # the static view letters the options A, B, C...
            letter = "ABCD"[arguments["answer"]]
            assert answer.startswith(f"**{letter}.**"), f"{md.name}: the folded answer must open with **{letter}.**"


def test_the_answer_check_sees_a_missing_or_wrong_answer(tmp_path):
    md = tmp_path / "01_x.md"
    md.write_text(CHAPTERS[0].read_text().replace(":::{admonition} Answer\n:class: dropdown\n**B.**",
                                                  ":::{admonition} Answer\n:class: dropdown\n**C.**"))
    with pytest.raises(AssertionError, match=r"must open with \*\*B\.\*\*"):
        test_two_to_four_quick_checks_each_with_its_folded_answer(md)
    md.write_text(CHAPTERS[0].read_text().replace(":::{admonition} Answer\n:class: dropdown\n",
                                                  ":::{admonition} Answer\n:class: note\n", 1))
    with pytest.raises(AssertionError, match="no folded answer"):
        test_two_to_four_quick_checks_each_with_its_folded_answer(md)


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_the_opening_states_the_study_time_glued_from_the_data(md):
    cells = jupytext.read(md).cells
    opening = next(c.source for c in cells if c.cell_type == "markdown")
    assert "**You will learn**" in opening
    for name in ("study_reading", "study_total", "study_run"):
        assert f"{{glue:text}}`{name}`" in opening, f"{md.name}'s opening does not glue {name}"
    assert not re.search(r"runs in (a few seconds|about a minute)", opening), "a typed run time"
    glued = [c for c in cells if c.cell_type == "code" and "study_times.glue(" in c.source]
    assert len(glued) == 1 and f'study_times.glue("{md.stem}")' in glued[0].source
    assert "remove-cell" in glued[0].metadata.get("tags", [])
