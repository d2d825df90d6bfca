"""pyproject.toml tells the truth: every third-party import of nclab is declared, nothing declared is unused.

The imports are read from the source (ast), so a module that is never imported by the tests is
checked too. Import names are mapped to distributions by the installed metadata
(``importlib.metadata.packages_distributions``: ``sklearn`` is scikit-learn, ``PIL`` is pillow).
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nclab"

# Modules that may import an extra's distribution at their top: nothing else in nclab imports
# them, so `import nclab` and its submodules work without the extra.
#   nclab/exercises/handout.py: jupytext and nbformat (extra "handout"), run as
#   `python -m nclab.exercises.handout` by whoever writes the student copies.
# Everywhere else an extra's distribution is imported inside a function only: submitit (extra
# "slurm", nclab/cluster.py) and myst_nb (extra "book", nclab/book/evidence.py, a no-op without it).
EXTRA_AT_TOP_LEVEL = {"nclab/exercises/handout.py": {"jupytext", "nbformat"}}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda spec: _normalized(re.match(r"[A-Za-z0-9._-]+", spec).group(0))  # noqa: E731
    required = {name(spec) for spec in project["dependencies"]}
    extras = {extra: {name(spec) for spec in specs}
              for extra, specs in project.get("optional-dependencies", {}).items()}
    return required, extras


def _imports() -> list[tuple[str, str, bool]]:
    """(top-level module, file relative to the repository, imported at the module's top level)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for module in names:
                root = module.split(".")[0]
                if root in sys.stdlib_module_names or root in ("nclab", "__future__"):
                    continue
                found.append((root, path.relative_to(ROOT).as_posix(), id(node) in top))
    return found


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return packages_distributions()  # reads every installed distribution's file list: once


def _distribution(module: str, declared: set[str]) -> str:
    candidates = [_normalized(d) for d in _distributions().get(module, [])]
    if not candidates:
        pytest.fail(f"nclab imports {module!r}, which no installed distribution provides: install it and declare it")
    return next((c for c in candidates if c in declared), candidates[0])


def test_every_third_party_import_is_declared_and_nothing_declared_is_unused():
    required, extras = _declared()
    in_extras = set().union(*extras.values())
    declared = required | in_extras
    imports = _imports()
    used = {}
    for module, where, top in imports:
        used.setdefault(_distribution(module, declared), []).append((module, where, top))

    undeclared = {dist: sorted({w for _, w, _ in uses}) for dist, uses in used.items() if dist not in declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    unused = declared - set(used)
    assert not unused, f"declared in pyproject.toml but imported nowhere in nclab: {sorted(unused)}"

    # An extra's distribution is imported inside functions, or at the top of a module that
    # nothing else imports (EXTRA_AT_TOP_LEVEL): `import nclab` works without any extra.
    for dist, uses in used.items():
        if dist in required:
            continue
        for module, where, top in uses:
            assert not top or module in EXTRA_AT_TOP_LEVEL.get(where, ()), (
                f"{where} imports {module} (extra-only {dist}) at its top level")


def test_modules_that_need_an_extra_are_imported_by_no_other_module():
    for where in EXTRA_AT_TOP_LEVEL:
        dotted = where.removesuffix(".py").replace("/", ".")
        stem = dotted.rsplit(".", 1)[1]
        for path in PACKAGE.rglob("*.py"):
            if path.relative_to(ROOT).as_posix() == where:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""] + [f"{node.module or ''}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                assert not any(n == dotted or n.endswith(f".{stem}") or n == stem for n in names), (
                    f"{path.relative_to(ROOT)} imports {dotted}, which needs an extra")


def test_every_dependency_has_a_lower_bound():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + [s for v in project["optional-dependencies"].values() for s in v]
    assert all(">=" in spec for spec in specs), [s for s in specs if ">=" not in s]


def test_the_scipy_bound_allows_bootstrap_rng():
    # nclab.stats.ece_interval passes rng= to scipy.stats.bootstrap (SciPy 1.15.0 on).
    spec = next(s for s in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
                if _normalized(s).startswith("scipy"))
    assert tuple(int(p) for p in spec.split(">=")[1].split(".")[:2]) >= (1, 15)
