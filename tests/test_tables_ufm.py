"""Chapter 6's solver table: L-BFGS solutions of small UFMs against Theorem 1, printed to fit a page."""

import math

import pytest

import nclab as nc


@pytest.fixture(scope="module")
def table(one_torch_thread):
    problems = [nc.ufm.UFM(3, 4, 4, 5e-3, 5e-3, 5e-3, delta=0.1),
                nc.ufm.UFM(3, 2, 2, 5e-2, 5e-2, 5e-2, delta=0.8)]  # β ≥ 1: the minimizer is zero
    return problems, nc.book.tables.ufm_solver_table(problems, seeds=(0, 1), steps=300)


def test_one_row_per_problem_and_seed_with_the_closed_form_reached(table):
    problems, t = table
    assert list(t.values) == ["3,4,4 δ=0.1 s=0", "3,4,4 δ=0.1 s=1", "3,2,2 δ=0.8 s=0", "3,2,2 δ=0.8 s=1"]
    collapsed, trivial = t.values["3,4,4 δ=0.1 s=1"], t.values["3,2,2 δ=0.8 s=0"]
    assert collapsed["β"] == pytest.approx(problems[0].beta) and trivial["β"] > 1
    assert max(collapsed[c] for c in ("‖w‖ err", "‖μ‖ err", "NC1", "NC2", "NC3")) < 1e-6
    assert trivial["‖w‖ err"] < 1e-6 and math.isnan(trivial["NC1"])  # the norms themselves, no NC
    assert 0 <= t.max_rounding < 100 and t.max_rounding == max(t.rounding.values())


def test_printing_fits_a_page_and_marks_undefined_cells(table):
    text = str(table[1])
    lines = text.splitlines()
    assert max(map(len, lines)) <= 78 and len(lines) == 1 + 1 + 4 + 1
    assert "NC3" in lines[1] and lines[-2].rstrip().endswith("-") and "largest |f − f*|" in lines[-1]
    assert repr(table[1]) == text


def test_empty_input_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        nc.book.tables.ufm_solver_table([], seeds=(0,))
