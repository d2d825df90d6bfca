"""Training throughput: device-resident batches against a plain DataLoader pipeline.

Both pipelines run the same model and the same step (forward, LS loss, backward, SGD with
momentum and weight decay); only the way batches reach the model differs:

- device-resident (nclab): the split lives on the device as one normalized tensor; each epoch is
  one randperm and each batch one index gather (channels-last and bf16 autocast on CUDA);
- DataLoader: ``DataLoader(TensorDataset(x, y), batch_size, shuffle=True, num_workers=0)``,
  fp32, NCHW, batches copied to the device.

Cases: the quick profile's digits MLP; a ResNet18 on random 3x32x32 images (a few steps on the
CPU); on a CUDA GPU also a CIFAR-sized epoch (50,000 random images, batch 128) in absolute
seconds, with the measurement pass that follows a logged epoch. Finally, the cost of the
measurement pass relative to a training epoch in a real quick-profile run, and the same pass taken
apart: its three eval forward passes (train, val and test splits) against everything else.

    python benchmarks/bench_training.py [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from nclab import data, models, runs
from nclab.evaluate import MEASURE_BATCH_SIZE, forward, measure
from nclab.train import train


def _sgd(params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
    """The optimizer of nclab.train.train."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True)


def _step(model, optimizer, x, y, cuda: bool) -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        z = model(x)
    loss = F.cross_entropy(z.float(), y, label_smoothing=0.1)
    model.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class _Pipeline:
    """A model, its momentum buffers and an endless stream of batches from one pipeline."""

    def __init__(self, model, make_batches, device: torch.device, cuda_path: bool):
        self.model, self.make_batches, self.device, self.cuda_path = model, make_batches, device, cuda_path
        self.optimizer = _sgd(model.parameters())
        self.batches = iter(())
        model.train()

    def steps_per_second(self, steps: int) -> float:
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            batch = next(self.batches, None)
            if batch is None:
                self.batches = iter(self.make_batches())
                batch = next(self.batches)
            x, y = batch
            _step(self.model, self.optimizer, x.to(self.device, non_blocking=True),
                  y.to(self.device, non_blocking=True), self.cuda_path)
        _sync(self.device)
        return steps / (time.perf_counter() - start)


def compare(name: str, dataset: data.Dataset, model_name: str, width: int | None, batch_size: int,
            device: torch.device, steps: int, rounds: int = 3) -> tuple[str, float, float]:
    """Steps per second of both pipelines on one model and dataset: the best of ``rounds``
    alternating rounds of ``steps`` steps each, after two warm-up steps per pipeline."""
    cuda = device.type == "cuda"
    conv = model_name != "mlp"

    def fresh_model(channels_last: bool):
        torch.manual_seed(0)
        net = models.build(model_name, dataset.num_classes, dataset.in_channels, dataset.image_size, width)
        net = net.to(device)
        return net.to(memory_format=torch.channels_last) if channels_last else net

    resident = data.DeviceBatches(dataset, device, channels_last=cuda and conv)
    generator = torch.Generator().manual_seed(0)
    ours = _Pipeline(fresh_model(cuda and conv), lambda: resident.shuffled(batch_size, generator), device, cuda)
    cpu_images = data.DeviceBatches(dataset, "cpu").images  # the same normalized fp32 NCHW tensor
    loader = DataLoader(TensorDataset(cpu_images, dataset.labels), batch_size=batch_size, shuffle=True,
                        num_workers=0)
    theirs = _Pipeline(fresh_model(False), lambda: iter(loader), device, False)
    best = [0.0, 0.0]
    for pipeline in (ours, theirs):
        pipeline.steps_per_second(2)
    for _ in range(rounds):
        for i, pipeline in enumerate((ours, theirs)):
            best[i] = max(best[i], pipeline.steps_per_second(steps))
    return name, best[0], best[1]


def _random_images(n: int, num_classes: int = 10, size: int = 32, seed: int = 0) -> data.Dataset:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, num_classes, (n,), generator=generator)
    return data.Dataset("random", "train", images, labels, num_classes, (0.5,) * 3, (0.29,) * 3)


def cifar_sized_epoch(device: torch.device) -> list[tuple[str, float]]:
    """Seconds per 50,000-image ResNet18 epoch (batch 128) and per measurement pass, on CUDA."""
    train_set = _random_images(50_000)
    cuda = device.type == "cuda"
    rows = []
    splits = [data.DeviceBatches(d, device, channels_last=True)
              for d in (train_set, _random_images(5_000, seed=1), _random_images(10_000, seed=2))]
    torch.manual_seed(0)
    model = models.build("resnet18", 10, 3, 32).to(device).to(memory_format=torch.channels_last)
    optimizer = _sgd(model.parameters())
    generator = torch.Generator().manual_seed(0)
    for label in ("warm-up epoch", "training epoch"):
        _sync(device)
        start = time.perf_counter()
        model.train()
        for x, y in splits[0].shuffled(128, generator):
            _step(model, optimizer, x, y, cuda)
        _sync(device)
        if label == "training epoch":
            rows.append(("ResNet18, 50k 32x32 images, batch 128: training epoch (device-resident)",
                         time.perf_counter() - start))
    _sync(device)
    start = time.perf_counter()
    measure(model, *splits, delta=0.1)
    _sync(device)
    rows.append(("  measurement pass (train 50k + val 5k + test 10k, NC report, ECE, T)",
                 time.perf_counter() - start))

    loader = DataLoader(TensorDataset(data.DeviceBatches(train_set, "cpu").images, train_set.labels),
                        batch_size=128, shuffle=True, num_workers=0)
    model = model.to(memory_format=torch.contiguous_format)
    _sync(device)
    start = time.perf_counter()
    for x, y in loader:
        _step(model, optimizer, x.to(device, non_blocking=True), y.to(device, non_blocking=True), False)
    _sync(device)
    rows.append(("  same epoch with the DataLoader pipeline (fp32, NCHW)", time.perf_counter() - start))
    return rows


def measurement_breakdown(repeats: int = 15) -> dict:
    """Median seconds of a quick-profile training epoch, of the measurement pass after it, and of
    the pass's three forward passes alone (train, val, test), interleaved ``repeats`` times."""
    config = runs.config("quick")
    sets = [data.load(config.dataset, split) for split in ("train", "val", "test")]
    splits = [data.DeviceBatches(dataset, "cpu") for dataset in sets]
    torch.manual_seed(config.seed)
    model = models.build(config.model, sets[0].num_classes, sets[0].in_channels, sets[0].image_size)
    optimizer = _sgd(model.parameters(), config.lr, config.momentum, config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    times = {"epoch": [], "forwards": [], "measure": []}
    for _ in range(repeats + 1):  # the first round warms up
        start = time.perf_counter()
        model.train()
        for x, y in splits[0].shuffled(config.batch_size, generator):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            model.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        times["epoch"].append(time.perf_counter() - start)
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            for split in splits:
                forward(model, split, batch_size=MEASURE_BATCH_SIZE)
        times["forwards"].append(time.perf_counter() - start)
        start = time.perf_counter()
        measure(model, *splits, delta=0.1)
        times["measure"].append(time.perf_counter() - start)
    return {name: float(np.median(values[1:])) for name, values in times.items()}


def measurement_fraction() -> dict:
    """Measurement cost against training cost in a real quick-profile run (CE, seed 0)."""
    config = runs.config("quick")
    result = train(config, progress=False)
    per_epoch = result.series("time_measure") / result.series("time_train")
    return {
        "config": config,
        "median_ratio": float(np.median(per_epoch)),
        "share_of_run": float(result.series("time_measure").sum() / result.final["time_elapsed"]),
        "time_train": float(np.median(result.series("time_train"))),
        "time_measure": float(np.median(result.series("time_measure"))),
        "elapsed": float(result.final["time_elapsed"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1, as the quick profile uses)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])

    print(f"torch {torch.__version__}, CPU threads {args.threads}"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))
    print()
    print("steps per second, best of alternating rounds")
    print(f"{'case':<44} {'device':<6} {'resident steps/s':>17} {'DataLoader steps/s':>19} {'speed-up':>9}")
    digits = data.load("digits", "train")
    quick = runs.config("quick")
    for device in devices:
        cases = [compare(f"digits MLP (quick profile, batch {quick.batch_size})", digits, "mlp", None,
                         quick.batch_size, device, steps=100),
                 compare("digits MLP, batch 512", digits, "mlp", None, 512, device, steps=20)]
        if device.type == "cpu":
            cases.append(compare("ResNet18, 32x32 random images, batch 16", _random_images(128), "resnet18",
                                 None, 16, device, steps=3, rounds=2))
        else:
            cases.append(compare("ResNet18, 32x32 random images, batch 128", _random_images(12_800),
                                 "resnet18", None, 128, device, steps=100))
        for name, ours, theirs in cases:
            print(f"{name:<44} {device.type:<6} {ours:17.1f} {theirs:19.1f} {ours / theirs:8.2f}x")
    if torch.cuda.is_available():
        print()
        print(f"{'CIFAR-sized epoch on ' + torch.cuda.get_device_name():<76} {'seconds':>9}")
        for name, seconds in cifar_sized_epoch(torch.device("cuda")):
            print(f"{name:<76} {seconds:9.2f}")

    fraction = measurement_fraction()
    parts = measurement_breakdown()
    c = fraction["config"]
    print()
    print(f"measurement pass, quick profile ({c.model} on {c.dataset}, {c.epochs} epochs, batch {c.batch_size}, "
          f"measured every {c.log_every} epochs, {c.threads} thread)")
    print(f"  median training epoch          {fraction['time_train'] * 1e3:8.1f} ms")
    print(f"  median measurement pass        {fraction['time_measure'] * 1e3:8.1f} ms"
          f"   ({fraction['median_ratio']:.0%} of a training epoch)")
    print(f"  measurement share of the run   {fraction['share_of_run']:8.1%}"
          f"   (whole run {fraction['elapsed']:.1f} s, checkpoints included)")
    n_train, n_all = (sum(len(data.load(c.dataset, s)) for s in splits) for splits in (("train",), ("train", "val", "test")))
    print("the same pass taken apart (medians of 15 interleaved rounds, same model and splits)")
    print(f"  training epoch ({n_train} images, forward + backward + SGD)   {parts['epoch'] * 1e3:8.1f} ms")
    print(f"  measurement pass                                    {parts['measure'] * 1e3:8.1f} ms"
          f"   ({parts['measure'] / parts['epoch']:.0%} of the epoch)")
    print(f"    its forward passes alone ({n_all} images, eval)    {parts['forwards'] * 1e3:8.1f} ms"
          f"   ({parts['forwards'] / parts['epoch']:.0%})")
    print(f"    the rest: NC report, NC4, losses, ECE, T          {(parts['measure'] - parts['forwards']) * 1e3:8.1f} ms"
          f"   ({(parts['measure'] - parts['forwards']) / parts['epoch']:.0%})")


if __name__ == "__main__":
    main()
