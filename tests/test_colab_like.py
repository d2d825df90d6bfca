"""Every chapter notebook runs as Colab runs it: from an installed wheel, in an empty folder, on a fresh machine.

The package is built into a wheel and installed (not editable) into a separate folder, which is put
first on the kernel's path; each paired ``book/*.ipynb`` is copied alone into an empty temporary
folder outside the repository and executed top to bottom with an empty result cache and the default
profile. The published results are fetched by URL, pointed here at the repository's ``results/``
through a file URL. So a notebook that needs a file of the repository, or a module missing from the
wheel, fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("[0-9]*.ipynb"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel of this checkout, installed into a folder of its own; returns that folder."""
    base = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(base / "dist"), str(ROOT)],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (base / "dist").glob("nclab-*.whl")
    site = base / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, timeout=600)
    return site


@pytest.fixture(scope="module")
def timings():
    measured: dict[str, float] = {}
    yield measured
    if measured:
        print("\n'Run all' of each notebook, installed wheel, empty cache, default profile:")
        for name, seconds in measured.items():
            print(f"  {name:32s} {seconds:7.1f} s")
        out = os.environ.get("NCLAB_COLAB_TIMES")
        if out:
            Path(out).write_text(json.dumps(measured, indent=1))


def test_the_wheel_holds_every_module(installed):
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "nclab").rglob("*.py")}
    shipped = {p.relative_to(installed).as_posix() for p in (installed / "nclab").rglob("*.py")}
    assert source == shipped


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_runs_from_the_wheel_in_an_empty_folder(notebook, installed, timings, tmp_path, monkeypatch):
    folder = tmp_path / "colab"
    folder.mkdir()
    shutil.copy(notebook, folder / notebook.name)
    for name in ("NCLAB_PROFILE", "NCLAB_RESULTS", "NCLAB_STATIC", "NCLAB_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(installed))
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))          # a fresh machine: nothing cached
    monkeypatch.setenv("NCLAB_RESULTS_URL", (ROOT / "results").as_uri())  # stands in for the repository's URL
    monkeypatch.setenv("NCLAB_PROGRESS", "0")
    nb = nbformat.read(folder / notebook.name, as_version=4)
    check = nbformat.v4.new_code_cell(
        "import nclab, os\n"
        f"assert nclab.__file__.startswith({str(installed)!r}), nclab.__file__\n"
        f"assert os.listdir('.') == [{notebook.name!r}], os.listdir('.')")
    nb.cells.insert(0, check)
    start = time.perf_counter()
    NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    timings[notebook.stem] = time.perf_counter() - start
