"""The book: every chapter executes, every chapter's Colab notebook matches its source."""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
# myst-nb's execution cache of `make book` (`execute_notebooks: cache` in _config.yml).
JUPYTER_CACHE = ROOT / "_build" / ".jupyter_cache"
# What a chapter's execution depends on besides its own code cells, which the cache's key covers.
EXECUTION_INPUTS = [ROOT / "nclab", ROOT / "results"]


def toc_files() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [entry["file"] for entry in part["chapters"]]
    return [ROOT / f"{f}.md" for f in files]


def is_notebook(path: Path) -> bool:
    return path.read_text().startswith("---\njupytext:")


CHAPTERS = [p for p in toc_files() if is_notebook(p)]


def cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_toc_lists_existing_files_and_chapters_are_numbered():
    for path in toc_files():
        assert path.exists(), f"_toc.yml lists {path.relative_to(ROOT)}, which does not exist"
    # every notebook is a numbered chapter, but the teachers' page (its tables are computed)
    assert CHAPTERS and all(re.match(r"\d\d_", p.name) or p.name == "teaching.md" for p in CHAPTERS)


def check_pair(md: Path) -> None:
    ipynb = md.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing: run `make sync`"
    source = jupytext.read(md)
    paired = nbformat.read(ipynb, as_version=4)
    assert cells(source) == cells(paired), f"{ipynb.name} differs from {md.name}: run `make sync`"
    for cell in paired.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{ipynb.name} holds outputs; commit it stripped (`make sync`)"


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_colab_notebook_is_paired_with_its_source(md):
    check_pair(md)


def test_pairing_check_catches_an_edit(tmp_path):
    md = tmp_path / CHAPTERS[0].name
    md.write_text(CHAPTERS[0].read_text() + "\nOne more sentence.\n")
    (tmp_path / CHAPTERS[0].with_suffix(".ipynb").name).write_text(
        CHAPTERS[0].with_suffix(".ipynb").read_text())
    with pytest.raises(AssertionError, match="differs"):
        check_pair(md)


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_first_code_cell_installs_nclab_from_the_configured_repository(md):
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    first = next(c for c in jupytext.read(md).cells if c.cell_type == "code")
    assert "remove-cell" in first.metadata.get("tags", []), "the install cell must be hidden"
    assert "import nclab" in first.source and "except ImportError" in first.source
    assert f"git+{url}" in first.source


def newest_input() -> float:
    """The latest modification time of a file a chapter's execution depends on (the package, the results)."""
    return max((p.stat().st_mtime for top in EXECUTION_INPUTS
                for p in ([top] if top.is_file() else top.rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts), default=0.0)


def cached_execution(md: Path):
    """The execution of exactly this chapter's current code that `make book` left in its cache, else None.

    myst-nb keys its jupyter-cache records by the notebook's code cells and kernelspec; a record is
    only stored when the whole notebook ran without an error. It is used only if it is newer than
    every file of the package and of ``results/`` (else the package changed since the book was
    built) and only in the profile the book is built in.
    """
    if os.environ.get("NCLAB_PROFILE", "quick") != "quick" or not (JUPYTER_CACHE / "global.db").is_file():
        return None
    from jupyter_cache import get_cache

    cache = get_cache(str(JUPYTER_CACHE))
    nb = jupytext.read(md)
    try:
        record = cache.match_cache_notebook(nb)
    except KeyError:
        return None
    created = record.created if record.created.tzinfo else record.created.replace(tzinfo=datetime.timezone.utc)
    if created.timestamp() < newest_input():
        return None
    _, executed = cache.merge_match_into_notebook(nb)
    return executed


def error_outputs(nb) -> list[str]:
    return [f"cell {i}: {out.get('ename')}: {out.get('evalue')}" for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" for out in cell.get("outputs", []) if out.get("output_type") == "error"]


@pytest.mark.slow
@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_executes(md, monkeypatch, request):
    """Every chapter runs top to bottom in a fresh kernel, in the quick profile, without an error.

    When `make book` has already executed exactly the chapter's current code (myst-nb's
    jupyter-cache in ``_build/.jupyter_cache``, matched through ``jupyter_cache``'s
    ``match_cache_notebook``, newer than every file of the package and of ``results/``), that
    execution counts: its outputs are checked for errors and the chapter is not run again.
    Otherwise it runs here through nbclient, with live widgets (the book runs with
    ``NCLAB_STATIC=1``; every notebook also runs with live widgets in ``test_colab_like.py``), and
    a chapter that reads the quick sweep first gets it from the ``quick_sweeps`` fixture, which
    trains it at most once per session.
    """
    executed = cached_execution(md)
    if executed is not None:
        print(f"{md.name}: the execution `make book` cached is current; checked its outputs")
        errors = error_outputs(executed)
        assert not errors, f"{md.name} ran with errors in the book build: {errors}"
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code"), f"{md.name} has no outputs"
        return
    monkeypatch.setenv("NCLAB_PROFILE", os.environ.get("NCLAB_PROFILE", "quick"))
    monkeypatch.setenv("NCLAB_STATIC", "0")
    monkeypatch.setenv("NCLAB_PROGRESS", "0")
    nb = jupytext.read(md)
    if os.environ["NCLAB_PROFILE"] == "quick" and any("book_sweep(" in c.source for c in nb.cells):
        request.getfixturevalue("quick_sweeps").prepare({}, by=f"test_chapter_executes[{md.stem}]")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(md.parent)}}).execute()
