"""The student's copy of a chapter: solutions out, skeletons and everything else in, never half-written."""

from __future__ import annotations

import doctest
import errno
import json
import os

import jupytext
import nbformat
import pytest

from nclab import _files
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
    kept = [original.cells[i] for i in (0, 1, 2, 3, 4)]
    assert sources(copy)[:5] == sources(nbformat.v4.new_notebook(cells=kept))
    assert copy.cells[1].metadata == {"tags": ["remove-cell"]}
    questions = copy.cells[5].source
    assert QUESTION in questions and "2. **(open)** Another question." in questions and NOTE in questions
    assert "Solution" not in questions and "not one-hot" not in questions and "\n\n\n" not in questions
    assert len(copy.cells) == 6         # the cell of only an answer is gone, and the check after it
    assert not any("solution" in c.metadata.get("tags", []) for c in copy.cells)
    assert any(SKELETON == c.source for c in copy.cells)


def test_the_hidden_checks_of_an_answer_go_with_it(tmp_path):
    new_md, new_code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    hidden = {"tags": ["hide-cell"]}
    nbformat.write(nbformat.v4.new_notebook(cells=[
        new_md(f"{QUESTION}\n\n{ANSWER}\n\nThe cells below check it."),
        new_code("print('the answer, 1')", metadata=hidden),
        new_code("assert answer == 1", metadata=hidden),
        new_code("visible = 1"),                                    # not hidden: the chapter's own code
        new_code("print('kept: after visible code')", metadata=hidden),
        new_md("2. A question whose answer comes later."),
        new_code("print('kept: after a question, not an answer')", metadata=hidden),
        new_md(ANSWER),
        new_code(SOLUTION, metadata={"tags": ["hide-cell", "solution"]}),
        new_code("print('the answer, 2')", metadata={"tags": ["hide-cell", "remove-input"]}),
    ]), tmp_path / "chapter.ipynb")
    assert student_copy(tmp_path / "chapter.ipynb", tmp_path / "student.ipynb") == 3
    copy = nbformat.read(tmp_path / "student.ipynb", as_version=4)
    assert [c.source for c in copy.cells] == [
        f"{QUESTION}\n\nThe cells below check it.", "visible = 1", "print('kept: after visible code')",
        "2. A question whose answer comes later.", "print('kept: after a question, not an answer')"]


def test_a_myst_source_gives_the_same_copy(source, tmp_path):
    md = tmp_path / "01_chapter.md"
    jupytext.write(nbformat.read(source, as_version=4), md, fmt="md:myst")
    assert student_copy(md, tmp_path / "from_md.ipynb") == 3
    assert student_copy(source, tmp_path / "from_ipynb.ipynb") == 3
    from_md = nbformat.read(tmp_path / "from_md.ipynb", as_version=4)
    from_ipynb = nbformat.read(tmp_path / "from_ipynb.ipynb", as_version=4)
    assert [(t, s.strip()) for t, s in sources(from_md)] == [(t, s.strip()) for t, s in sources(from_ipynb)]


def test_a_book_chapter_loses_only_its_solutions_and_their_checks(tmp_path):
    from exercise_tools import BOOK
    md = sorted(BOOK.glob("10_*.md"))[0]
    original = jupytext.read(md)
    removed = student_copy(md, tmp_path / "10.ipynb")
    copy = nbformat.read(tmp_path / "10.ipynb", as_version=4)
    assert removed >= 1
    code = [(i, c) for i, c in enumerate(original.cells) if c.cell_type == "code"]
    checks = [i for i, c in code if "hide-cell" in c.metadata.get("tags", [])]
    assert checks and all(":::{admonition} Solution" in original.cells[i - 1].source for i in checks)
    assert [c.source for c in copy.cells if c.cell_type == "code"] == \
        [c.source for i, c in code if i not in checks and "solution" not in c.metadata.get("tags", [])]
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
    student_copy(source, target)
    old = target.read_bytes()

    def fail(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", fail)
    with pytest.raises(OSError, match="No space left on device") as raised:
        student_copy(source, target)
    assert raised.value.filename == str(target)
    assert target.read_bytes() == old
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
    assert "does not exist" in refused([tmp_path / "missing.md", tmp_path / "x.ipynb"], capsys)


def refused(argv, capsys, status=2) -> str:
    """Run the command, check that it fails with ``status`` and one line ``error: ...``; return that line."""
    assert handout.main([str(arg) for arg in argv]) == status
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1
    return err


def write_json(path, notebook: dict) -> None:
    """Write a notebook as JSON without nbformat's validation (which rejects malformed tags)."""
    path.write_text(json.dumps(notebook))


def raw(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def raw_code(source: str, tags) -> dict:
    """A code cell whose tags are written as given, even malformed."""
    return {"cell_type": "code", "execution_count": None, "id": nbformat.v4.new_code_cell().id,
            "metadata": {"tags": tags}, "outputs": [], "source": source}


@pytest.mark.parametrize("alias", ["same path", "absolute path", "symbolic link", "hard link"])
def test_the_source_itself_is_never_the_target(source, tmp_path, capsys, monkeypatch, alias):
    monkeypatch.chdir(tmp_path)
    before = source.read_bytes()
    target = {"same path": source.name, "absolute path": f"{tmp_path}/./{source.name}",
              "symbolic link": "link.ipynb", "hard link": "hard.ipynb"}[alias]
    if alias == "symbolic link":
        os.symlink(source.name, target)
    elif alias == "hard link":
        os.link(source.name, target)
    err = refused([source.name, target], capsys)
    assert "same file" in err and source.name in err and target in err
    with pytest.raises(ValueError, match="are the same file"):
        student_copy(source, target)
    assert source.read_bytes() == before


def test_the_same_file_is_refused_before_reading_it(tmp_path, capsys):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{ not json")
    err = refused([broken, broken], capsys)
    assert "same file" in err and "cannot read" not in err
    assert broken.read_text() == "{ not json"


def test_a_chapter_is_never_overwritten(source, tmp_path, capsys):
    other = chapter()
    tagged_markdown = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("An answer.", metadata={"tags": ["solution"]})])
    folded_only = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"{QUESTION}\n\n{ANSWER}")])
    for name, notebook in [("other.ipynb", other), ("markdown.ipynb", tagged_markdown),
                           ("folded.ipynb", folded_only)]:
        target = tmp_path / name
        nbformat.write(notebook, target)
        before = target.read_bytes()
        err = refused([source, target], capsys)
        assert str(target) in err and "with solutions" in err
        with pytest.raises(ValueError, match="notebook with solutions, not a student's copy"):
            student_copy(source, target)
        assert target.read_bytes() == before
    string_tag = tmp_path / "string_tag.ipynb"
    write_json(string_tag, raw(raw_code("x = 1", "solution")))
    assert "with solutions" in refused([source, string_tag], capsys)


def test_a_target_that_is_not_a_students_copy_is_kept(source, tmp_path, capsys):
    contents = {"text.ipynb": b"the old copy", "empty.ipynb": b"", "object.ipynb": b"{}",
                "binary.ipynb": bytes(range(256))}
    for name, content in contents.items():
        (tmp_path / name).write_bytes(content)
        err = refused([source, tmp_path / name], capsys)
        assert str(tmp_path / name) in err and "does not read as a notebook" in err
        assert (tmp_path / name).read_bytes() == content
    write_json(tmp_path / "unclosed.ipynb", raw({"cell_type": "markdown", "id": "answer", "metadata": {},
                                                 "source": ":::{admonition} Solution\n:class: dropdown\nno end"}))
    write_json(tmp_path / "malformed.ipynb", raw(raw_code("x = 1", 3)))
    for name, reason in [("unclosed.ipynb", "never closed"), ("malformed.ipynb", "tags")]:
        before = (tmp_path / name).read_bytes()
        err = refused([source, tmp_path / name], capsys)
        assert "not a student's copy" in err and reason in err
        assert (tmp_path / name).read_bytes() == before
    with pytest.raises(ValueError, match="does not read as a notebook"):
        student_copy(source, tmp_path / "text.ipynb")


def test_a_folder_as_target_is_refused_in_one_line(source, tmp_path, capsys):
    folder = tmp_path / "student.ipynb"
    folder.mkdir()
    err = refused([source, folder], capsys)
    assert f"target {folder} is a folder" in err
    with pytest.raises(ValueError, match="is a folder"):
        student_copy(source, folder)
    assert list(folder.iterdir()) == []


def test_an_unchanged_copy_nclab_wrote_is_replaced(source, tmp_path, capsys):
    target = tmp_path / "student.ipynb"
    student_copy(source, target)
    resaved = nbformat.read(target, as_version=4)       # saved again as Jupyter does: ids, metadata kept
    resaved.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(resaved, target)
    edited = chapter()
    edited.cells[0].source = "# 1. A chapter, revised"
    nbformat.write(edited, source)
    assert handout.main([str(source), str(target)]) == 0
    assert capsys.readouterr().out == f"{target}: 3 solution(s) removed\n"
    assert nbformat.read(target, as_version=4).cells[0].source == "# 1. A chapter, revised"
    assert student_copy(source, target) == 3                        # and the copy it wrote, again


def students_work(notebook) -> None:
    """What a student does to a copy: answers a skeleton."""
    notebook.cells[3].source = SKELETON.replace("raise NotImplementedError", "return labels  # my answer")


def notebook_with_an_added_cell(notebook) -> None:
    notebook.cells.append(nbformat.v4.new_markdown_cell("My notes."))


def notebook_with_outputs(notebook) -> None:
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", text="a run's output\n")]


@pytest.mark.parametrize("change", [students_work, notebook_with_an_added_cell, notebook_with_outputs])
def test_a_copy_changed_since_nclab_wrote_it_is_kept(source, tmp_path, capsys, change):
    target = tmp_path / "student.ipynb"
    student_copy(source, target)
    notebook = nbformat.read(target, as_version=4)
    change(notebook)
    nbformat.write(notebook, target)
    before = target.read_bytes()
    err = refused([source, target], capsys)
    assert str(target) in err and "changed since nclab wrote it" in err
    with pytest.raises(ValueError, match="changed since nclab wrote it"):
        student_copy(source, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_chapter.ipynb", "student.ipynb"]


def test_a_notebook_nclab_did_not_write_is_kept(source, tmp_path, capsys):
    target = tmp_path / "student.ipynb"
    write_json(target, raw(raw_code("old = 1", "nosolution")))      # no solutions, but not nclab's copy
    unmarked = tmp_path / "unmarked.ipynb"
    student_copy(source, unmarked)
    notebook = nbformat.read(unmarked, as_version=4)
    del notebook.metadata["nclab"]                                  # a copy with its mark removed
    nbformat.write(notebook, unmarked)
    for path in (target, unmarked):
        before = path.read_bytes()
        err = refused([source, path], capsys)
        assert str(path) in err and "not a student's copy written by nclab" in err
        assert path.read_bytes() == before


@pytest.mark.parametrize("chapter_name", ["11_study.ipynb", "teaching.ipynb"])
def test_a_chapter_without_exercises_is_never_overwritten(source, tmp_path, capsys, chapter_name):
    book = os.path.join(os.path.dirname(__file__), os.pardir, "book")
    target = tmp_path / chapter_name
    with open(os.path.join(book, chapter_name), "rb") as f:
        target.write_bytes(f.read())
    before = target.read_bytes()
    err = refused([source, target], capsys)
    assert str(target) in err and "refusing to overwrite it" in err
    assert target.read_bytes() == before


def test_a_symbolic_link_as_target_is_refused(source, tmp_path, capsys):
    (tmp_path / "elsewhere.ipynb").write_text("the student's own file")
    os.symlink("elsewhere.ipynb", tmp_path / "student.ipynb")
    dangling = tmp_path / "dangling.ipynb"
    os.symlink("missing.ipynb", dangling)
    for link in (tmp_path / "student.ipynb", dangling):
        err = refused([source, link], capsys)
        assert f"target {link} is a symbolic link" in err
        assert os.path.islink(link)
    assert (tmp_path / "elsewhere.ipynb").read_text() == "the student's own file"
    assert not (tmp_path / "missing.ipynb").exists()


def a_file_moved_in_before_the_rename(monkeypatch, target, content: bytes) -> None:
    """Make the write of the copy find ``content`` moved to ``target`` after the last check, just before the rename."""
    real = handout._write_atomically

    def moved_in_meanwhile(path, *args, **kwargs):
        mine = target.with_name("mine.tmp")
        mine.write_bytes(content)
        os.replace(mine, target)   # the user's own file, moved into place
        real(path, *args, **kwargs)
    monkeypatch.setattr(handout, "_write_atomically", moved_in_meanwhile)


def test_a_file_moved_to_a_new_target_during_the_write_is_kept(source, tmp_path, monkeypatch):
    target = tmp_path / "student.ipynb"
    a_file_moved_in_before_the_rename(monkeypatch, target, b"the student's answers")
    with pytest.raises(ValueError, match=f"target {target} exists and does not read as a notebook"):
        student_copy(source, target)
    assert target.read_bytes() == b"the student's answers"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_chapter.ipynb", "student.ipynb"]


def test_a_file_appearing_at_the_last_instant_is_kept(source, tmp_path, monkeypatch):
    target = tmp_path / "student.ipynb"
    real = handout._link_new

    def appears_at_the_link(src, dst):
        dst.write_bytes(b"the student's answers")
        real(src, dst)
    monkeypatch.setattr(handout, "_link_new", appears_at_the_link)
    with pytest.raises(ValueError, match=f"target {target} appeared while the copy was written; it is kept"):
        student_copy(source, target)
    assert target.read_bytes() == b"the student's answers"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_chapter.ipynb", "student.ipynb"]


def test_a_file_moved_over_an_unchanged_copy_during_the_write_is_kept(source, tmp_path, monkeypatch):
    target = tmp_path / "student.ipynb"
    student_copy(source, target)
    answered = nbformat.read(target, as_version=4)
    students_work(answered)
    a_file_moved_in_before_the_rename(monkeypatch, target, nbformat.writes(answered).encode())
    with pytest.raises(ValueError, match=f"target {target} has been changed since nclab wrote it"):
        student_copy(source, target)
    assert nbformat.read(target, as_version=4).cells[3].source == answered.cells[3].source
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_chapter.ipynb", "student.ipynb"]


def test_an_unchanged_copy_is_replaced_where_folders_cannot_be_swapped(source, tmp_path, monkeypatch):
    target = tmp_path / "student.ipynb"
    student_copy(source, target)
    monkeypatch.setattr(handout, "_exchange", os_error(errno.EINVAL))
    edited = chapter()
    edited.cells[0].source = "# 1. A chapter, revised"
    nbformat.write(edited, source)
    assert student_copy(source, target) == 3
    assert nbformat.read(target, as_version=4).cells[0].source == "# 1. A chapter, revised"
    answered = nbformat.read(target, as_version=4)
    students_work(answered)
    a_file_moved_in_before_the_rename(monkeypatch, target, nbformat.writes(answered).encode())
    with pytest.raises(ValueError, match="has been changed since nclab wrote it"):
        student_copy(source, target)
    assert nbformat.read(target, as_version=4).cells[3].source == answered.cells[3].source
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_chapter.ipynb", "student.ipynb"]


def os_error(number: int):
    def fail(*args, **kwargs):
        raise OSError(number, os.strerror(number))
    return fail


@pytest.mark.parametrize("number, where", [(errno.EROFS, "mkstemp"), (errno.ENOSPC, "fsync"),
                                           (errno.EACCES, "link")])
def test_a_failed_write_is_one_line_naming_the_target(source, tmp_path, capsys, monkeypatch, number, where):
    before = source.read_bytes()
    target = tmp_path / "student.ipynb"
    monkeypatch.setattr(_files.tempfile if where == "mkstemp" else _files.os, where, os_error(number))
    err = refused([source, target], capsys, status=1)
    assert err == f"error: cannot write {target}: {os.strerror(number)}\n"
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_chapter.ipynb"]


def test_real_write_failures_are_one_line(source, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = source.read_bytes()
    long_name = "a" * 300 + ".ipynb"
    err = refused([source.name, long_name], capsys, status=1)
    assert err.startswith(f"error: cannot write {long_name}: {os.strerror(errno.ENAMETOOLONG)}")
    (tmp_path / "notes").write_text("a file, not a folder")
    err = refused([source.name, "notes/student.ipynb"], capsys, status=1)
    assert err == f"error: cannot write notes/student.ipynb: {os.strerror(errno.ENOTDIR)}: notes\n"
    with pytest.raises(NotADirectoryError, match="notes"):
        student_copy(source.name, "notes/student.ipynb")
    assert source.read_bytes() == before and (tmp_path / "notes").read_text() == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_chapter.ipynb", "notes"]


def test_the_copy_has_the_usual_permissions(source, tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    target = tmp_path / "student.ipynb"
    student_copy(source, target)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_tags_written_as_one_string_are_one_tag(tmp_path):
    write_json(tmp_path / "chapter.ipynb", raw(raw_code("kept = 1", "nosolution"),
                                               raw_code("answer = 2", "solution"),
                                               raw_code("also_kept = 3", ["hide-cell", "nosolution"])))
    assert student_copy(tmp_path / "chapter.ipynb", tmp_path / "student.ipynb") == 1
    copy = nbformat.read(tmp_path / "student.ipynb", as_version=4)
    assert [(c.source, c.metadata.tags) for c in copy.cells] == [("kept = 1", "nosolution"),
                                                                ("also_kept = 3", ["hide-cell", "nosolution"])]
    write_json(tmp_path / "malformed.ipynb", raw(raw_code("x = 1", {"solution": True})))
    with pytest.raises(ValueError, match=r"cell 1 of .*malformed\.ipynb: its metadata 'tags' must be a list"):
        student_copy(tmp_path / "malformed.ipynb", tmp_path / "other.ipynb")
    assert not (tmp_path / "other.ipynb").exists()


def test_docstring_examples():
    result = doctest.testmod(handout, optionflags=doctest.ELLIPSIS, report=False)
    assert result.attempted >= 3 and result.failed == 0
