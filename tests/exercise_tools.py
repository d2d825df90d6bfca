"""What the exercise tests share: the solution cells of a chapter, run as the book runs them."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import jupytext

BOOK = Path(__file__).resolve().parents[1] / "book"
SOLUTION_TAG = "solution"


def chapter(number: int) -> Path:
    """The source of chapter ``number`` (book/NN_*.md)."""
    (path,) = BOOK.glob(f"{number:02d}_*.md")
    return path


def solution_cells(number: int) -> list[str]:
    """The code of every cell tagged ``solution`` in chapter ``number``, in order."""
    return [c.source for c in jupytext.read(chapter(number)).cells
            if c.cell_type == "code" and SOLUTION_TAG in c.metadata.get("tags", [])]


def run_solutions(number: int) -> dict:
    """Execute chapter ``number``'s solution cells (after ``import nclab as nc``); their namespace.

    The cells' own checker calls print their verdicts; those are swallowed here.
    """
    namespace: dict = {}
    exec("import numpy as np\nimport torch\nimport nclab as nc", namespace)
    with contextlib.redirect_stdout(io.StringIO()):
        for source in solution_cells(number):
            exec(compile(source, f"<chapter {number} solution>", "exec"), namespace)
    return namespace
