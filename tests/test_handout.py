"""The student's copy of a chapter: solutions out, skeletons and everything else in, never half-written."""

from __future__ import annotations

import doctest

import jupytext
import nbformat
import pytest

from nclab.exercises import handout
from nclab.exercises.handout import student_copy

SKELETON = 'def smoothed_targets(labels, num_classes, delta):\n    # your code here\n    raise NotImplementedError'
CHECK = "nc.exercises.ch1.smoothed_targets(smoothed_targets)"
SOLUTION = "# Solution\ndef smoothed_targets(labels, num_classes, delta):\n    return None"
QUESTION = "1. **(core)** Why is the optimal margin finite under label smoothing?"
ANSWER = ":::{admonition} Solution\n:class: dropdown\nBecause the targets are not one-hot.\n\n$$m^*(\\delta)$$\n:::"
NOTE = ":::{admonition} A note\n:class: dropdown\nKept: not a solution.\n:::"


def chapter() -> nbformat.NotebookNode:
    """A small chapter: prose, an exercise (skeleton, check, folded solution), a question with its answer."""
    new_md, new_code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    return nbformat.v4.new_notebook(cells=[
        new_md("# 1. A chapter\n\nSome prose."),
        new_code("import nclab as nc", metadata={"tags": ["remove-cell"]}),
        new_md("### Exercise 1.1: smoothed targets (core)"),
        new_code(SKELETON),
        new_code(CHECK),
        new_code(SOLUTION, metadata={"tags": ["hide-cell", "solution"]}),
        new_md(f"## Questions\n\n{QUESTION}\n\n{ANSWER}\n\n2. **(open)** Another question.\n\n{NOTE}"),
        new_md(ANSWER),
        new_code("assert 1 + 1 == 2", metadata={"tags": ["hide-cell"]}),
    ])


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "01_chapter.ipynb"
    nbformat.write(chapter(), path)
    return path


def sources(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def test_solutions_go_and_everything_else_stays(source, tmp_path):
    target = tmp_path / "student" / "01_chapter.ipynb"
    assert student_copy(source, target) == 3      # one solution cell, two solution admonitions
    copy = nbformat.read(target, as_version=4)
    original = chapter()
    kept = [original.cells[i] for i in (0, 1, 2, 3, 4, 8)]
    assert sources(copy)[:5] == sources(nbformat.v4.new_notebook(cells=kept))[:5]
    assert copy.cells[1].metadata == {"tags": ["remove-cell"]}
    questions = copy.cells[5].source
    assert QUESTION in questions and "2. **(open)** Another question." in questions and NOTE in questions
    assert "Solution" not in questions and "not one-hot" not in questions and "\n\n\n" not in questions
    assert copy.cells[6].source == "assert 1 + 1 == 2"          # the cell of only an answer is gone
    assert len(copy.cells) == 7
    assert not any("solution" in c.metadata.get("tags", []) for c in copy.cells)
    assert any(SKELETON == c.source for c in copy.cells)


def test_a_myst_source_gives_the_same_copy(source, tmp_path):
    md = tmp_path / "01_chapter.md"
    jupytext.write(nbformat.read(source, as_version=4), md, fmt="md:myst")
    assert student_copy(md, tmp_path / "from_md.ipynb") == 3
    assert student_copy(source, tmp_path / "from_ipynb.ipynb") == 3
    from_md = nbformat.read(tmp_path / "from_md.ipynb", as_version=4)
    from_ipynb = nbformat.read(tmp_path / "from_ipynb.ipynb", as_version=4)
    assert [(t, s.strip()) for t, s in sources(from_md)] == [(t, s.strip()) for t, s in sources(from_ipynb)]


def test_a_book_chapter_loses_only_its_solutions(tmp_path):
    from exercise_tools import BOOK
    md = sorted(BOOK.glob("10_*.md"))[0]
    original = jupytext.read(md)
    removed = student_copy(md, tmp_path / "10.ipynb")
    copy = nbformat.read(tmp_path / "10.ipynb", as_version=4)
    assert removed >= 1
    assert [c.source for c in copy.cells if c.cell_type == "code"] == \
        [c.source for c in original.cells if c.cell_type == "code" and "solution" not in c.metadata.get("tags", [])]
    assert not any(":::{admonition} Solution" in c.source for c in copy.cells)


def test_nothing_is_written_on_an_error(source, tmp_path):
    target = tmp_path / "student.ipynb"
    with pytest.raises(ValueError, match="does not exist"):
        student_copy(tmp_path / "missing.ipynb", target)
    (tmp_path / "broken.ipynb").write_text("{ not json")
    with pytest.raises(ValueError, match="cannot read"):
        student_copy(tmp_path / "broken.ipynb", target)
    with pytest.raises(ValueError, match=r"\.ipynb"):
        student_copy(source, tmp_path / "student.txt")
    unclosed = chapter()
    unclosed.cells[7].source = ":::{admonition} Solution\n:class: dropdown\nno end"
    nbformat.write(unclosed, tmp_path / "unclosed.ipynb")
    with pytest.raises(ValueError, match="never closed"):
        student_copy(tmp_path / "unclosed.ipynb", target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_chapter.ipynb", "broken.ipynb", "unclosed.ipynb"]


def test_a_failed_write_keeps_the_old_copy(source, tmp_path, monkeypatch):
    target = tmp_path / "student.ipynb"
    target.write_text("the old copy")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(handout.nbformat, "write", fail)
    with pytest.raises(OSError, match="disk full"):
        student_copy(source, target)
    assert target.read_text() == "the old copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_chapter.ipynb", "student.ipynb"]


def test_only_folded_solution_admonitions_are_removed():
    shown = ":::{admonition} Solution\n:class: tip\nShown on purpose.\n:::"
    assert handout.remove_solution_admonitions(shown) == (shown, 0)
    fenced = "Q.\n\n```{admonition} Solution\n:class: dropdown\nA.\n```"
    assert handout.remove_solution_admonitions(fenced) == ("Q.", 1)
    nested = "::::{admonition} Solution\n:class: dropdown\n:::{math}\nx\n:::\nafter\n::::\nEnd."
    assert handout.remove_solution_admonitions(nested) == ("End.", 1)


def test_the_command_line(source, tmp_path, capsys):
    assert handout.main([str(source), str(tmp_path / "out.ipynb")]) == 0
    assert "3 solution(s) removed" in capsys.readouterr().out
    assert handout.main([str(tmp_path / "missing.md"), str(tmp_path / "x.ipynb")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_docstring_examples():
    result = doctest.testmod(handout, optionflags=doctest.ELLIPSIS, report=False)
    assert result.attempted >= 3 and result.failed == 0
