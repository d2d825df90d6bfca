"""The NCLAB_* variables: one parsing rule per type, read when asked, and a cache that does not
follow the working directory. Importing nclab changes no process-wide state."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nclab import bundle, data, runs, settings, widgets

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for variable in settings.VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_every_variable_the_package_reads_is_documented_here_and_on_the_api_page():
    named = {name for path in (ROOT / "nclab").rglob("*.py")
             for name in re.findall(r"NCLAB_[A-Z_]*[A-Z]", path.read_text())}
    assert named == set(settings.VARIABLES)
    api = (ROOT / "book" / "api.md").read_text()
    for variable in settings.VARIABLES:
        assert f"``{variable}``" in settings.__doc__, variable
        assert variable in api, variable
    # nothing outside settings reads the environment for them
    for path in (ROOT / "nclab").rglob("*.py"):
        if path.name != "settings.py":
            assert "os.environ.get(\"NCLAB" not in path.read_text(), path


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("Yes", True), (" ON ", True),
                                             ("0", False), ("FALSE", False), ("no", False), ("off", False)])
@pytest.mark.parametrize("variable, read", [("NCLAB_PROGRESS", settings.progress), ("NCLAB_STATIC", settings.static)])
def test_booleans(monkeypatch, variable, read, value, expected):
    monkeypatch.setenv(variable, value)
    assert read() is expected


@pytest.mark.parametrize("value", ["2", "yess", "enabled", "-1", "none"])
def test_a_bad_boolean_names_the_variable_and_its_value(monkeypatch, value):
    for variable, read in (("NCLAB_PROGRESS", settings.progress), ("NCLAB_STATIC", widgets.is_static)):
        monkeypatch.setenv(variable, value)
        with pytest.raises(ValueError, match=f"{variable} must be a boolean.*got '{value}'"):
            read()


def test_boolean_defaults(monkeypatch):
    assert settings.progress() is True and settings.static() is False
    monkeypatch.setenv("NCLAB_PROGRESS", "")   # empty is unset
    assert settings.progress() is True


def test_workers(monkeypatch):
    monkeypatch.setenv("NCLAB_WORKERS", "3")
    assert settings.workers() == runs.default_workers() == 3
    for bad in ("0", "-2", "two", "1.5", "3 4"):
        monkeypatch.setenv("NCLAB_WORKERS", bad)
        with pytest.raises(ValueError, match=f"NCLAB_WORKERS must be an integer of at least 1; got '{bad}'"):
            runs.default_workers()
    monkeypatch.delenv("NCLAB_WORKERS")
    assert settings.workers() >= 1


def test_profile(monkeypatch):
    assert runs.default_profile() == "quick"
    monkeypatch.setenv("NCLAB_PROFILE", "fashion")
    assert runs.default_profile() == "fashion"
    monkeypatch.setenv("NCLAB_PROFILE", "huge")
    with pytest.raises(ValueError, match="NCLAB_PROFILE must be one of quick, .*; got 'huge'"):
        runs.default_profile()


def test_paths_expand_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.data_root() == tmp_path / ".nclab" / "data"
    monkeypatch.setenv("NCLAB_DATA", "~/datasets")
    assert data.data_root() == tmp_path / "datasets"
    monkeypatch.setenv("NCLAB_CACHE", "~/runs")
    assert runs.cache_dir() == tmp_path / "runs"
    assert settings.results_dir() is None
    monkeypatch.setenv("NCLAB_RESULTS", "~/results")
    assert settings.results_dir() == tmp_path / "results"
    with pytest.raises(FileNotFoundError, match="NCLAB_RESULTS is set"):
        bundle.locate("fashion", fetch=False)


def test_results_url(monkeypatch):
    assert bundle.results_url() == bundle.RESULTS_URL
    monkeypatch.setenv("NCLAB_RESULTS_URL", "file:///srv/results")
    assert bundle.results_url() == "file:///srv/results"


def test_an_unknown_variable_is_refused():
    with pytest.raises(KeyError, match="NCLAB_NOPE"):
        settings.flag("NCLAB_NOPE", False)


def test_the_cache_does_not_follow_a_config_yml_in_the_working_directory(tmp_path, monkeypatch):
    assert settings.checkout() == ROOT
    before = runs.cache_dir()
    assert before == ROOT / ".nclab-cache"
    elsewhere = tmp_path / "other_book"
    (elsewhere / "book").mkdir(parents=True)
    (elsewhere / "_config.yml").write_text("title: another book\nexclude_patterns:\n  - nclab\n")
    monkeypatch.chdir(elsewhere / "book")
    assert runs.cache_dir() == before
    assert bundle._repository_folder("fashion") == ROOT / "results" / "fashion"
    monkeypatch.setattr(settings, "checkout", lambda: None)   # an installed package
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert runs.cache_dir() == tmp_path / "home" / ".cache" / "nclab"
    assert bundle._repository_folder("fashion") is None


def test_a_checkout_is_recognized_precisely(tmp_path):
    folder = tmp_path / "repo"
    (folder / "book").mkdir(parents=True)
    (folder / "nclab").mkdir()
    (folder / "nclab" / "__init__.py").write_text("")
    (folder / "_config.yml").write_text("title: some other book\n")
    assert not settings._is_checkout(folder)            # a Jupyter Book, but not this one
    (folder / "_config.yml").write_text("exclude_patterns:\n  - .venv\n  - nclab\n")
    assert settings._is_checkout(folder)
    (folder / "nclab" / "__init__.py").unlink()
    assert not settings._is_checkout(folder)            # no package beside it
    assert settings._is_checkout(ROOT)
    assert not settings._is_checkout(tmp_path)


@pytest.mark.slow   # a fresh interpreter imports every module (about 15 s)
def test_importing_nclab_changes_no_process_state():
    """Every module of the package, imported into a fresh interpreter: umask, torch's threads,
    warning filters, matplotlib's backend and the environment stay as they were."""
    # The libraries nclab imports are imported first: some (scipy.special, jupyter_events) add
    # warning filters of their own when imported; what is compared is what nclab's code changes.
    libraries = sorted({alias.name for p in (ROOT / "nclab").rglob("*.py")
                        for node in ast.walk(ast.parse(p.read_text()))
                        for alias in (node.names if isinstance(node, ast.Import) else
                                      [ast.alias(f"{node.module}.{a.name}") for a in node.names]
                                      if isinstance(node, ast.ImportFrom) and node.module and not node.level
                                      else [])
                        if not alias.name.startswith("nclab")})
    modules = sorted(".".join(("nclab", *p.relative_to(ROOT / "nclab").with_suffix("").parts)).removesuffix(".__init__")
                     for p in (ROOT / "nclab").rglob("*.py") if p.name != "__main__.py")
    script = f"""
import os, sys, warnings, importlib
os.umask(0o027)
import torch, matplotlib
torch.set_num_threads(3); torch.set_num_interop_threads(2)
state = lambda: (os.umask(os.umask(0o027)), torch.get_num_threads(), torch.get_num_interop_threads(),
                 list(warnings.filters), matplotlib.get_backend(), dict(os.environ), sys.getrecursionlimit())
for name in {libraries!r}:
    for candidate in (name, name.rpartition(".")[0]):
        try:
            importlib.import_module(candidate)
            break
        except ImportError:
            pass
before = state()
for name in {modules!r}:
    importlib.import_module(name)
after = state()
print("same" if after == before else f"changed: {{[i for i, (a, b) in enumerate(zip(before, after)) if a != b]}}")
"""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "same", out.stdout + out.stderr
