"""How far each Hessian method scales: the symmetry-reduced spectrum against the dense autograd one.

Run: ``python benchmarks/bench_hessian.py [--threads N]`` (default: torch's thread count; on a
machine shared with other work, ``--threads 1`` gives steadier numbers). Prints two tables:

1. :func:`nclab.hessian.reduced_spectrum` at CIFAR scale (target: under 5 s each);
2. the dense route (:func:`nclab.hessian.dense_hessian` plus a full eigendecomposition) against
   the number of variables, each size in a fresh process so that its peak memory can be read,
   growing until one size takes more than 10 s or 2 GB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from nclab.hessian import reduced_spectrum
from nclab.ufm import UFM

LAMBDAS = dict(lambda_W=1e-3, lambda_H=1e-6, lambda_b=1e-2, delta=0.1)
REDUCED_SIZES = [(10, 5000, 512), (100, 500, 512), (300, 100, 512)]  # (K, n, d)
DENSE_SIZES = [(3, 2, 3), (4, 5, 6), (5, 10, 8), (10, 10, 10), (10, 20, 16), (10, 30, 20), (10, 40, 24), (10, 50, 28)]
TIME_LIMIT_S, MEMORY_LIMIT_GB = 10.0, 2.0

DENSE_CHILD = """
import json, resource, sys, time
import torch
from nclab.hessian import dense_hessian
from nclab.ufm import UFM
K, n, d, threads = map(int, sys.argv[1:5])
torch.set_num_threads(threads)
ufm = UFM(K, n, d, lambda_W=1e-3, lambda_H=1e-6, lambda_b=1e-2, delta=0.1)
sol = ufm.closed_form()
tiny = UFM(3, 2, 3, lambda_W=1e-3, lambda_H=1e-6, lambda_b=1e-2, delta=0.1)
dense_hessian(tiny, tiny.closed_form().W, tiny.closed_form().H, tiny.closed_form().b)  # one-off set-up
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
start = time.perf_counter()
hessian = dense_hessian(ufm, sol.W, sol.H, sol.b)
built = time.perf_counter() - start
torch.linalg.eigvalsh(hessian)
total = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"build_s": built, "total_s": total, "peak_gb": peak, "baseline_gb": baseline}))
"""


def time_reduced(K: int, n: int, d: int, repeats: int = 3) -> float:
    """Best of ``repeats`` timings of reduced_spectrum."""
    ufm = UFM(K, n, d, **LAMBDAS)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        reduced_spectrum(ufm)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    threads = parser.parse_args().threads
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {threads} thread(s); lambda_W=1e-3, lambda_H=1e-6, lambda_b=1e-2, delta=0.1\n")
    reduced_spectrum(UFM(3, 2, 3, **LAMBDAS))  # first-call set-up of autograd, not part of any size
    print("Reduced spectrum (best of 3 runs; target < 5 s)")
    print(f"{'K':>5} {'n':>6} {'d':>5} {'variables':>12} {'time (s)':>9} {'distinct eigenvalues':>21}")
    for K, n, d in REDUCED_SIZES:
        ufm = UFM(K, n, d, **LAMBDAS)
        seconds = time_reduced(K, n, d)
        distinct = len(reduced_spectrum(ufm).eigenvalues)
        print(f"{K:>5} {n:>6} {d:>5} {ufm.num_parameters:>12,} {seconds:>9.3f} {distinct:>21}")

    print(f"\nDense autograd Hessian + eigvalsh (fresh process per size; stops past {TIME_LIMIT_S:.0f} s "
          f"or {MEMORY_LIMIT_GB:.0f} GB)")
    print(f"{'K':>5} {'n':>6} {'d':>5} {'variables':>12} {'build (s)':>10} {'total (s)':>10} "
          f"{'peak RSS (GB)':>14} {'reduced (s)':>12}")
    for K, n, d in DENSE_SIZES:
        ufm = UFM(K, n, d, **LAMBDAS)
        out = subprocess.run([sys.executable, "-c", DENSE_CHILD, str(K), str(n), str(d), str(threads)],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{K:>5} {n:>6} {d:>5} {ufm.num_parameters:>12,} {result['build_s']:>10.2f} "
              f"{result['total_s']:>10.2f} {result['peak_gb']:>14.2f} {time_reduced(K, n, d):>12.4f}")
        if result["total_s"] > TIME_LIMIT_S or result["peak_gb"] > MEMORY_LIMIT_GB:
            break
    print("(peak RSS includes about "
          f"{result['baseline_gb']:.2f} GB for Python and torch themselves)")


if __name__ == "__main__":
    main()
