"""Every example in the package's docstrings runs and prints what it shows."""

import ast
import doctest
import importlib
import re
from pathlib import Path

import pytest

MODULES = ["losses", "metrics", "nearest_mean", "features", "calibration", "ufm", "hessian", "autodiff",
           "descent", "data", "models", "config", "train", "results", "checkpoints", "evaluate", "runs", "stats", "tables", "plots", "plots.report",
           "plots.empirical", "plots.theory", "widgets", "bundle", "cluster", "settings", "exercises",
           "book", "book.tables", "book.evidence", "book.conditioning", "book.repository"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, one_torch_thread):
    module = importlib.import_module(f"nclab.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in nclab.{name} failed"


def test_the_examples_are_found():
    finder = doctest.DocTestFinder()
    found = sum(len(test.examples) for name in MODULES
                for test in finder.find(importlib.import_module(f"nclab.{name}")))
    assert found >= 50


# reStructuredText reads |name| as a substitution, which the API page does not define: the book's
# build stops on it. Inline literals (``...``) are left out first; "a|b" inside a word is not one.
_SUBSTITUTION = re.compile(r"(?<![\w|`])\|(?![\s|])[^|`\n]*?(?<!\s)\|(?![\w|`])")


def _docstrings(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = ast.get_docstring(node, clean=False)
            if text:
                yield getattr(node, "name", path.stem), text


def substitutions(text: str) -> list[str]:
    """The |name| substitution references in a docstring, inline literals left out."""
    return _SUBSTITUTION.findall(re.sub(r"``.*?``", "", text, flags=re.S))


def test_the_substitution_finder_finds_one_and_ignores_literals_and_pipes():
    assert substitutions("the largest |difference| of each field") == ["|difference|"]
    assert substitutions("a ``|answer|`` and a|b, x || y, | spaced |") == []


def test_no_docstring_holds_a_substitution_reference():
    package = Path(__file__).resolve().parent.parent / "nclab"
    found = [f"{path.relative_to(package.parent)} ({name}): {hit}" for path in sorted(package.rglob("*.py"))
             for name, text in _docstrings(path) for hit in substitutions(text)]
    assert not found, "Sphinx reads these as undefined substitutions: " + "; ".join(found)
