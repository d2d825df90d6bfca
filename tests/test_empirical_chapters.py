"""Figures, tables and sweep helpers of chapters 2-5, on small fake histories and a tiny real run."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from nclab import evaluate, metrics, plots, runs, tables
from nclab.book import tables as chapter_tables
from nclab.runs import Outputs
from nclab.train import RunResult

KEYS = ("train_error", "test_error", "nc1", "nc2_h", "nc2_w", "nc2_wh", "nc3", "nc4", "equinorm_h",
        "equinorm_w", "equiangularity_h", "equiangularity_w", "w_norm", "h_norm", "test_ece", "test_ece_scaled",
        "temperature")


def fake_run(delta: float, seed: int, nc1, nc2=None, train_error=None, epochs=None) -> RunResult:
    """A RunResult with a hand-made history: the given NC1/NC2/train-error series, other fields smooth."""
    nc1 = np.asarray(nc1, float)
    n = len(nc1)
    epochs = np.arange(1, n + 1) if epochs is None else np.asarray(epochs)
    nc2 = np.linspace(0.5, 0.1, n) if nc2 is None else np.asarray(nc2, float)
    train_error = np.linspace(0.2, 0.0, n) if train_error is None else np.asarray(train_error, float)
    history = []
    for i in range(n):
        record = {k: 0.1 + 0.01 * seed + 0.001 * i for k in KEYS}
        record.update(epoch=int(epochs[i]), nc1=nc1[i], nc2_wh=nc2[i], train_error=train_error[i],
                      test_error=0.05 + 0.01 * seed + delta / 10, w_norm=1.0 + i, h_norm=2.0 + i)
        history.append(record)
    return RunResult(runs.config("quick", delta=delta, seed=seed), history, {"device": "test"})


@pytest.fixture
def sweep_like():
    """Three seeds of CE and of LS δ=0.1; LS collapses faster."""
    out = []
    for s in range(3):
        out.append(fake_run(0.0, s, nc1=np.geomspace(1.0, 1e-2 * (1 + s), 6), train_error=[.3, .2, .1, 0, 0, 0]))
        out.append(fake_run(0.1, s, nc1=np.geomspace(1.0, 1e-3 * (1 + s), 6), train_error=[.3, .1, 0, 0, 0, 0]))
    return out


def fake_outputs(n: int = 60, K: int = 4, d: int = 6, scale: float = 3.0, seed: int = 0) -> Outputs:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(K).repeat(n // K)
    means = torch.randn(K, d, generator=g) * 3
    features = means[labels] + torch.randn(len(labels), d, generator=g)
    weight = means.clone()
    bias = torch.zeros(K)
    logits = scale * torch.randn(len(labels), K, generator=g) + 4 * torch.nn.functional.one_hot(labels, K)
    return Outputs(features, logits, labels, weight, bias)


def assert_labelled(fig: Figure, legend: bool = True) -> None:
    """Every panel has x and y labels (its own or those of an axis it shares), and a legend somewhere."""
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert visible
    for ax in visible:
        xs = ax.get_shared_x_axes().get_siblings(ax)
        ys = ax.get_shared_y_axes().get_siblings(ax)
        assert any(a.get_xlabel() for a in xs), f"panel {ax.get_title()!r} has no x label"
        assert any(a.get_ylabel() for a in ys), f"panel {ax.get_title()!r} has no y label"
    if legend:
        assert any(ax.get_legend() is not None for ax in visible)


# Tables and summaries ------------------------------------------------------------------------

def test_first_epoch_at_or_below_is_the_first_logged_crossing():
    run = fake_run(0.0, 0, nc1=[1.0, 0.5, 0.2, 0.3, 0.1], epochs=[1, 2, 4, 6, 8])
    assert tables.first_epoch_at_or_below(run, "nc1", 0.25) == 4
    assert tables.first_epoch_at_or_below(run, "nc1", 1.0) == 1
    assert math.isnan(tables.first_epoch_at_or_below(run, "nc1", 0.01))


def test_nc2_at_nc1_interpolates_in_log_nc1():
    run = fake_run(0.0, 0, nc1=[1.0, 0.1, 0.01, 0.05], nc2=[0.5, 0.3, 0.1, 0.4])
    levels = [math.sqrt(0.1), 0.1, 0.01 ** 0.75 * 0.1 ** 0.25, 1.0, 1e-3]
    got = tables.nc2_at_nc1(run, levels)
    # Halfway in log between 1 and 0.1 -> halfway between 0.5 and 0.3; a quarter from 0.1 to 0.01 in
    # log -> three quarters of the way from 0.3 to 0.1 ... computed by hand:
    assert got[0] == pytest.approx(0.4)
    assert got[1] == pytest.approx(0.3)
    assert got[2] == pytest.approx(0.3 + 0.75 * (0.1 - 0.3))
    assert math.isnan(got[3]) and math.isnan(got[4])  # at/below the level from the start; never reached


def test_common_levels_are_crossed_by_every_run(sweep_like):
    levels = tables.common_levels(sweep_like, "nc1", 4)
    assert levels.shape == (4,) and np.all(np.diff(levels) < 0)
    for r in sweep_like:
        nc1 = r.series("nc1")
        assert np.all(nc1[0] > levels) and np.all(nc1.min() < levels)
        assert np.isfinite(tables.nc2_at_nc1(r, levels)).all()
    with pytest.raises(ValueError, match="share no range"):
        tables.common_levels([fake_run(0, 0, [1.0, 0.5]), fake_run(0, 1, [0.4, 0.3])], "nc1")
    with pytest.raises(ValueError, match="n must be"):
        tables.common_levels(sweep_like, "nc1", 0)


def test_threshold_table_counts_epochs_and_compares_seeds(sweep_like):
    table = chapter_tables.threshold_table(sweep_like, {"train_error": 0.0, "nc1": [0.5, 5e-3, 2.0]})
    assert list(table.values) == ["CE", "LS δ=0.1"]
    zero = "train_error ≤ 0"
    np.testing.assert_array_equal(table.values["CE"][zero], [4, 4, 4])
    np.testing.assert_array_equal(table.values["LS δ=0.1"][zero], [3, 3, 3])
    # CE seeds end at NC1 = 0.01, 0.02, 0.03: none reaches 5e-3, so that threshold is not inside every
    # run's range and is dropped; every run starts at NC1 = 1, already below 2: dropped too.
    assert table.dropped == {"nc1 ≤ 0.005": "some run never gets there",
                             "nc1 ≤ 2": "some run is already there at its first logged epoch"}
    assert table.columns == [zero, "nc1 ≤ 0.5"]
    # NC1 = geomspace(1, end, 6) first drops to 0.5 or below at the second logged epoch for every run.
    np.testing.assert_array_equal(table.values["CE"]["nc1 ≤ 0.5"], [2, 2, 2])
    verdict = table.compare("LS δ=0.1", "CE")
    # three pairs can never reach p <= 0.05 with an exact test: no direction, however clear the counts
    assert {k: v.verdict for k, v in verdict.items()} == {zero: "too few seeds to decide",
                                                          "nc1 ≤ 0.5": "too few seeds to decide"}
    assert verdict[zero].lower_in == 3 and verdict[zero].resolution == 1 and "grid of 1" in str(verdict[zero])
    assert table.compare("CE", "LS δ=0.1")[zero].higher_in == 3
    assert "3 ± 0" in str(table)
    grid = table.verdicts("CE").splitlines()
    assert grid[2].split()[:4] == ["LS", "δ=0.1", "too", "few"]
    with pytest.raises(ValueError, match="row"):
        table.compare("LS", "CE")


def test_table_text_marks_partly_reached_cells():
    table = tables.Table("t", {"a": {"x": np.array([1.0, np.nan, 3.0])}, "b": {"x": np.array([2.0, 2.0, 2.0])}})
    assert "2 ± 1 (2/3)" in str(table)
    assert table.mean("a", "x") == 2.0
    assert table.compare("a", "b")["x"].verdict == "too few seeds to decide"
    assert table.compare("a", "b")["x"].left_out == 1


def test_collapse_and_final_tables_read_first_and_last_records(sweep_like):
    ce = [r for r in sweep_like if r.config.delta == 0]
    table = chapter_tables.collapse_table(ce, keys=("nc1", "w_norm"))
    assert table.columns == ["epoch 1", "epoch 6"]
    np.testing.assert_allclose(table.values["nc1"]["epoch 6"], [0.01, 0.02, 0.03])
    np.testing.assert_allclose(table.values["w_norm"]["epoch 1"], [1.0, 1.0, 1.0])
    final = chapter_tables.final_table(sweep_like, ["nc1"])
    np.testing.assert_allclose(final.values["LS δ=0.1"]["nc1"], [1e-3, 2e-3, 3e-3])


def test_matched_nc2_table_matches_hand_interpolation():
    a = fake_run(0.0, 0, nc1=[1.0, 0.1], nc2=[0.6, 0.2])
    b = fake_run(0.05, 0, nc1=[1.0, 0.01], nc2=[0.6, 0.0])
    table = chapter_tables.matched_nc2_table([a, b], [math.sqrt(0.1)])
    assert table.values["CE"]["NC1 = 0.316"][0] == pytest.approx(0.4)
    assert table.values["LS δ=0.05"]["NC1 = 0.316"][0] == pytest.approx(0.45)


def _ece_loop(logits: torch.Tensor, labels: torch.Tensor, n_bins: int) -> float:
    p = torch.softmax(logits.double(), 1)
    conf, pred = p.max(1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i in range(len(conf)) if lo < conf[i] <= hi]
        if members:
            acc = sum(float(pred[i] == labels[i]) for i in members) / len(members)
            total += len(members) * abs(acc - sum(float(conf[i]) for i in members) / len(members))
    return total / len(conf)


def test_calibration_table_against_loops():
    val = {0.0: [fake_outputs(seed=1)], 0.1: [fake_outputs(scale=1.0, seed=2)]}
    test = {0.0: [fake_outputs(seed=3)], 0.1: [fake_outputs(scale=1.0, seed=4)]}
    table = chapter_tables.calibration_table(val, test, n_bins=10)
    for delta, label in ((0.0, "CE"), (0.1, "LS δ=0.1")):
        t = test[delta][0]
        row = table.values[label]
        assert row["ECE"][0] == pytest.approx(_ece_loop(t.logits, t.labels, 10), abs=1e-12)
        t_val = row["T from val"][0]
        assert row["ECE, T from val"][0] == pytest.approx(_ece_loop(t.logits / t_val, t.labels, 10), abs=1e-12)
        # The test-fitted temperature minimizes test ECE over its grid: no tried T does better.
        best = row["ECE, T from test"][0]
        assert all(best <= _ece_loop(t.logits / T, t.labels, 10) + 1e-12 for T in (0.3, 0.7, 1.0, 1.5, 3.0))
        p = torch.softmax(t.logits.double(), 1)
        gap = float(p.max(1).values.mean()) - float((p.argmax(1) == t.labels).double().mean())
        assert row["confidence − accuracy"][0] == pytest.approx(gap)
    with pytest.raises(ValueError, match="same δ keys"):
        chapter_tables.calibration_table(val, {0.0: test[0.0]})


# Sweep helpers ------------------------------------------------------------------------------

def test_select_picks_the_nearest_delta_present(sweep_like):
    assert {r.config.delta for r in runs.select(sweep_like, 0.04)} == {0.0}
    picked = runs.select(sweep_like, [0.12, 0.0, 0.09])
    assert [r.config.delta for r in picked] == [0.1] * 3 + [0.0] * 3
    with pytest.raises(ValueError, match="deltas"):
        runs.select(sweep_like, [])
    with pytest.raises(ValueError, match="results"):
        runs.select([], 0.0)


def test_book_sweep_requests_every_delta_and_seed(monkeypatch):
    seen = []
    monkeypatch.setattr(runs, "sweep", lambda configs, progress=True: seen.extend(configs) or configs)
    runs.book_sweep("quick")
    assert [(c.delta, c.seed) for c in seen] == [(d, s) for d in runs.SWEEP_DELTAS for s in runs.SWEEP_SEEDS]
    assert len(set(runs.SWEEP_DELTAS)) >= 6 and len(runs.SWEEP_SEEDS) >= 3
    assert all(c == runs.config("quick", delta=c.delta, seed=c.seed) for c in seen)


def test_outputs_reproduce_the_runs_own_measurement(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path))
    cfg = runs.config("quick", dataset="gaussians", epochs=2, width=16)
    result = runs.get(cfg, progress=False)
    out = runs.outputs(result, "train")
    assert out.features.shape == (len(out.labels), 16) and out.logits.shape == (len(out.labels), 4)
    stats = metrics.FeatureStats(4, 16).update(out.features, out.labels)
    # The history was measured inside the training loop; the checkpoint gives the same network.
    assert metrics.nc1(stats) == pytest.approx(result.final["nc1"], rel=1e-5)
    assert float((out.logits.argmax(1) != out.labels).float().mean()) == pytest.approx(result.final["train_error"])
    torch.testing.assert_close(out.logits, out.features @ out.weight.T + out.bias, rtol=1e-5, atol=1e-5)
    test = runs.outputs(result, "test")
    assert float((test.logits.argmax(1) != test.labels).float().mean()) == pytest.approx(result.final["test_error"])
    with pytest.raises(ValueError, match="split"):
        runs.outputs(result, "validation")
    # A run trained on a GPU opens on a machine without one.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    from_gpu = dataclasses.replace(result, config=dataclasses.replace(cfg, device="cuda"))
    torch.testing.assert_close(runs.outputs(from_gpu, "test").logits, test.logits)


# Figures -------------------------------------------------------------------------------------

def test_run_figures_are_labelled_and_redraw_into_a_given_figure(sweep_like):
    levels = tables.common_levels(sweep_like, "nc1", 3)
    for draw in (lambda f=None: plots.training_curves_spread(sweep_like, fig=f),
                 lambda f=None: plots.nc_plane(sweep_like, fig=f),
                 lambda f=None: plots.matched_nc2(sweep_like, levels, fig=f),
                 lambda f=None: plots.ece_vs_collapse(sweep_like, fig=f)):
        fig = draw()
        assert isinstance(fig, Figure)
        assert_labelled(fig)
        target = Figure()
        target.add_subplot().set_title("stale")
        assert draw(target) is target
        assert all(ax.get_title() != "stale" for ax in target.axes)


def test_report_figures_draw_into_subfigures_of_one_figure(sweep_like):
    parent = Figure(figsize=(13, 14), layout="constrained")
    top, bottom = parent.subfigures(2, 1)
    assert plots.training_curves(sweep_like, fig=top) is top
    assert plots.delta_summary(sweep_like, fig=bottom) is bottom
    assert len(parent.axes) == 12
    assert_labelled(top)
    assert_labelled(bottom)
    assert top.axes[2].get_yscale() == "log" and top.axes[2].get_title().startswith("NC1")


def test_training_curves_spread_band_is_mean_plus_minus_std(sweep_like):
    fig = plots.training_curves_spread(sweep_like, keys=["nc1"])
    ax = fig.axes[0]
    ce = np.array([r.series("nc1") for r in sweep_like if r.config.delta == 0])
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_ydata(), ce.mean(0))
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() == pytest.approx((ce.mean(0) + ce.std(0)).max())
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="keys"):
        plots.training_curves_spread(sweep_like, keys=["loss"])


def test_snapshot_figures_show_every_epoch():
    snaps = [fake_outputs(seed=s) for s in range(3)]
    fig = plots.feature_snapshots(snaps, ["epoch 1", "epoch 5", "epoch 20"], classes=(0, 2, 3))
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == ["epoch 1", "epoch 5", "epoch 20"]
    assert_labelled(fig)
    fig = plots.simplex_snapshots(snaps, ["1", "5", "20"])
    assert_labelled(fig)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "5", "20"]
    with pytest.raises(ValueError, match="classes"):
        plots.feature_snapshots(snaps, ["a", "b", "c"], classes=(0, 0, 1))
    with pytest.raises(ValueError, match="titles"):
        plots.simplex_snapshots(snaps, ["1", "5"])


def test_calibration_figures(sweep_like):
    test = {0.0: [fake_outputs(seed=1), fake_outputs(seed=2)], 0.1: [fake_outputs(scale=1.0, seed=3)]}
    fig = plots.reliability_diagram(test, [0.0, 0.1], n_bins=10)
    assert_labelled(fig)
    pooled = torch.cat([o.logits for o in test[0.0]])
    labels = torch.cat([o.labels for o in test[0.0]])
    assert f"{_ece_loop(pooled, labels, 10):.3f}" in fig.axes[0].get_title()
    scaled = plots.reliability_diagram(test, [0.0], temperatures={0.0: [2.0, 2.0]}, n_bins=10)
    assert f"{_ece_loop(pooled / 2.0, labels, 10):.3f}" in scaled.axes[0].get_title()
    assert_labelled(plots.entropy_by_correctness(test))
    table = chapter_tables.calibration_table({0.0: test[0.0][:1], 0.1: test[0.1]}, {0.0: test[0.0][:1], 0.1: test[0.1]})
    assert_labelled(plots.calibration_vs_delta(sweep_like, table))
    with pytest.raises(ValueError, match="deltas"):
        plots.reliability_diagram(test, [0.3])
    with pytest.raises(ValueError, match="fig"):
        plots.nc_plane(sweep_like, fig="figure")


def test_entropy_table_medians_per_seed():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [1.0, 0.0], [0.0, 0.2], [3.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0, 0])
    out = Outputs(torch.zeros(5, 2), logits, labels, torch.zeros(2, 2), torch.zeros(2))
    table = chapter_tables.entropy_table({0.0: [out]})

    def entropy(row):
        p = torch.softmax(row.double(), 0)
        return float(-(p * p.log()).sum())

    correct = sorted(entropy(logits[i]) for i in (0, 1, 4))
    wrong = sorted(entropy(logits[i]) for i in (2, 3))
    assert table.values["CE"]["correct"][0] == pytest.approx(correct[1])
    assert table.values["CE"]["incorrect"][0] == pytest.approx((wrong[0] + wrong[1]) / 2)
    all_right = Outputs(torch.zeros(2, 2), logits[:2], labels[:2], torch.zeros(2, 2), torch.zeros(2))
    assert np.isnan(chapter_tables.entropy_table({0.0: [all_right]}).values["CE"]["incorrect"][0])


def test_collapse_calibration_table_rank_correlations():
    runs_ = []
    for seed in range(2):
        run = fake_run(0.0, seed, nc1=np.geomspace(1.0, 1e-3, 10))
        for i, record in enumerate(run.history):
            record["test_ece"] = [0.5, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55][i]  # rises as NC1 falls
        runs_.append(run)
    table = chapter_tables.collapse_calibration_table(runs_, skip=0.1)  # leaves out the first epoch
    np.testing.assert_allclose(table.values["CE"]["ρ(NC1, ECE)"], [-1.0, -1.0])
    # The fake norms grow every epoch (w_norm = 1 + i, h_norm = 2 + i), like the ECE after epoch 1.
    np.testing.assert_allclose(table.values["CE"]["ρ(norms, ECE)"], [1.0, 1.0])
    full = chapter_tables.collapse_calibration_table(runs_, skip=0.0)
    assert full.values["CE"]["ρ(NC1, ECE)"][0] > -1.0
    with pytest.raises(ValueError, match="skip"):
        chapter_tables.collapse_calibration_table(runs_, skip=1.0)


def test_wide_tables_wrap_into_blocks_that_fit_a_page():
    values = {f"row {i}": {f"col{j}": np.array([1.0 + j, 2.0, 3.0 + i]) for j in range(12)} for i in range(3)}
    text = str(tables.Table("wide", values))
    lines = text.splitlines()
    assert lines[0] == "wide" and max(len(line) for line in lines) <= 78
    headers = [line.split() for line in lines if line.startswith(" ")]
    assert len(headers) >= 2 and sum(headers, []) == [f"col{j}" for j in range(12)]
    assert text.count("row 0") == text.count("row 2") == len(headers)
    row0 = [line for line in lines if line.startswith("row 0")][-1]
    assert row0.endswith("5.667 ± 4.5")  # col11 of row 0: 12, 2 and 3 -> mean 5.667, std 4.5


def test_outputs_by_delta_groups_in_delta_order(sweep_like, monkeypatch):
    monkeypatch.setattr(evaluate, "outputs", lambda r, split: (r.config.delta, r.config.seed, split))
    grouped = runs.outputs_by_delta(list(reversed(sweep_like)), "val")
    assert list(grouped) == [0.0, 0.1]
    assert grouped[0.1] == [(0.1, 2, "val"), (0.1, 1, "val"), (0.1, 0, "val")]
    with pytest.raises(ValueError, match="results"):
        runs.outputs_by_delta([])


def test_across_runs_is_spearman_of_the_ranks_within_each_delta():
    """Checked against a brute-force computation: ranks counted by comparisons, then Pearson's r of the centred ranks."""
    rng = np.random.default_rng(3)
    runs = []
    for delta in (0.0, 0.1):
        for seed in range(5):
            run = fake_run(delta, seed, nc1=np.geomspace(1.0, 0.1, 3))
            run.history[-1]["nc1"] = float(rng.uniform(0.01, 1.0))
            run.history[-1]["test_ece"] = float(rng.uniform(0.0, 0.2))
            runs.append(run)
    xs, ys = [], []
    for delta in (0.0, 0.1):
        group = [r for r in runs if r.config.delta == delta]
        for key, out in (("nc1", xs), ("test_ece", ys)):
            values = [r.final[key] for r in group]
            out += [sum(w < v for w in values) - (len(values) - 1) / 2 for v in values]
    expected = np.corrcoef(xs, ys)[0, 1]
    from nclab.book import evidence

    assert evidence.across_runs(runs).statistic == pytest.approx(expected, abs=1e-12)
