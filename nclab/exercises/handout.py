"""The student's copy of a chapter: the same notebook without its solutions.

A chapter shows every exercise with its solution: the skeleton cell (``raise NotImplementedError``),
the checker cell, and a folded code cell tagged ``solution``; every question is followed by a
folded admonition titled "Solution". :func:`student_copy` removes the solution cells and the
solution admonitions and keeps everything else as it is, so a student starts from the skeletons.
It reads the Colab notebook (``book/NN_*.ipynb``) or the chapter's MyST source (``book/NN_*.md``)
and writes an ``.ipynb``. From the command line::

    python -m nclab.exercises.handout book/03_training_dynamics.md handout/03_training_dynamics.ipynb

The copy never destroys data. The command refuses a target that is the source itself (the same
path, a symbolic link to it or a hard link of it) before reading anything, and it replaces an
existing target only when nclab wrote it and nobody has changed it since: every copy carries, in
its notebook metadata (``nclab.handout_sha256``), the SHA-256 of its cells (type, source,
outputs, attachments), and a target whose cells no longer give that hash (a student's answers,
outputs of a run) or that has no such mark (a chapter, with or without exercises, any other
notebook) is refused, as are a symbolic link, a folder and a file that does not read as a
notebook. To write a fresh copy over such a file, move it away first. The copy is written to a
temporary file beside the target, with the usual permissions (``0o666`` less the umask), and put
in its place without ever replacing a file that was not checked: a new target gets its name by a
hard link (a file moved there meanwhile is kept and refused), an unchanged copy is swapped with it
atomically and checked again once swapped out (swapped back and refused unless it is that copy).
A failed write leaves the old file as it was. A refused argument is one line ``error: ...`` and exit status 2; a
failed write (a read-only or full disk, a name too long) is one line naming the path and exit
status 1.

A question's solution may be followed by hidden code cells that check it (tagged ``hide-cell``):
they compute, print and assert the answer, so they go with the solution. Every ``hide-cell`` code
cell that follows a markdown cell which lost a Solution admonition, up to the next other cell, is
removed; the exercise checkers, which say only right, wrong or not attempted, stay.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import jupytext
import nbformat

from nclab._files import _exchange, _link_new, _located, _write_atomically

__all__ = ["SOLUTION_TAG", "CHECK_TAG", "student_copy", "remove_solution_admonitions"]

SOLUTION_TAG = "solution"
CHECK_TAG = "hide-cell"  # a hidden code cell right after a question's solution checks that answer
_MARK = "nclab"  # the notebook metadata entry of a copy nclab wrote: {"handout_sha256": hash of its cells}
_MARK_HASH = "handout_sha256"

# The opening line of an admonition directive titled "Solution", fenced by colons or backticks.
_OPENING = re.compile(r"^(?P<indent>\s*)(?P<fence>:{3,}|`{3,})\{admonition\}\s+Solution\s*$")
_OPTION = re.compile(r"^\s*:(?P<name>[A-Za-z_-]+):\s*(?P<value>.*)$")


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` is a closing fence for a block opened with ``fence``."""
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def remove_solution_admonitions(text: str) -> tuple[str, int]:
    """Remove every folded ``Solution`` admonition from the text of a markdown cell.

    A block is removed when its directive is ``{admonition}`` with the title ``Solution`` and its
    ``:class:`` option contains ``dropdown``; other admonitions (a "Solution" box that is not
    folded, a note, a hint) are kept.

    Parameters
    ----------
    text : str
        The markdown source of one cell.

    Returns
    -------
    text : str
        The source without the solution blocks (and without the blank line that followed each).
    removed : int
        How many blocks were removed.

    Raises
    ------
    ValueError
        A solution admonition is opened and never closed.

    Examples
    --------
    >>> source = "Question.\\n\\n:::{admonition} Solution\\n:class: dropdown\\nThe answer.\\n:::\\n\\nMore."
    >>> remove_solution_admonitions(source)
    ('Question.\\n\\nMore.', 1)
    """
    lines = text.split("\n")
    kept: list[str] = []
    removed = 0
    i = 0
    while i < len(lines):
        opening = _OPENING.match(lines[i])
        if not opening:
            kept.append(lines[i])
            i += 1
            continue
        fence = opening["fence"]
        end = next((j for j in range(i + 1, len(lines)) if _closes(lines[j], fence)), None)
        if end is None:
            raise ValueError(f"the admonition 'Solution' opened on line {i + 1} of a markdown cell "
                             f"is never closed (expected a line {fence!r})")
        options = {}
        for line in lines[i + 1:end]:
            option = _OPTION.match(line)
            if not option:
                break
            options[option["name"]] = option["value"]
        if "dropdown" not in options.get("class", "").split():
            kept.extend(lines[i:end + 1])
            i = end + 1
            continue
        removed += 1
        i = end + 1
        if i < len(lines) and not lines[i].strip() and (not kept or not kept[-1].strip()):
            i += 1  # the block stood between two blank lines: keep one of them
    return ("\n".join(kept).strip("\n") if removed else text), removed


def _first_line(error: Exception) -> str:
    """The first line of ``error``'s message (a validation error runs over many lines)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _read(source: Path) -> nbformat.NotebookNode:
    """The notebook in ``source``, a ``.ipynb`` notebook or a MyST ``.md`` chapter.

    Raises
    ------
    ValueError
        ``source`` is missing, not a file, of another kind, or cannot be read as a notebook.
    """
    if not os.path.lexists(source):
        raise ValueError(f"source must be an existing .ipynb or .md notebook; {source} does not exist")
    if not os.path.isfile(source):
        raise ValueError(f"source must be a .ipynb or .md file; {source} is not a file")
    if source.suffix not in (".ipynb", ".md"):
        raise ValueError(f"source must be a .ipynb notebook or a MyST .md chapter; got {source.name}")
    try:
        if source.suffix == ".ipynb":
            return nbformat.read(source, as_version=4)
        return jupytext.read(source, fmt="md:myst")
    except Exception as error:  # nbformat and jupytext raise many kinds of errors on a bad file
        raise ValueError(f"cannot read {source} as a notebook: {_first_line(error)}") from error


def _tags(cell: nbformat.NotebookNode, where: str) -> list[str]:
    """The tags of a cell: its ``metadata.tags`` list, a single string being one tag.

    Parameters
    ----------
    cell : NotebookNode
        A cell of a notebook.
    where : str
        Which cell of which notebook, for the error message (``"3 of book/01.ipynb"``).

    Returns
    -------
    list of str
        The tags; ``"tags": "nosolution"`` is the one tag ``nosolution``, never ``solution``.

    Raises
    ------
    ValueError
        The tags are neither a list of strings nor a string.

    Examples
    --------
    >>> _tags(nbformat.from_dict({"metadata": {"tags": "nosolution"}}), "1 of chapter.ipynb")
    ['nosolution']
    """
    tags = cell.get("metadata", {}).get("tags", [])
    if isinstance(tags, str):
        return [tags]
    if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        return tags
    raise ValueError(f"cell {where}: its metadata 'tags' must be a list of strings; got {tags!r}")


def _without_solutions(notebook: nbformat.NotebookNode, origin: Path) -> tuple[list, int]:
    """The cells of ``notebook`` without its solutions, and how many solutions there were.

    Parameters
    ----------
    notebook : NotebookNode
        The chapter; the source of a markdown cell that loses an admonition is changed in place.
    origin : Path
        The notebook's file, for the error messages.

    Returns
    -------
    cells : list of NotebookNode
        Every cell but the code cells tagged ``solution``, the markdown cells left empty, and the
        code cells tagged ``hide-cell`` that follow a removed solution admonition (the answer's
        checks: every such cell up to the next cell of another kind).
    removed : int
        The solution code cells plus the solution admonitions removed (an answer's checks go with
        it and are not counted).

    Raises
    ------
    ValueError
        A cell's tags are malformed, or a solution admonition is never closed.
    """
    cells, removed = [], 0
    after_answer = False  # right after a markdown cell that lost a Solution admonition, or after its checks
    for index, cell in enumerate(notebook.cells):
        tags = _tags(cell, f"{index + 1} of {origin}") if cell.cell_type == "code" else []
        if SOLUTION_TAG in tags:
            removed += 1
            continue
        if after_answer and CHECK_TAG in tags:
            continue
        after_answer = False
        if cell.cell_type == "markdown":
            text, count = remove_solution_admonitions(cell.source)
            if count:
                removed += count
                after_answer = True
                if not text.strip():
                    continue
                cell.source = text
        cells.append(cell)
    return cells, removed


def _refuse_same_file(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Refuse a ``target`` that is ``source`` itself: the same path, a symbolic link or a hard link.

    The message names both as they were given (``ch1.ipynb`` and ``$PWD/./ch1.ipynb``).

    Raises
    ------
    ValueError
        Both arguments name one file.
    """
    try:
        same = os.path.samefile(source, target)
    except OSError:  # one of them does not exist (or cannot be reached): not one file
        same = False
    if same:
        raise ValueError(f"source {os.fspath(source)} and target {os.fspath(target)} are the same file; "
                         "the copy would overwrite the chapter with its solutions removed")


def _cells_hash(notebook: nbformat.NotebookNode) -> str:
    """The SHA-256 of a notebook's cells as a student changes them: type, source, outputs, attachments.

    Cell ids, execution counts and metadata are left out (Jupyter rewrites them on every save);
    nbformat joins split sources and outputs on reading, so a copy read back gives the hash it
    was written with.
    """
    cells = [{"cell_type": cell.get("cell_type"), "source": cell.get("source"),
              "outputs": cell.get("outputs", []), "attachments": cell.get("attachments", {})}
             for cell in notebook.cells]
    text = json.dumps(cells, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _mark(notebook: nbformat.NotebookNode) -> None:
    """Mark ``notebook`` as a copy nclab wrote, with the hash of its cells (see :func:`_cells_hash`)."""
    mark = notebook.metadata.get(_MARK)
    notebook.metadata[_MARK] = {**(mark if isinstance(mark, dict) else {}), _MARK_HASH: _cells_hash(notebook)}


def _check_unchanged_copy(existing: nbformat.NotebookNode, target: Path) -> None:
    """Refuse an existing ``target`` that nclab did not write, or that was changed since it did."""
    mark = existing.metadata.get(_MARK)
    if not isinstance(mark, dict) or _MARK_HASH not in mark:
        raise ValueError(f"target {target} is not a student's copy written by nclab (its metadata has no "
                         "nclab handout mark); refusing to overwrite it: move it away or give a new path")
    if mark[_MARK_HASH] != _cells_hash(existing):
        raise ValueError(f"target {target} has been changed since nclab wrote it (answers or outputs would be "
                         "lost); refusing to overwrite it: move it away or give a new path")


def _check_target(target: Path) -> None:
    """Refuse a ``target`` that may not be written: only a new file or an unchanged copy nclab wrote may be.

    Raises
    ------
    ValueError
        ``target`` does not end in ``.ipynb``, is a symbolic link, a folder or another file that is
        not a regular one, does not read as a notebook, is a notebook with solutions (a chapter),
        has no nclab handout mark (any other notebook), or was changed since nclab wrote it.
    """
    if target.suffix != ".ipynb":
        raise ValueError(f"target must be a .ipynb file; got {target.name}")
    if os.path.islink(target):
        raise ValueError(f"target {target} is a symbolic link; give the path of the .ipynb file to write")
    if os.path.isdir(target):
        raise ValueError(f"target {target} is a folder; give the path of the .ipynb file to write")
    if not os.path.lexists(target):
        return
    _check_existing(target, target)


def _check_existing(path: Path, target: Path) -> None:
    """Refuse the file at ``path`` (``target``, or what was swapped out of it) unless it is an unchanged copy nclab wrote."""
    if os.path.islink(path) or not os.path.isfile(path):
        raise ValueError(f"target {target} exists and is not a regular file; refusing to replace it")
    try:
        existing = nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, not a notebook, not readable
        raise ValueError(f"target {target} exists and does not read as a notebook "
                         f"({_first_line(error)}); refusing to overwrite it") from error
    try:
        tagged = any(SOLUTION_TAG in _tags(cell, f"{index + 1} of {target}")
                     for index, cell in enumerate(existing.cells))
        solutions = tagged or _without_solutions(existing, target)[1] > 0
    except ValueError as error:
        raise ValueError(f"target {target} is not a student's copy ({error}); refusing to overwrite it") from error
    if solutions:
        raise ValueError(f"target {target} is a notebook with solutions, not a student's copy; "
                         "refusing to overwrite it")
    _check_unchanged_copy(existing, target)


def _write(notebook: nbformat.NotebookNode, target: Path) -> None:
    """Write ``notebook`` to ``target`` atomically, with the umask's permissions, creating its folder.

    Raises
    ------
    OSError
        The folder or the file cannot be written; the error names the path.
    """
    text = nbformat.writes(notebook)
    if not text.endswith("\n"):
        text += "\n"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file stands where a folder of the path should be
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target.parent)) from None
    except OSError as error:
        raise _located(error, target.parent) from None
    _write_atomically(target, text.encode("utf-8"), place=_place_copy)


def _place_copy(temp: Path, target: Path) -> None:
    """Put the written copy ``temp`` at ``target``, never destroying a file that was not checked.

    :func:`_check_target` checked ``target`` an instant before, but a file may be moved there
    since. A new target gets its name without replacing anything (a hard link: a file that
    appeared meanwhile is refused, kept). An existing one, the unchanged copy checked, is swapped
    with ``temp`` in one atomic step (renameat2 RENAME_EXCHANGE) and what was swapped out is checked
    again: unless it is an unchanged copy nclab wrote, it is swapped back and refused. Where the
    file system cannot swap, the target is first renamed aside, checked there, and put back if it
    fails the check.
    """
    if not os.path.lexists(target):
        try:
            _link_new(temp, target)
        except FileExistsError:
            raise ValueError(f"target {target} appeared while the copy was written; it is kept: move it away "
                             "or give a new path") from None
        return
    try:
        _exchange(temp, target)
    except FileNotFoundError:
        if os.path.lexists(target) or not os.path.lexists(temp):
            raise
        return _place_copy(temp, target)   # the target went meanwhile: it is placed as a new one
    except OSError:   # no renameat2 on this system or file system: the target goes aside first
        aside = temp.with_name(temp.name + ".old")
        os.rename(target, aside)
        try:
            _check_existing(aside, target)
        except ValueError:
            _link_new(aside, target)   # put back: a file moved to the target meanwhile is refused
            raise
        _link_new(temp, target)
        os.unlink(aside)
        return
    try:
        _check_existing(temp, target)   # what was swapped out: the unchanged copy checked, or else
    except ValueError:
        _exchange(temp, target)   # swapped back: the file is at the target again, as it was
        raise
    os.unlink(temp)   # the old, unchanged copy


def student_copy(source: str | os.PathLike, target: str | os.PathLike) -> int:
    """Write the student's copy of a chapter: every solution removed, everything else unchanged.

    Removed are the code cells tagged ``solution`` and, inside markdown cells, the folded
    admonitions titled ``Solution`` (``:::{admonition} Solution`` with ``:class: dropdown``, up to
    its closing ``:::``) together with the ``hide-cell`` code cells right after them, which check
    the answer; a markdown cell left empty is dropped. A cell's tags given as one string
    (``"tags": "solution"``) are that one tag. The copy is written to a temporary file beside
    ``target`` and then renamed, so an error never leaves a half-written notebook; it gets the
    usual permissions (``0o666`` less the umask).

    Parameters
    ----------
    source : path-like
        A chapter notebook: the Colab ``.ipynb`` or the MyST ``.md`` source.
    target : path-like
        Where to write the student's ``.ipynb`` (its folder is created when missing). An existing
        file is replaced only when it is a copy this function wrote, unchanged since (its cells
        still give the hash in its metadata ``nclab.handout_sha256``).

    Returns
    -------
    int
        The number of solutions removed (solution code cells plus solution admonitions).

    Raises
    ------
    ValueError
        ``target`` is ``source`` itself (checked first: same path, symbolic or hard link), does
        not end in ``.ipynb``, is a symbolic link or a folder, or exists and is not an unchanged
        copy written by nclab (a chapter, a student's edited copy, any other file);
        ``source`` is missing, not a ``.ipynb`` or ``.md`` file, or cannot be read as a notebook;
        a cell's tags are malformed; or a solution admonition is never closed. Nothing is written
        then.
    OSError
        The copy cannot be written (a read-only or full disk, a name too long); the error names
        the path, and an existing ``target`` is left as it was.

    Examples
    --------
    >>> import tempfile, nbformat
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> nb = nbformat.v4.new_notebook(cells=[
    ...     nbformat.v4.new_code_cell("def f():\\n    raise NotImplementedError"),
    ...     nbformat.v4.new_code_cell("def f():\\n    return 1", metadata={"tags": ["solution"]})])
    >>> nbformat.write(nb, folder / "chapter.ipynb")
    >>> student_copy(folder / "chapter.ipynb", folder / "student.ipynb")
    1
    >>> len(nbformat.read(folder / "student.ipynb", as_version=4).cells)
    1
    >>> student_copy(folder / "chapter.ipynb", folder / "chapter.ipynb")
    Traceback (most recent call last):
    ...
    ValueError: source ... and target ... are the same file; ...
    """
    _refuse_same_file(source, target)
    source, target = Path(source), Path(target)
    _check_target(target)
    notebook = _read(source)
    notebook.cells, removed = _without_solutions(notebook, source)
    _mark(notebook)
    _check_target(target)  # again, right before the swap: the target may have changed meanwhile
    _write(notebook, target)
    return removed


def _write_failure(error: OSError, target: str) -> str:
    """The one-line message of a failed write: the target, why, and the folder that failed, if one did."""
    reason = error.strerror or _first_line(error)
    failed = error.filename
    if failed is None or os.path.dirname(os.path.abspath(failed)) == os.path.dirname(os.path.abspath(target)):
        return f"cannot write {target}: {reason}"  # the target itself, or its temporary file beside it
    return f"cannot write {target}: {reason}: {failed}"


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m nclab.exercises.handout SOURCE TARGET``.

    Returns
    -------
    int
        0 when the copy is written; 2 when an argument is refused (see :func:`student_copy`); 1
        when the write fails. Each failure is one line ``error: ...`` on standard error.
    """
    parser = argparse.ArgumentParser(prog="python -m nclab.exercises.handout",
                                     description="Write a chapter's notebook without its solutions.")
    parser.add_argument("source", help="the chapter: book/NN_name.ipynb or book/NN_name.md")
    parser.add_argument("target", help="the student's notebook to write (.ipynb); an existing file "
                                       "is replaced only when it is an unchanged copy nclab wrote")
    args = parser.parse_args(argv)
    try:
        removed = student_copy(args.source, args.target)
    except ValueError as error:
        message, status = str(error), 2
    except OSError as error:
        message, status = _write_failure(error, args.target), 1
    else:
        print(f"{args.target}: {removed} solution(s) removed")
        return 0
    print("error: " + " ".join(message.splitlines()), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
