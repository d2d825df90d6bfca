"""Every chapter notebook runs as Colab runs it: from an installed wheel, in an empty folder, on a fresh machine.

The package is built into a wheel (offline: ``--no-isolation``, with the setuptools of this
environment) and installed (not editable) into a separate folder, which is put first on the
kernel's path; each paired ``book/*.ipynb`` is copied alone into an empty temporary folder outside
the repository and executed top to bottom with the default profile. The published results are
fetched by URL, pointed here at the repository's ``results/`` through a file URL. So a notebook
that needs a file of the repository, or a module missing from the wheel, fails here.

The result cache: the first chapter that trains the book's quick sweep (chapter 2) runs exactly as
on a fresh machine, with an empty cache, and its time is the cold "Run all" a reader waits for.
The other chapters that read the sweep (3, 4, 5, 9) start with a copy of that chapter's cache (the
module-scoped fixture ``cold_run``) instead of training the same 48 runs again, as they would in
one Colab session; the test asserts that they leave the copied runs untouched. Chapters that do
not read the sweep start with an empty cache.
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
# The notebooks that read the book's quick sweep; the first of them is run cold.
SWEEP_READERS = [p for p in NOTEBOOKS if "book_sweep(" in p.read_text()]
COLD = SWEEP_READERS[0] if SWEEP_READERS else None

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel of this checkout, installed into a folder of its own; returns that folder.

    Built without build isolation, with this environment's setuptools: no package index needed.
    """
    base = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                            "--outdir", str(base / "dist"), str(ROOT)],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (base / "dist").glob("nclab-*.whl")
    site = base / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, timeout=600)
    return site


@pytest.fixture(scope="module")
def timings():
    measured: dict[str, float] = {}
    how: dict[str, str] = {}
    yield measured, how
    if measured:
        print("\n'Run all' of each notebook, installed wheel, default profile:")
        for name, seconds in measured.items():
            print(f"  {name:32s} {seconds:7.1f} s  {how.get(name, '')}")
        out = os.environ.get("NCLAB_COLAB_TIMES")
        if out:
            Path(out).write_text(json.dumps(measured, indent=1))


def run_like_colab(notebook: Path, installed: Path, folder: Path, cache: Path, monkeypatch) -> float:
    """Execute a copy of ``notebook`` alone in the empty ``folder`` from the wheel, with ``cache``; returns seconds."""
    folder.mkdir()
    shutil.copy(notebook, folder / notebook.name)
    for name in ("NCLAB_PROFILE", "NCLAB_RESULTS", "NCLAB_STATIC", "NCLAB_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(installed))
    monkeypatch.setenv("NCLAB_CACHE", str(cache))
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
    return time.perf_counter() - start


def results_in(cache: Path) -> dict[str, tuple[int, int]]:
    """Each finished run of a cache, with its result's size and modification time."""
    return {p.parent.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in cache.glob("*/result.json")}


@pytest.fixture(scope="module")
def cold_run(installed, timings, quick_sweeps, tmp_path_factory) -> Path:
    """Chapter 2 (the first notebook that trains the quick sweep) run as on a fresh machine: empty folder, empty cache.

    Returns its cache, which the other notebooks that read the sweep start from.
    """
    measured, how = timings
    base = tmp_path_factory.mktemp("cold")
    cache = base / "cache"                       # a fresh machine: nothing cached
    with pytest.MonkeyPatch.context() as monkeypatch:
        seconds = run_like_colab(COLD, installed, base / "colab", cache, monkeypatch)
    measured[COLD.stem], how[COLD.stem] = seconds, "(cold: empty cache)"
    runs = len(results_in(cache))
    quick_sweeps.record(quick_sweeps.default, cache, f"test_colab_like[{COLD.stem}] (cold, by design)",
                        runs, runs, seconds)
    return cache


def test_the_wheel_holds_every_module(installed):
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "nclab").rglob("*.py")}
    shipped = {p.relative_to(installed).as_posix() for p in (installed / "nclab").rglob("*.py")}
    assert source == shipped


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_runs_from_the_wheel_in_an_empty_folder(notebook, installed, timings, quick_sweeps, tmp_path,
                                                             monkeypatch, request):
    if notebook == COLD:
        cache = request.getfixturevalue("cold_run")   # ran there, cold, once for the module
        assert len(results_in(cache)) >= 48, "the cold run did not leave the quick sweep in its cache"
        return
    measured, how = timings
    cache = tmp_path / "cache"
    if notebook in SWEEP_READERS:
        shutil.copytree(request.getfixturevalue("cold_run"), cache)
        how[notebook.stem] = f"(cache of {COLD.stem} copied in)"
    else:
        how[notebook.stem] = "(empty cache)"
    copied = results_in(cache) if cache.is_dir() else {}
    measured[notebook.stem] = run_like_colab(notebook, installed, tmp_path / "colab", cache, monkeypatch)
    now = results_in(cache) if cache.is_dir() else {}
    assert {k: now.get(k) for k in copied} == copied, "the notebook trained again runs it was given"
    if len(now) > len(copied):
        quick_sweeps.record(quick_sweeps.default, cache, f"test_colab_like[{notebook.stem}] {how[notebook.stem]}",
                            len(now), len(now) - len(copied), measured[notebook.stem])
