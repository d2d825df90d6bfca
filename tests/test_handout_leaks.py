"""A student's copy of a chapter, executed, shows no answer: no solution value in its outputs or its text.

The solution values of a chapter come from the full chapter, not from the copy: the numbers of its
folded Solution admonitions and the numbers printed by its solution and hidden check cells, as
`make book` executed them (the book's jupyter-cache, when it holds this exact code and is newer
than the package; else the chapter is executed here). Numbers a student sees anyway are not
answers: those of the prose outside the solutions and of the visible code cells, their source and
their outputs. Only numbers with at least three significant digits count (``0.0224``, ``4.39``,
``4563``), compared as printed (trailing zeros dropped).

Every chapter's copy is then executed, two kernels at a time, in the quick profile with the
kernel-free figures; chapters that read the quick sweep get it from the ``quick_sweeps`` fixture, which
trains it at most once per session (after `make book`, never). The copy must run without an error
and no solution value may appear in its text outputs or its markdown.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from markdown_it.renderer import RendererHTML
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.mdit import create_md_parser
from nbclient import NotebookClient

from nclab.exercises.handout import student_copy
from test_book import BOOK, CHAPTERS, JUPYTER_CACHE, cached_execution, error_outputs

pytestmark = pytest.mark.slow

MYST = create_md_parser(MdParserConfig(enable_extensions={"colon_fence", "dollarmath", "amsmath"}), RendererHTML)
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?!\w|\.\d)")
HIDDEN = {"hide-cell", "solution"}          # the tags of cells that hold or check an answer
TEXT_TYPES = ("text/plain", "text/markdown", "text/latex")
WORKERS = 2                                 # kernels at a time: the machine the book targets has two cores


def has_solutions(md: Path) -> bool:
    """Whether a chapter has a solution: a code cell tagged ``solution`` or a folded Solution admonition."""
    return any("solution" in c.metadata.get("tags", []) if c.cell_type == "code" else
               c.cell_type == "markdown" and bool(solution_blocks(c.source)[0]) for c in jupytext.read(md).cells)


def solution_blocks(markdown: str) -> tuple[list[str], str]:
    """The folded Solution admonitions of a markdown text (their bodies), and the text without them."""
    lines = markdown.splitlines()
    solutions, drop = [], set()
    for token in MYST.parse(markdown):
        if token.type in ("colon_fence", "fence") and token.info.split() == ["{admonition}", "Solution"] \
                and re.search(r"^:class:.*\bdropdown\b", token.content, re.M):
            solutions.append(token.content)
            drop.update(range(*token.map))
    return solutions, "\n".join(line for i, line in enumerate(lines) if i not in drop)


def numbers(text: str) -> set[str]:
    """The numbers of a text with three or more significant digits, as printed less trailing zeros."""
    found = set()
    for token in NUMBER.findall(text):
        if "." in token:
            token = token.rstrip("0").rstrip(".")
        if len(token.replace(".", "").lstrip("0")) >= 3:
            found.add(token)
    return found


def text_outputs(cell) -> str:
    """What a code cell printed or displayed as text (HTML only where there is no plain text, tags and images out)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        data = out.get("data", {})
        parts += [data[kind] for kind in TEXT_TYPES if kind in data]
        if "text/html" in data and "text/plain" not in data:
            page = re.sub(r"data:[^\"'\s]+", " ", data["text/html"])
            parts.append(html.unescape(re.sub(r"<[^>]+>", " ", page)))
    return "\n".join(part if isinstance(part, str) else "".join(part) for part in parts)


def solution_values(full) -> dict[str, str]:
    """The answers of an executed chapter: each number, and where it comes from; numbers a student sees are left out."""
    answers, seen = {}, set()
    for index, cell in enumerate(full.cells):
        where = f"cell {index + 1} of the chapter"
        if cell.cell_type == "markdown":
            solutions, rest = solution_blocks(cell.source)
            seen |= numbers(rest)
            for value in numbers("\n".join(solutions)):
                answers.setdefault(value, f"a Solution in {where}")
        elif cell.cell_type == "code" and HIDDEN & set(cell.metadata.get("tags", [])):
            for value in numbers(text_outputs(cell)):
                answers.setdefault(value, f"the output of hidden {where}")
        elif cell.cell_type == "code":
            seen |= numbers(cell.source) | numbers(text_outputs(cell))
    return {value: where for value, where in answers.items() if value not in seen}


def leaks(full, copy) -> list[str]:
    """Every solution value of ``full`` that the executed student's ``copy`` shows, and where."""
    answers = solution_values(full)
    found = []
    for index, cell in enumerate(copy.cells):
        shown = cell.source if cell.cell_type == "markdown" else text_outputs(cell) if cell.cell_type == "code" else ""
        for value in sorted(numbers(shown) & answers.keys()):
            found.append(f"cell {index + 1} of the copy shows {value}, from {answers[value]}")
    return found


# The checker on hand-made notebooks ----------------------------------------------------------

def _nb(*cells):
    return nbformat.v4.new_notebook(cells=list(cells))


def _code(source: str, printed: str, tags=()):
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    return cell


QUESTION = "**(core)** For K = 5 and p* = 0.92, which δ and which margin? Start from 0.125."
ANSWER = ":::{admonition} Solution\n:class: dropdown\nδ = 0.1 and m* = log 46 ≈ 3.8286.\n:::"
FULL = _nb(nbformat.v4.new_markdown_cell(f"{QUESTION}\n\n{ANSWER}"),
           _code("print(f'{delta:.4f} {margin:.4f} {margin_10:.4f}')", "0.1000 3.8286 4.3944\n", tags=["hide-cell"]),
           _code("print(loss)", "loss 0.1234 after 125 steps\n"))


def test_the_leak_check_passes_a_copy_that_shows_only_what_the_chapter_shows():
    assert solution_values(FULL) == {"3.8286": "a Solution in cell 1 of the chapter",
                                     "4.3944": "the output of hidden cell 2 of the chapter"}
    copy = _nb(nbformat.v4.new_markdown_cell(QUESTION), _code("print(loss)", "loss 0.1234 after 125 steps\n"))
    assert leaks(FULL, copy) == []


def test_the_leak_check_finds_an_answer_printed_by_a_kept_check_or_left_in_the_text():
    printed = _nb(nbformat.v4.new_markdown_cell(QUESTION),
                  _code("print(f'{margin_10:.4f}, {margin:.5f}')", "4.3944, 3.82860\n", tags=["hide-cell"]))
    assert leaks(FULL, printed) == ["cell 2 of the copy shows 3.8286, from a Solution in cell 1 of the chapter",
                                    "cell 2 of the copy shows 4.3944, from the output of hidden cell 2 of the chapter"]
    unstripped = _nb(nbformat.v4.new_markdown_cell(f"{QUESTION}\n\nThe answer: m* ≈ 3.8286."))
    assert leaks(FULL, unstripped) == ["cell 1 of the copy shows 3.8286, from a Solution in cell 1 of the chapter"]


# The book's chapters -------------------------------------------------------------------------

SOLVED = [md for md in CHAPTERS if has_solutions(md)]


def _book_seconds() -> dict[str, float]:
    """How long `make book` took to execute each chapter, by name (what its jupyter-cache recorded)."""
    if not (JUPYTER_CACHE / "global.db").is_file():
        return {}
    from jupyter_cache import get_cache

    return {Path(r.uri).stem: float((r.data or {}).get("execution_seconds", 0))
            for r in get_cache(str(JUPYTER_CACHE)).list_cache_records()}


async def _execute(notebooks: dict) -> dict:
    """Execute the notebooks in place, ``WORKERS`` kernels at a time, in the book's folder.

    Returns why a notebook could not be executed (a kernel that died or did not start), by its key.
    """
    slots = asyncio.Semaphore(WORKERS)

    async def one(key, nb):
        async with slots:
            start = time.perf_counter()
            try:
                await NotebookClient(nb, timeout=600, startup_timeout=300, kernel_name="python3",
                                     allow_errors=True, resources={"metadata": {"path": str(BOOK)}}).async_execute()
            finally:
                print(f"{' '.join(key)}: {time.perf_counter() - start:.0f} s", flush=True)

    outcomes = await asyncio.gather(*(one(key, nb) for key, nb in notebooks.items()), return_exceptions=True)
    return {key: f"{type(e).__name__}: {e}" for key, e in zip(notebooks, outcomes) if isinstance(e, BaseException)}


@pytest.fixture(scope="module")
def executed(quick_sweeps, tmp_path_factory, request):
    """For each selected chapter: its full execution, its student's copy executed, and what failed."""
    start = time.perf_counter()
    env, _, _ = quick_sweeps.prepare({}, by="test_handout_leaks")
    folder = tmp_path_factory.mktemp("handouts")
    selected = [item.callspec.params["md"] for item in request.session.items
                if item.originalname == "test_the_students_copy_runs_and_shows_no_answer"]
    full, copies, to_run = {}, {}, {}
    for md in selected:
        full[md.stem] = cached_execution(md)
        student_copy(md, folder / f"{md.stem}.ipynb")
        copies[md.stem] = nbformat.read(folder / f"{md.stem}.ipynb", as_version=4)
    for md in selected:
        to_run[md.stem, "copy"] = copies[md.stem]
        if full[md.stem] is None:                   # `make book` did not run this code: run it here
            full[md.stem] = to_run[md.stem, "chapter"] = jupytext.read(md)
    # The slowest first (as long as the book took for the chapter), so that the kernels finish together.
    seconds = _book_seconds()
    to_run = dict(sorted(to_run.items(), key=lambda item: -seconds.get(item[0][0], 0)))
    with pytest.MonkeyPatch.context() as patch:
        # The kernel-free figures: a live δ explorer can leave this headless client waiting, with the
        # kernel idle, until the cell timeout (see tests/test_colab_like.py); the quick checks' static
        # form shows the question and its options only, as the site does.
        for name, value in {**env, "NCLAB_STATIC": "1", "NCLAB_PROGRESS": "0"}.items():
            patch.setenv(name, value)
        failed = asyncio.run(_execute(to_run))
    for (stem, what), nb in to_run.items():            # kept for a look when a test fails
        nbformat.write(nb, folder / f"{stem}.{what}.executed.ipynb")
    print(f"\nexecuted {len(copies)} student copies and {len(to_run) - len(copies)} chapters "
          f"in {time.perf_counter() - start:.0f} s, into {folder}")
    return {stem: (full[stem], copies[stem], {what: failed[key, what] for key, what in failed if key == stem})
            for stem in copies}


def test_every_chapter_with_exercises_has_its_copy_checked():
    with_exercises = [md for md in CHAPTERS if "nc.exercises." in md.read_text()]
    assert len(with_exercises) >= 8 and set(with_exercises) <= set(SOLVED)


@pytest.mark.parametrize("md", SOLVED, ids=lambda p: p.stem)
def test_the_students_copy_runs_and_shows_no_answer(executed, md):
    full, copy, failed = executed[md.stem]
    assert not failed, f"{md.name}: could not execute {failed}"
    assert not error_outputs(full), f"{md.name} ran with errors: {error_outputs(full)}"
    assert not error_outputs(copy), f"the student's copy of {md.name} ran with errors: {error_outputs(copy)}"
    assert solution_values(full), f"{md.name}: no solution value to look for"
    found = leaks(full, copy)
    assert not found, f"the student's copy of {md.name} shows answers:\n" + "\n".join(found)
