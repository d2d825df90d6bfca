"""The student's copy of a chapter: the same notebook without its solutions.

A chapter shows every exercise with its solution: the skeleton cell (``raise NotImplementedError``),
the checker cell, and a folded code cell tagged ``solution``; every question is followed by a
folded admonition titled "Solution". :func:`student_copy` removes the solution cells and the
solution admonitions and keeps everything else as it is, so a student starts from the skeletons.
It reads the Colab notebook (``book/NN_*.ipynb``) or the chapter's MyST source (``book/NN_*.md``)
and writes an ``.ipynb``. From the command line::

    python -m nclab.exercises.handout book/03_training_dynamics.md handout/03_training_dynamics.ipynb

The numeric self-checks that follow some solutions are cells tagged ``hide-cell`` only; they stay
in the copy, where they still assert the answer. Tag such a cell ``solution`` as well to leave it
out of the student's copy.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat

__all__ = ["SOLUTION_TAG", "student_copy", "remove_solution_admonitions"]

SOLUTION_TAG = "solution"

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


def _read(source: Path) -> nbformat.NotebookNode:
    if not source.is_file():
        raise ValueError(f"source must be an existing .ipynb or .md notebook; {source} does not exist")
    if source.suffix not in (".ipynb", ".md"):
        raise ValueError(f"source must be a .ipynb notebook or a MyST .md chapter; got {source.name}")
    try:
        if source.suffix == ".ipynb":
            return nbformat.read(source, as_version=4)
        return jupytext.read(source, fmt="md:myst")
    except Exception as error:  # nbformat and jupytext raise many kinds of errors on a bad file
        raise ValueError(f"cannot read {source} as a notebook: {error}") from error


def _write_atomically(notebook: nbformat.NotebookNode, target: Path) -> None:
    """Write ``notebook`` to ``target`` so that ``target`` is either the old file or the whole new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            nbformat.write(notebook, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def student_copy(source: str | os.PathLike, target: str | os.PathLike) -> int:
    """Write the student's copy of a chapter: every solution removed, everything else unchanged.

    Removed are the code cells tagged ``solution`` and, inside markdown cells, the folded
    admonitions titled ``Solution`` (``:::{admonition} Solution`` with ``:class: dropdown``, up to
    its closing ``:::``); a markdown cell left empty is dropped. The copy is written to a temporary
    file beside ``target`` and then renamed, so an error never leaves a half-written notebook.

    Parameters
    ----------
    source : path-like
        A chapter notebook: the Colab ``.ipynb`` or the MyST ``.md`` source.
    target : path-like
        Where to write the student's ``.ipynb`` (its folder is created when missing; an existing
        file is replaced).

    Returns
    -------
    int
        The number of solutions removed (solution code cells plus solution admonitions).

    Raises
    ------
    ValueError
        ``source`` is missing, not a ``.ipynb`` or ``.md`` file, or cannot be read as a notebook;
        ``target`` does not end in ``.ipynb``; or a solution admonition is never closed. Nothing is
        written then.

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
    """
    source, target = Path(source), Path(target)
    if target.suffix != ".ipynb":
        raise ValueError(f"target must be a .ipynb file; got {target.name}")
    notebook = _read(source)
    cells, removed = [], 0
    for cell in notebook.cells:
        if cell.cell_type == "code" and SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            removed += 1
            continue
        if cell.cell_type == "markdown":
            text, count = remove_solution_admonitions(cell.source)
            if count:
                removed += count
                if not text.strip():
                    continue
                cell.source = text
        cells.append(cell)
    notebook.cells = cells
    _write_atomically(notebook, target)
    return removed


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m nclab.exercises.handout SOURCE TARGET``."""
    parser = argparse.ArgumentParser(prog="python -m nclab.exercises.handout",
                                     description="Write a chapter's notebook without its solutions.")
    parser.add_argument("source", help="the chapter: book/NN_name.ipynb or book/NN_name.md")
    parser.add_argument("target", help="the student's notebook to write (.ipynb)")
    args = parser.parse_args(argv)
    try:
        removed = student_copy(args.source, args.target)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{args.target}: {removed} solution(s) removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
