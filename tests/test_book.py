"""The book: every chapter executes, every chapter's Colab notebook matches its source."""

from __future__ import annotations

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
    assert CHAPTERS and all(re.match(r"\d\d_", p.name) for p in CHAPTERS)


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


@pytest.mark.slow
@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_executes(md, monkeypatch):
    """Run the chapter top to bottom in a fresh kernel, in the quick profile, with live widgets."""
    monkeypatch.setenv("NCLAB_PROFILE", os.environ.get("NCLAB_PROFILE", "quick"))
    monkeypatch.setenv("NCLAB_STATIC", "0")
    monkeypatch.setenv("NCLAB_PROGRESS", "0")
    nb = jupytext.read(md)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(md.parent)}}).execute()
