"""How fast is a full collapse report on 50,000 features, and how accurate?

Compares, for d = 512 float32 features and K = 10 and K = 100 classes:

- nclab: ``FeatureStats`` fed in batches (one streaming pass) followed by ``collapse_report``,
  on the CPU and, when one is present, on the GPU;
- the way published research code computes NC1: per-sample Python loops (a first pass for
  the class means, a second accumulating one outer product per sample into per-class
  within-class scatters), then a d×d NumPy pseudo-inverse of Σ_B recomputed for every class.
  Timing the loops on all samples would take minutes, so they run on a subset and are
  extrapolated linearly; the per-class pseudo-inverse is timed once and multiplied by K;
- the floor: one float64 d×d Gram matrix of the same features with NumPy,
  ``X.astype(float64).T @ X``, which any exact method must at least match in work.

Errors are the largest relative deviation, over the statistics-dependent measures (NC1,
NC2-H, NC2-WH, NC3, equinorm and equiangularity of the means, mean norm), from a float64
NumPy reference computed in two passes over the whole data.

Run: ``python benchmarks/bench_metrics.py`` (options: ``--repeats``, ``--batch``, ``--subset``,
``--threads``; on a busy machine ``--threads 1`` gives steadier numbers).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from nclab.metrics import FeatureStats, collapse_report

N, D = 50_000, 512
COMPARED = ("nc1", "nc2_h", "nc2_wh", "nc3", "equinorm_h", "equiangularity_h", "h_norm")


def make_data(K: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nonnegative (post-ReLU-like) float32 features of a Gaussian mixture, and a classifier."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, N)
    centres = rng.standard_normal((K, D))
    features = np.maximum(centres[labels] + rng.standard_normal((N, D)), 0.0).astype(np.float32)
    return features, labels, rng.standard_normal((K, D)).astype(np.float32)


def seconds(fn, sync=lambda: None) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def median_seconds(fn, repeats: int) -> float:
    return statistics.median(seconds(fn) for _ in range(repeats))


def reference(features: np.ndarray, labels: np.ndarray, K: int, W: np.ndarray) -> dict[str, float]:
    """The compared measures in float64 NumPy, two passes over the data."""
    X = features.astype(np.float64)
    W = W.astype(np.float64)
    counts = np.bincount(labels, minlength=K)
    means = np.zeros((K, D))
    np.add.at(means, labels, X)
    means /= counts[:, None]
    centred = X - means[labels]
    sigma_w = centred.T @ centred / N
    Mt = means - means.mean(0)
    sigma_b = Mt.T @ Mt / K
    etf = (np.eye(K) - 1.0 / K) / np.sqrt(K - 1)

    def to_etf(G):
        return np.linalg.norm(G / np.linalg.norm(G) - etf)

    norms = np.linalg.norm(Mt, axis=1)
    unit = Mt / norms[:, None]
    upper = np.triu_indices(K, 1)
    return dict(
        nc1=np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / K,
        nc2_h=to_etf(Mt @ Mt.T),
        nc2_wh=to_etf(W @ Mt.T),
        nc3=np.linalg.norm(W / np.linalg.norm(W) - Mt / np.linalg.norm(Mt)),
        equinorm_h=norms.std(ddof=1) / norms.mean(),
        equiangularity_h=np.abs((unit @ unit.T)[upper] + 1.0 / (K - 1)).mean(),
        h_norm=norms.mean(),
    )


def max_relative_error(report: dict[str, float], ref: dict[str, float]) -> float:
    return max(abs(report[name] - ref[name]) / abs(ref[name]) for name in COMPARED)


def nclab_report(features: torch.Tensor, labels: torch.Tensor, K: int, W: torch.Tensor, batch: int):
    stats = FeatureStats(K, D, device=features.device)
    for start in range(0, N, batch):
        stats.update(features[start:start + batch], labels[start:start + batch])
    return collapse_report(stats, W)


def baseline_seconds(features: np.ndarray, labels: np.ndarray, K: int, subset: int, repeats: int) -> float:
    """Published-style NC1: per-sample loops (timed on a subset, extrapolated) + per-class pinv."""
    means = np.stack([features[labels == k].mean(0) for k in range(K)]).astype(np.float64)
    sigma_b = np.cov((means - means.mean(0)).T, bias=True)

    def mean_pass():
        sums, counts = np.zeros((K, D)), np.zeros(K)
        for h, y in zip(features[:subset], labels[:subset]):
            sums[y] += h
            counts[y] += 1

    def scatter_pass():
        scatter = np.zeros((K, D, D))
        for h, y in zip(features[:subset], labels[:subset]):
            z = h - means[y]
            scatter[y] += np.outer(z, z)

    def one_class_pinv():
        np.trace(np.eye(D) @ np.linalg.pinv(sigma_b))

    loops = median_seconds(mean_pass, repeats) + median_seconds(scatter_pass, repeats)
    return loops * N / subset + K * median_seconds(one_class_pinv, repeats)


def blas_threads() -> int:
    return max((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"), default=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per entry (median reported)")
    parser.add_argument("--batch", type=int, default=5000, help="features per FeatureStats.update call")
    parser.add_argument("--subset", type=int, default=1000, help="samples the per-sample loops really run on")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and NumPy's BLAS (default: their own choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []  # (K, method, median seconds, median ratio to the floor, error)
    for K in (10, 100):
        features, labels, W = make_data(K)
        ref = reference(features, labels, K, W)
        runs = {}
        for device in devices:
            x, y, w = (torch.from_numpy(a).to(device) for a in (features, labels, W))
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            error = max_relative_error(nclab_report(x, y, K, w, args.batch).to_dict(), ref)  # also warms up
            runs[device] = (lambda x=x, y=y, w=w: nclab_report(x, y, K, w, args.batch), sync, error, [])
        # Floor and nclab alternate, so a load change on a shared machine hits both alike.
        floor_times = []
        for _ in range(args.repeats):
            floor_times.append(seconds(lambda: (lambda a: a.T @ a)(features.astype(np.float64))))
            for run, sync, _, times in runs.values():
                times.append(seconds(run, sync))
        floor = statistics.median(floor_times)
        rows.append((K, "floor: NumPy float64 Gram X.T @ X (cpu)", floor, 1.0, "-"))
        for device, (_, _, error, times) in runs.items():
            ratio = statistics.median(t / f for t, f in zip(times, floor_times))
            rows.append((K, f"nclab collapse_report, batches of {args.batch} ({device})",
                         statistics.median(times), ratio, f"{error:.1e}"))
        baseline = baseline_seconds(features, labels, K, args.subset, min(args.repeats, 3))
        rows.append((K, f"per-sample loops + per-class pinv (cpu; loops on {args.subset}, extrapolated)",
                     baseline, baseline / floor, "n/a"))

    print(f"N = {N}, d = {D}, float32 features; medians of {args.repeats} runs (x floor: median of "
          f"paired ratios); threads: torch {torch.get_num_threads()}, BLAS {blas_threads()}")
    width = max(len(row[1]) for row in rows)
    header = f"{'K':>4}  {'method':<{width}}  {'seconds':>9}  {'x floor':>8}  {'max rel. error':>14}"
    print(header)
    print("-" * len(header))
    for K, name, secs, ratio, error in rows:
        print(f"{K:>4}  {name:<{width}}  {secs:>9.3f}  {ratio:>8.2f}  {error:>14}")


if __name__ == "__main__":
    main()
