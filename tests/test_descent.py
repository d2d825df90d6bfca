"""Tests for nclab.descent: step sizes from the Hessian and gradient descent against delta (chapter 7)."""

import math

import numpy as np
import pytest

from nclab.descent import DEFAULT_THRESHOLDS, convergence_experiment, default_lr, distances
from nclab.hessian import reduced_spectrum
from nclab.ufm import UFM, Trajectory


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_default_lr_is_one_over_the_largest_hessian_eigenvalue():
    ufm = UFM(4, 5, 6, 5e-3, 5e-3, 5e-3, 0.1)
    assert default_lr(ufm) == 1 / reduced_spectrum(ufm).max
    with pytest.raises(ValueError, match=r"dim must be >= num_classes - 1 = 3 for Theorem 1"):
        default_lr(ufm.replace(dim=2))


def test_distances_are_relative_except_at_the_zero_minimizer():
    steps = np.arange(3)
    traj = Trajectory(steps, objective=np.array([3.0, 2.0, 1.5]), grad_norm=np.ones(3), nc1=np.array([1.0, .1, .01]),
                      nc2_wh=np.ones(3), nc3=np.ones(3), w_norm=np.array([4.0, 2.2, 2.0]), h_norm=np.array([.5, .1, 0.0]))
    collapsed = UFM(3, 2, 3, 1e-2, 1e-2, 1e-2, 0.1).closed_form()
    got = distances(traj, collapsed)
    np.testing.assert_allclose(got["objective_gap"], traj.objective - collapsed.objective)
    np.testing.assert_allclose(got["w_norm"], np.abs(traj.w_norm / collapsed.w_norm - 1))
    np.testing.assert_array_equal(got["nc1"], traj.nc1)
    zero = UFM(3, 2, 3, 1e-2, 1e-2, 1e-2, 0.98).closed_form()  # beta >= 1: W = H = 0
    assert zero.w_norm == 0
    np.testing.assert_array_equal(distances(traj, zero)["h_norm"], traj.h_norm)
    assert set(got) == set(DEFAULT_THRESHOLDS)


def test_convergence_experiment_table():
    result = convergence_experiment(deltas=(0.0, 0.2), steps=1500, log_every=5)
    assert [row["delta"] for row in result.table] == [0.0, 0.2]
    assert set(result.trajectories) == {0.0, 0.2}
    for row in result.table:
        for name in result.thresholds:
            assert row[name] is not None and row[name] % 5 == 0
        assert -1e-14 <= row["final_gap"] < 1e-10
        assert math.isclose(row["kappa"], row["lambda_max"] / row["lambda_min"])
        assert math.isclose(row["lr"], 1 / row["lambda_max"])
    shared = convergence_experiment(deltas=(0.0, 0.2), steps=20, lr="shared")
    assert shared.table[0]["lr"] == shared.table[1]["lr"] == min(r["lr"] for r in result.table)
    # the same start for every delta
    assert shared.trajectories[0.0].w_norm[0] == shared.trajectories[0.2].w_norm[0]
    assert "never" in shared.format()



def test_bad_input():
    with pytest.raises(ValueError, match="thresholds"):
        convergence_experiment(thresholds={"nc2": 1e-3})
    with pytest.raises(ValueError, match="lr"):
        convergence_experiment(deltas=(0.0,), lr="fast")
    with pytest.raises(ValueError, match="deltas"):
        convergence_experiment(deltas=())
