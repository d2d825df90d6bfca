"""The cost of measuring a fashion-study run, and its training throughput against the core's sgemm rate.

Trains the ``fashion-study`` config as configured (ResNet18 width 8 on 2000 Fashion-MNIST images,
one thread; ``--eval-subset`` overrides its evaluation subset) for a few epochs, with full records at
the first and last of them and a light record at each, and prints

(a) the measurement share of a whole 50-epoch run, **extrapolated** from the per-epoch costs
    measured here: 50 training epochs, 39 light passes and 11 full measurements (epochs 1, 5, ...,
    50; the light record of those epochs is read off the full one). With ``eval_subset``, the first
    epoch's full measurement (on the validation and test subsets) stands for the 10 intermediate ones
    and the last epoch's (on the whole splits) for the final one; without, their mean stands for all
    11. Only the counts come from the 50-epoch schedule; every per-epoch cost is measured here;
(b) the training throughput in GFLOP/s: the FLOPs of one training step (forward and backward, both
    counted by ``torch.utils.flop_counter.FlopCounterMode`` on a batch of 128) times the steps of an
    epoch, divided by the epoch's mean training seconds; and that as a fraction of this core's
    float32 matmul rate, measured in the same run (a 1024x1024 by 1024x1024 matmul, one thread).

All ratios come from one run on one machine; absolute seconds depend on the machine and its load.

    python benchmarks/bench_measurement.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nclab import data, models, runs
from nclab.train import train


def sgemm_gflops(repeats: int = 10) -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 1024 ** 3 / best / 1e9


def step_flops(config) -> int:
    """FLOPs of one training step (forward + backward) on a full batch, as FlopCounterMode counts them."""
    train_set = data.load(config.dataset, "train", train_size=config.train_size)
    model = models.build(config.model, train_set.num_classes, train_set.in_channels, train_set.image_size,
                         config.width).train()
    batches = data.DeviceBatches(train_set, torch.device("cpu"))
    x, y = next(iter(batches.shuffled(config.batch_size, torch.Generator().manual_seed(0), False)))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs to train (at least 3)")
    parser.add_argument("--eval-subset", type=int, default=-1,
                        help="override the profile's eval_subset (0: none, whole splits throughout)")
    args = parser.parse_args()
    study = runs.config("fashion-study", delta=0.05, seed=0)
    if args.eval_subset >= 0:
        study = dataclasses.replace(study, eval_subset=args.eval_subset or None)
    torch.set_num_threads(1)
    gemm = sgemm_gflops()
    result = train(dataclasses.replace(study, epochs=max(3, args.epochs)), progress=False)
    gemm = max(gemm, sgemm_gflops())  # before and after: the better of the two
    full = [r["time_measure"] for r in result.history]
    light = [r["time_measure"] for r in result.light if r["time_measure"] > 0]
    epoch_train = [r["time_train"] for r in result.history]
    t_train, t_light = (sum(v) / len(v) for v in (epoch_train, light))
    # Intermediate full records (on the subset, if any) and the final one (always the whole splits).
    t_mid, t_last = (full[0], full[-1]) if study.eval_subset else (sum(full) / len(full),) * 2
    n_full = len([e for e in range(1, study.epochs + 1) if e % study.log_every == 0 or e in (1, study.epochs)])
    n_light = study.epochs - n_full
    measuring = (n_full - 1) * t_mid + t_last + n_light * t_light
    total = study.epochs * t_train + measuring
    where = f"val and test subsets of {study.eval_subset} images" if study.eval_subset else "whole splits"
    print(f"per epoch (measured, {len(result.light)} epochs, 1 thread, eval_subset={study.eval_subset}): training "
          f"{t_train:.2f} s, light pass {t_light:.2f} s, full measurement {t_mid:.2f} s ({where}), "
          f"final full measurement {t_last:.2f} s (whole splits)")
    print(f"(a) 50-epoch run, extrapolated: {study.epochs} x {t_train:.2f} s training + {n_light} light x "
          f"{t_light:.2f} s + {n_full - 1} full x {t_mid:.2f} s + 1 final x {t_last:.2f} s = {total:.0f} s; "
          f"measurement share {measuring / total:.1%} (target <= 25%)")
    flops = step_flops(study)
    steps = math.ceil(study.train_size / study.batch_size)
    last = study.train_size - (steps - 1) * study.batch_size  # the last batch is smaller
    epoch_flops = flops * ((steps - 1) + last / study.batch_size)
    rate = epoch_flops / t_train / 1e9
    print(f"(b) training: {flops / 1e9:.2f} GFLOP per step of {study.batch_size} (forward + backward, counted), "
          f"{epoch_flops / 1e9:.1f} GFLOP per epoch, {rate:.2f} GFLOP/s; sgemm 1024^3 on one thread "
          f"{gemm:.1f} GFLOP/s; training runs at {rate / gemm:.1%} of it")


if __name__ == "__main__":
    main()
