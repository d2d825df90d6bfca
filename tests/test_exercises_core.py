"""The exercise machinery: right, wrong and unattempted answers, and nothing that reveals the answer."""

import numpy as np
import pytest

from nclab.exercises import CHAPTERS, Verdict, check_function, check_value


def reference(x):
    return np.sort(x)[::-1]


CASES = [(np.random.default_rng(s).normal(size=5),) for s in range(3)]


def test_a_right_function_passes_and_a_wrong_one_fails_without_showing_the_answer():
    assert check_function("sort", lambda x: -np.sort(-x), reference, CASES, "descending")
    wrong = check_function("sort", np.sort, reference, CASES, "descending")
    assert not wrong and wrong.status == "wrong" and "descending" in str(wrong)
    assert not any(f"{v:.3f}" in str(wrong) for v in CASES[0][0])


def test_an_unattempted_skeleton_and_a_crash_are_reported_not_raised():
    def skeleton(x):
        raise NotImplementedError

    assert check_function("sort", skeleton, reference, CASES, "h").status == "not attempted"
    crashed = check_function("sort", lambda x: x[99], reference, CASES, "h")
    assert crashed.status == "wrong" and "IndexError" in str(crashed)
    assert check_function("sort", 3.0, reference, CASES, "h").status == "wrong"


@pytest.mark.parametrize("answer, status", [(None, "not attempted"), (2.0, "right"), (2.1, "wrong"),
                                            (np.array([2.0, 2.0]), "wrong"), (float("nan"), "wrong"),
                                            ("two", "wrong")])
def test_values_are_compared_with_a_tolerance_and_a_shape(answer, status):
    assert check_value("two", answer, 2.0, "h").status == status


def test_a_verdict_shows_as_one_line_in_a_notebook():
    verdict = Verdict("x", "right", "ok")
    assert bool(verdict) and "right" in verdict._repr_html_() and "\n" not in str(verdict)


def test_every_chapter_module_is_reachable():
    import importlib
    import nclab
    for name in CHAPTERS:
        if importlib.util.find_spec(f"nclab.exercises.{name}") is not None:
            assert getattr(nclab.exercises, name).__name__ == f"nclab.exercises.{name}"
