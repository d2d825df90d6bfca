"""NC measures against brute-force references written with explicit loops and NumPy."""

import math

import numpy as np
import pytest
import torch

from nclab import metrics as M

MEASURES = ("nc1", "nc2_h", "nc2_w", "nc2_wh", "nc3", "nc4", "equinorm_h", "equinorm_w",
            "equiangularity_h", "equiangularity_w", "w_norm", "h_norm", "b_norm")


def mixture(rng, K=4, d=6, sizes=None, offset=0.0):
    """Gaussian mixture with unequal class sizes, labels shuffled."""
    sizes = rng.integers(5, 40, K) if sizes is None else np.asarray(sizes)
    labels = np.concatenate([np.full(n, k) for k, n in enumerate(sizes)])
    rng.shuffle(labels)
    centres = 2.0 * rng.standard_normal((K, d))
    features = centres[labels] + rng.standard_normal((len(labels), d)) @ rng.standard_normal((d, d)) + offset
    return features, labels


def reference(features, labels, K, W, b):
    """Every measure by the book: loops over samples for the statistics, NumPy pinv for Σ_B."""
    X = np.asarray(features, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    N, d = X.shape
    sums, counts = np.zeros((K, d)), np.zeros(K)
    for h, y in zip(X, labels):
        sums[y] += h
        counts[y] += 1
    mu = sums / counts[:, None]
    mu_g = mu.mean(0)
    sigma_w = np.zeros((d, d))
    for h, y in zip(X, labels):
        sigma_w += np.outer(h - mu[y], h - mu[y])
    sigma_w /= N
    sigma_b = sum(np.outer(m - mu_g, m - mu_g) for m in mu) / K
    Mt = mu - mu_g

    def to_etf(G):
        etf = (np.eye(K) - np.ones((K, K)) / K) / np.sqrt(K - 1)
        return np.linalg.norm(G / np.linalg.norm(G) - etf)

    def cv(rows):
        norms = np.array([np.sqrt(sum(v * v for v in row)) for row in rows])
        return norms.std(ddof=1) / norms.mean()

    def angles(rows):
        pairs = [(i, j) for i in range(K) for j in range(i + 1, K)]
        cos = [rows[i] @ rows[j] / np.linalg.norm(rows[i]) / np.linalg.norm(rows[j]) for i, j in pairs]
        return np.mean([abs(c + 1 / (K - 1)) for c in cos])

    nearest = [min(range(K), key=lambda k: np.linalg.norm(h - mu[k])) for h in X]
    network = np.argmax(X @ W.T + b, axis=1)
    return dict(
        means=mu, within=sigma_w, between=sigma_b,
        nc1=np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / K,
        nc2_h=to_etf(Mt @ Mt.T), nc2_w=to_etf(W @ W.T), nc2_wh=to_etf(W @ Mt.T),
        nc3=np.linalg.norm(W / np.linalg.norm(W) - Mt / np.linalg.norm(Mt)),
        nc4=np.mean([p != q for p, q in zip(network, nearest)]),
        equinorm_h=cv(Mt), equinorm_w=cv(W), equiangularity_h=angles(Mt), equiangularity_w=angles(W),
        w_norm=np.mean(np.linalg.norm(W, axis=1)), h_norm=np.mean(np.linalg.norm(Mt, axis=1)),
        b_norm=np.linalg.norm(b),
    )


def measured(features, labels, K, W, b, batch=None):
    stats = M.FeatureStats(K, features.shape[1])
    batch = batch or len(labels)
    for start in range(0, len(labels), batch):
        stats.update(features[start:start + batch], labels[start:start + batch])
    logits = features.astype(np.float64) @ np.asarray(W, np.float64).T + b
    rate = M.nc4(features, logits, stats.means)
    return stats, M.collapse_report(stats, W, b=b, nc4=rate).to_dict()


def assert_close(actual, expected, rtol):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.fixture(params=["numpy", "torch"])
def passes(request, monkeypatch):
    """Run collapse_report_from_features' passes in NumPy (the CPU path) or in torch (the path of
    other devices, here on CPU tensors)."""
    monkeypatch.setattr(M, "_numpy_passes", lambda x: request.param == "numpy")
    return request.param


def brute_force_problem(dtype, seed):
    """A 4-class problem in R^6 with an offset, in ``dtype``, and its brute-force measures."""
    rng = np.random.default_rng(seed)
    K, d = 4, 6
    X, y = mixture(rng, K, d, offset=3.0)
    X = X.astype(dtype)
    W = rng.standard_normal((K, d)).astype(dtype)
    b = rng.standard_normal(K)
    return X, y, W, b, reference(X, y, K, W, b)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-6)])
def test_every_measure_matches_brute_force(dtype, rtol):
    X, y, W, b, ref = brute_force_problem(dtype, seed=0)
    K = W.shape[0]
    stats, report = measured(X, y, K, W, b, batch=17)
    assert_close(stats.means.numpy(), ref["means"], rtol)
    assert_close(stats.within_cov.numpy(), ref["within"], rtol)
    assert_close(stats.between_cov.numpy(), ref["between"], rtol)
    assert_close(stats.global_mean.numpy(), ref["means"].mean(0), rtol)
    assert stats.counts.tolist() == np.bincount(y, minlength=K).tolist()
    for name in MEASURES:
        assert report[name] == pytest.approx(ref[name], rel=rtol, abs=1e-14), name
    assert 0 < report["nc4"] < 1 and report["nc1"] > 0.01


@pytest.mark.parametrize("offset,rtol", [(0.0, 1e-10), (1e4, 1e-8)])
def test_nc1_in_a_rank_deficient_feature_space(offset, rtol):
    """d < K − 1: Σ_B has rank d, the pseudo-inverse must use only d directions."""
    rng = np.random.default_rng(1)
    X, y = mixture(rng, K=6, d=3)
    ref = reference(X, y, 6, rng.standard_normal((6, 3)), np.zeros(6))
    stats = M.FeatureStats(6, 3).update(X + offset, y)
    assert M.nc1(stats) == pytest.approx(ref["nc1"], rel=rtol)


def test_coinciding_means_give_nan():
    stats = M.FeatureStats(2, 2).update([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], [0, 0, 1, 1])
    assert math.isnan(M.nc1(stats)) and math.isnan(M.nc2_h(stats))


def test_many_classes_float32_large_batch():
    """Gram blocks: a float32 batch longer than one block still agrees to 1e-6."""
    rng = np.random.default_rng(2)
    K, d = 12, 10
    X, y = mixture(rng, K, d, sizes=np.full(K, 800), offset=5.0)
    X32 = X.astype(np.float32)
    stats = M.FeatureStats(K, d).update(X32, y)
    X64 = X32.astype(np.float64)
    mu = np.stack([X64[y == k].mean(0) for k in range(K)])
    centred = X64 - mu[y]
    sigma_w = centred.T @ centred / len(y)
    Mt = mu - mu.mean(0)
    nc1 = np.trace(sigma_w @ np.linalg.pinv(Mt.T @ Mt / K, rcond=1e-10)) / K
    assert M.nc1(stats) == pytest.approx(nc1, rel=1e-6)


def test_reduced_float32_matmul_precision_falls_back_to_float64():
    """With TF32/bf16 float32 matmuls allowed, the Gram matrix must not use them."""
    rng = np.random.default_rng(12)
    X, y = mixture(rng, K=3, d=5, offset=2.0)
    X32 = X.astype(np.float32)
    exact = M.nc1(M.FeatureStats(3, 5).update(X32.astype(np.float64), y))
    torch.set_float32_matmul_precision("high")
    try:
        assert not M._exact_float32_matmul()
        assert M.nc1(M.FeatureStats(3, 5).update(X32, y)) == pytest.approx(exact, rel=1e-6)
    finally:
        torch.set_float32_matmul_precision("highest")
    assert M._exact_float32_matmul()


def simplex_etf(K, d, rng, scale=2.0):
    """K class means forming a simplex ETF in a random K-dimensional subspace of R^d."""
    basis, _ = np.linalg.qr(rng.standard_normal((d, K)))
    return scale * np.sqrt(K / (K - 1)) * (np.eye(K) - 1.0 / K) @ basis.T, basis


def test_collapsed_etf_gives_zero(passes):
    rng = np.random.default_rng(3)
    K, d = 4, 7
    means, basis = simplex_etf(K, d, rng)
    offset = rng.standard_normal(d)
    offset -= basis @ (basis.T @ offset)  # orthogonal to the means, so W ignores it
    y = np.repeat(np.arange(K), [3, 5, 2, 9])
    X = means[y] + 10 * offset
    W = 3.0 * means
    stats = M.FeatureStats(K, d).update(X, y)
    rate = M.nc4(X, X @ W.T, stats.means)
    report = M.collapse_report(stats, W, b=np.zeros(K), nc4=rate).to_dict()
    from_features = M.collapse_report_from_features(X, y, W, np.zeros(K), X @ W.T).to_dict()
    for name in ("nc1", "nc2_h", "nc2_w", "nc2_wh", "nc3", "nc4", "equinorm_h", "equinorm_w",
                 "equiangularity_h", "equiangularity_w", "b_norm"):
        assert abs(from_features[name]) < 1e-12, name
        assert abs(report[name]) < 1e-12, name
    assert report["h_norm"] == pytest.approx(2.0)
    assert report["w_norm"] == pytest.approx(6.0)
    assert M.etf_distance(means) < 1e-12


@pytest.mark.parametrize("transform", ["rotate", "permute", "scale"])
def test_measures_are_invariant(transform):
    rng = np.random.default_rng(4)
    K, d = 5, 6
    X, y = mixture(rng, K, d, offset=1.0)
    W = rng.standard_normal((K, d))
    _, before = measured(X, y, K, W, np.zeros(K))
    if transform == "rotate":
        Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        X, W = X @ Q, W @ Q
        names = MEASURES
    elif transform == "permute":
        perm = rng.permutation(K)
        y = perm[y]
        W = W[np.argsort(perm)]
        names = MEASURES
    else:
        X = 7.5 * X
        names = tuple(n for n in MEASURES if n != "h_norm")
    _, after = measured(X, y, K, W, np.zeros(K))
    for name in names:
        assert after[name] == pytest.approx(before[name], rel=1e-9, nan_ok=True), name


def test_streaming_in_any_batches_and_order_equals_one_pass():
    rng = np.random.default_rng(5)
    K, d = 6, 5
    X, y = mixture(rng, K, d, offset=2.0)
    whole = M.FeatureStats(K, d).update(X, y)
    order = rng.permutation(len(y))
    cuts = np.sort(rng.choice(np.arange(1, len(y)), size=12, replace=False))
    streamed = M.FeatureStats(K, d)
    for part in np.split(order, np.concatenate([[0], cuts])):  # includes an empty batch
        streamed.update(X[part], y[part])
    for a, b in [(streamed.means, whole.means), (streamed.within_cov, whole.within_cov),
                 (streamed.between_cov, whole.between_cov)]:
        assert_close(a.numpy(), b.numpy(), 1e-12)
    assert M.nc1(streamed) == pytest.approx(M.nc1(whole), rel=1e-12)


def test_merge_equals_one_pass():
    rng = np.random.default_rng(6)
    K, d = 5, 4
    X, y = mixture(rng, K, d, offset=50.0)
    half = rng.permutation(len(y)) < len(y) // 2
    in_a = half & (y != 4)  # class 4 only ever reaches the second accumulator
    part_a = M.FeatureStats(K, d)
    part_a.update(X[in_a & (y < 3)], y[in_a & (y < 3)])
    part_a.update(X[in_a & (y >= 3)], y[in_a & (y >= 3)])
    part_b = M.FeatureStats(K, d)
    for chunk in np.array_split(np.flatnonzero(~in_a)[::-1], 3):
        part_b.update(X[chunk], y[chunk])
    merged = part_a.merge(part_b)
    assert merged is part_a
    whole = M.FeatureStats(K, d).update(X, y)
    assert merged.counts.tolist() == whole.counts.tolist()
    assert_close(merged.means.numpy(), whole.means.numpy(), 1e-12)
    assert_close(merged.within_cov.numpy(), whole.within_cov.numpy(), 1e-10)
    assert M.nc1(merged) == pytest.approx(M.nc1(whole), rel=1e-10)
    empty = M.FeatureStats(K, d).merge(whole)
    assert_close(empty.within_cov.numpy(), whole.within_cov.numpy(), 1e-14)


def test_large_offset_keeps_nc1():
    rng = np.random.default_rng(7)
    K, d = 4, 6
    X, y = mixture(rng, K, d)
    plain = M.nc1(M.FeatureStats(K, d).update(X, y))
    shifted = M.FeatureStats(K, d)
    for chunk in np.array_split(np.arange(len(y)), 4):
        shifted.update(X[chunk] + 1e4, y[chunk])
    assert M.nc1(shifted) == pytest.approx(plain, rel=1e-8)


def test_nearest_mean_predictions_and_accumulator():
    rng = np.random.default_rng(8)
    K, d = 5, 3
    X, y = mixture(rng, K, d)
    means = rng.standard_normal((K, d))
    nearest = [int(np.argmin([np.linalg.norm(h - m) for m in means])) for h in X]
    assert M.nearest_mean_predictions(X, means).tolist() == nearest
    predictions = rng.integers(0, K, len(y))
    counter = M.NC4Accumulator(means)
    for chunk in np.array_split(np.arange(len(y)), 3):
        counter.update(X[chunk], predictions[chunk])
    expected = np.mean(predictions != np.array(nearest))
    assert counter.value == pytest.approx(expected, abs=1e-15)
    assert M.nc4(X, predictions, means) == pytest.approx(expected, abs=1e-15)
    assert math.isnan(M.NC4Accumulator(means).value)


def test_torch_input_and_missing_optionals():
    rng = np.random.default_rng(9)
    X, y = mixture(rng, K=3, d=4)
    stats = M.FeatureStats(3, 4, device="cpu").update(torch.tensor(X), torch.tensor(y))
    report = M.collapse_report(stats, torch.randn(3, 4))
    assert math.isnan(report.nc4) and math.isnan(report.b_norm)
    assert all(type(v) is float for v in report.to_dict().values())


# collapse_report_from_features: two passes over stored features, no d×d matrix.

def from_features(features, labels, W, b):
    logits = features.astype(np.float64) @ np.asarray(W, np.float64).T + b
    return M.collapse_report_from_features(features, labels, W, b, logits).to_dict()


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-6)])
@pytest.mark.parametrize("block", [None, 7])
def test_report_from_features_matches_brute_force(dtype, rtol, block, passes, monkeypatch):
    if block is not None:  # 7 float64 elements a block: one row at a time, exercising the loop
        monkeypatch.setattr(M, "_BLOCK_ELEMENTS", block)
    X, y, W, b, ref = brute_force_problem(dtype, seed=10)
    report = from_features(X, y, W, b)
    for name in MEASURES:
        assert report[name] == pytest.approx(ref[name], rel=rtol, abs=1e-14), name
    assert 0 < report["nc4"] < 1 and report["nc1"] > 0.01


@pytest.mark.parametrize("K,d,offset", [(6, 3, 0.0), (6, 3, 1e4), (10, 32, 1e4), (3, 2, 0.0)])
def test_report_from_features_equals_streaming_statistics(K, d, offset, passes):
    """The two-pass projection and FeatureStats' d×d scatter are different computations."""
    rng = np.random.default_rng(K * d)
    X, y = mixture(rng, K, d, offset=offset)
    W, b = rng.standard_normal((K, d)), rng.standard_normal(K)
    streamed = measured(X, y, K, W, b, batch=13)[1]
    report = from_features(X, y, W, b)
    for name in MEASURES:
        assert report[name] == pytest.approx(streamed[name], rel=1e-8, abs=1e-14), name


def test_report_from_features_without_optionals_and_coincident_means(passes):
    X = np.array([[1.0, 2.0], [1.0, 0.0], [1.0, 2.0], [1.0, 0.0]])
    report = M.collapse_report_from_features(X, [0, 0, 1, 1], np.eye(2))
    assert math.isnan(report.nc4) and math.isnan(report.b_norm)
    assert math.isnan(report.nc1)  # both class means are (1, 1)


@pytest.mark.parametrize("change,name", [
    (dict(features=np.zeros(8)), "features"),
    (dict(features=np.zeros((0, 4))), "features"),
    (dict(W=np.zeros((3, 5))), "W"),
    (dict(labels=[0, 1, 2]), "labels"),
    (dict(labels=[0, 1, 0, 1, 0, 1, 0, 1]), "class"),
    (dict(logits=np.zeros((8, 4))), "logits"),
    (dict(features=np.full((8, 4), np.nan)), "features"),
])
def test_report_from_features_rejects_bad_input(change, name):
    args = dict(features=np.random.default_rng(0).standard_normal((8, 4)), labels=np.arange(8) % 3,
                W=np.ones((3, 4)), logits=np.zeros((8, 3)))
    args.update(change)
    with pytest.raises(ValueError, match=name):
        M.collapse_report_from_features(args["features"], args["labels"], args["W"], logits=args["logits"])


# Bad input: one ValueError naming the argument.

def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        M.FeatureStats(1, 4)
    with pytest.raises(ValueError, match="dim"):
        M.FeatureStats(3, 0)
    with pytest.raises(ValueError, match="dim"):
        M.FeatureStats(3, "512")


@pytest.mark.parametrize("features,labels,name", [
    (np.zeros(4), [0, 1, 2, 0], "features"),
    (np.zeros((4, 5)), [0, 1, 2, 0], "features"),
    (np.zeros((4, 4)), [0, 1, 2], "labels"),
    (np.zeros((4, 4)), [0, 1, 3, 0], "labels"),
    (np.zeros((4, 4)), [0, -1, 2, 0], "labels"),
    (np.full((4, 4), np.nan), [0, 1, 2, 0], "features"),
    (np.array([[0, 0, 0, np.inf]] * 4), [0, 1, 2, 0], "features"),
])
def test_bad_batches(features, labels, name):
    stats = M.FeatureStats(3, 4)
    with pytest.raises(ValueError, match=name):
        stats.update(features, labels)
    assert int(stats.counts.sum()) == 0  # a rejected batch leaves no trace


def test_nan_after_good_batches_leaves_stats_unchanged():
    stats = M.FeatureStats(2, 2).update([[0.0, 1.0], [2.0, 3.0]], [0, 1])
    before = stats.within_cov.clone()
    with pytest.raises(ValueError, match="features"):
        stats.update([[np.nan, 1.0], [5.0, 1.0]], [0, 1])
    assert torch.equal(stats.within_cov, before)


def test_empty_class_is_named():
    stats = M.FeatureStats(4, 3).update(np.random.default_rng(0).standard_normal((6, 3)), [0, 1, 3, 0, 1, 3])
    for measure in (M.nc1, M.nc2_h, lambda s: s.means, lambda s: M.collapse_report(s, np.ones((4, 3)))):
        with pytest.raises(ValueError, match=r"stats has no samples of class\(es\) \[2\]"):
            measure(stats)
    assert stats.within_cov.shape == (3, 3)  # still defined


def test_bad_classifier_and_other_arguments():
    rng = np.random.default_rng(10)
    X, y = mixture(rng, K=3, d=4)
    stats = M.FeatureStats(3, 4).update(X, y)
    W = rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match="W"):
        M.collapse_report(stats, W.T)
    with pytest.raises(ValueError, match="W"):
        M.nc3(np.full((3, 4), np.nan), stats)
    with pytest.raises(ValueError, match="b"):
        M.collapse_report(stats, W, b=np.zeros(4))
    with pytest.raises(ValueError, match="nc4"):
        M.collapse_report(stats, W, nc4=1.5)
    with pytest.raises(ValueError, match="stats"):
        M.nc1(X)
    with pytest.raises(ValueError, match="A"):
        M.etf_distance(np.ones(3))
    with pytest.raises(ValueError, match="other"):
        stats.merge(M.FeatureStats(4, 4))
    with pytest.raises(ValueError, match="features"):
        M.nearest_mean_predictions(X[:, :3], stats.means)
    with pytest.raises(ValueError, match="predictions"):
        M.nc4(X, y[:-1], stats.means)
    with pytest.raises(ValueError, match="means"):
        M.NC4Accumulator(np.ones((1, 4)))


def test_parameters_that_require_grad_are_accepted():
    rng = np.random.default_rng(11)
    X, y = mixture(rng, K=3, d=4)
    layer = torch.nn.Linear(4, 3)
    features = torch.tensor(X, dtype=torch.float32, requires_grad=True)
    stats = M.FeatureStats(3, 4).update(features, y)
    rate = M.nc4(features, layer(features), stats.means)
    report = M.collapse_report(stats, layer.weight, b=layer.bias, nc4=rate)
    assert report.b_norm == pytest.approx(float(layer.bias.detach().norm()), rel=1e-6)


def test_report_from_features_accepts_half_precision_features():
    rng = np.random.default_rng(11)
    X, y = mixture(rng, K=3, d=4)
    half = torch.tensor(X, dtype=torch.bfloat16)
    W = rng.standard_normal((3, 4))
    expected = M.collapse_report_from_features(half.float(), y, W).to_dict()
    actual = M.collapse_report_from_features(half, y, W).to_dict()
    for name in ("nc1", "nc2_h", "nc3", "h_norm"):
        assert actual[name] == pytest.approx(expected[name], rel=1e-12), name


def test_nc4_rejects_predictions_outside_the_classes():
    means = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    features = np.array([[1.0, 0.0], [3.0, 1.0], [0.0, 3.0], [0.5, 0.5]])
    assert M.nc4(features, [0, 1, 2, 0], means) == 0.0
    for predictions in ([0, 1, 3, 0], [-1, 1, 2, 0]):
        with pytest.raises(ValueError, match=r"predictions must lie in \[0, 3\)"):
            M.nc4(features, predictions, means)
    with pytest.raises(ValueError, match=r"one column per class: expected shape \(4, 3\), got \(4, 5\)"):
        M.nc4(features, np.zeros((4, 5)), means)
    with pytest.raises(ValueError, match="predictions"):
        M.NC4Accumulator(means).update(features, np.array([True, False, True, False]))
