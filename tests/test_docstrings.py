"""Every example in the package's docstrings runs and prints what it shows."""

import doctest
import importlib

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
