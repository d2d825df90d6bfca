"""Parallel sweeps: the book's quick sweep with two worker processes against one.

Run: ``python benchmarks/bench_sweep.py [--seeds N] [--workers 1 2]``. Trains the sweep of
chapters 2-5 (every δ of :data:`nclab.runs.SWEEP_DELTAS`, the first ``N`` seeds; default all of
:data:`nclab.runs.SWEEP_SEEDS`) from an empty result cache once per worker count, one after the
other in this run, and prints the wall times and the speed-up over one worker. Each worker trains
on one thread, so on a machine with two free cores the target is at least 1.7x for two workers.
The results of the sweeps are compared as well: a parallel sweep must give the same histories.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from nclab import runs


def measure(configs, workers: int) -> tuple[float, list]:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["NCLAB_CACHE"] = cache
        start = time.perf_counter()
        results = runs.sweep(configs, progress=False, workers=workers)
        return time.perf_counter() - start, [[{k: v for k, v in h.items() if not k.startswith("time_")}
                                              for h in r.history] for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=len(runs.SWEEP_SEEDS), help="seeds per δ (default: the book's)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default: 1 2)")
    args = parser.parse_args()
    configs = runs.grid("quick", deltas=runs.SWEEP_DELTAS, seeds=range(args.seeds))
    print(f"the book's quick sweep: {len(configs)} runs ({len(runs.SWEEP_DELTAS)} δ x {args.seeds} seeds), "
          f"{os.cpu_count()} CPU cores, one thread per worker")
    times, histories = {}, {}
    for workers in args.workers:
        times[workers], histories[workers] = measure(configs, workers)
        print(f"  {workers} worker{'s' if workers > 1 else ' '}  {times[workers]:7.1f} s   "
              f"{len(configs) / times[workers]:.2f} runs/s   speed-up {times[args.workers[0]] / times[workers]:.2f}x",
              flush=True)
    same = all(histories[w] == histories[args.workers[0]] for w in args.workers)
    print(f"same histories in every sweep: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
