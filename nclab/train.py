"""One training run, measured as it goes (chapters 3, 4, 5 and 9).

:func:`train` is a single loop meant to be read top to bottom: load the splits onto the device,
build the model and the SGD optimizer, then for each epoch take shuffled mini-batch steps on the
label-smoothing loss and, every ``log_every`` epochs, run :func:`measure`: one eval-mode pass
over the training set that gives the neural-collapse report, plus the test error and the
calibration before and after temperature scaling; every ``light_every`` epochs, a light record (training
loss, error, NC1: :func:`nclab.evaluate.measure_light`). After every epoch the whole state is
checkpointed, so a run stopped at any moment resumes where it stopped and, on the CPU, produces
exactly the history an uninterrupted run would have produced.

On a CUDA GPU the same loop keeps every split on the device, stores images and convolutional
weights channels-last, and runs the training steps under bf16 autocast; the measurement stays in
float32. Everything also runs on the CPU.

A run directory holds ``checkpoint.pt`` (model, optimizer state, random states, history, config)
and, once the run has finished, ``result.json`` (config, history, provenance; plain JSON). One
process at a time owns a run directory: :func:`train` holds a lock on it (``.lock``, with the
holder's process id in ``.lock-owner``) while it trains, so two processes asking for the same run
never train it twice or write over each other's files. Every file is written to a temporary file
of the writing process, fsynced and renamed over the old one, so a reader always finds a complete
file and a failed write (a full disk, Ctrl-C) leaves the last good one in place. Whatever is read
back is checked against the config that asked for it.

:func:`measure` (the per-epoch measurement) lives in :mod:`nclab.evaluate`, :func:`resolve_device`
in ``nclab._checks``, the atomic writes and the lock (:class:`RunLocked`) in ``nclab._files``,
and the reading and checking of a checkpoint before a run resumes from it in :mod:`nclab.checkpoints`;
they are imported here under their former names. :class:`TrainConfig` lives in :mod:`nclab.config`;
:class:`RunResult` and the cache names :func:`cache_key` and :func:`cache_name` in
:mod:`nclab.results`; all are imported here under their former names.
"""

from __future__ import annotations

import io
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from . import data, models, settings
from ._checks import resolve_device
from ._files import LOCK, OWNER, RunLocked, _remove, _run_lock, _write_atomically
from .checkpoints import _CHECKPOINT_FORMAT, CHECKPOINT, _check_checkpoint_config, _restore, _restore_light
from .config import TrainConfig
from .evaluate import (LIGHT_FIELDS, HistoryRecord, _diverged, _light_epoch, _provenance, eval_subsets, measure,
                       measure_light, subset_provenance)
from .results import RESULT, RunResult, cache_key, cache_name

__all__ = ["TrainConfig", "RunResult", "RunLocked", "train", "measure", "lr_at", "resolve_device", "cache_key",
           "cache_name"]


def lr_at(config: TrainConfig, epoch: int) -> float:
    """Learning rate used during ``epoch`` (1-based): step decay after each milestone, or cosine."""
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / config.epochs))
    return config.lr * config.gamma ** sum(epoch > m for m in config.milestones)


def train(config: TrainConfig, run_dir: str | os.PathLike | None = None, *, resume: bool = True,
          progress: bool = True, wait: bool = True) -> RunResult:
    """Train one network and record its collapse, errors and calibration over the epochs.

    Each step minimizes the LS loss (``F.cross_entropy(..., label_smoothing=δ)``, chapter 1) with
    SGD; each logged epoch appends one record of :func:`measure` plus the epoch, the lr and the
    wall times ``time_train`` (the epoch's steps), ``time_measure`` (the measurement) and
    ``time_elapsed`` (the run so far, every epoch and checkpoint included): a
    :class:`nclab.evaluate.HistoryRecord`, whose docstring gives the meaning of every field.
    With ``config.light_every``, each light epoch appends a light record (:data:`nclab.evaluate.LIGHT_FIELDS`)
    to ``RunResult.light``, a list beside the history (``"light"`` in ``result.json`` and the checkpoint),
    so the history stays one full record per logged epoch for every reader; at a logged epoch it is
    read off the full record. Light records survive an interrupted and resumed run.
    With ``config.eval_subset``, every full record but the last measures its validation and test fields
    (test loss, error, ECEs, temperature) on a fixed balanced subset of that many images of each split
    (:func:`nclab.evaluate.eval_subset`); the last record uses the whole splits, and the training-set
    fields always the whole training split. ``provenance["eval_subset"]`` lists the subset records' epochs.

    With a ``run_dir``, the process first takes the folder's lock, so that one process at a time
    trains there; another process asking for the same folder waits (or, with ``wait=False``,
    fails at once naming the holder). Once it holds the lock it looks again: a finished result
    of this config that appeared meanwhile is returned, not trained a second time.

    Parameters
    ----------
    config : the run's :class:`TrainConfig`
    run_dir : folder for ``checkpoint.pt`` (written after every epoch: temporary file, fsync,
        rename) and ``result.json`` (at the end); None trains in memory only
    resume : continue from ``run_dir``'s checkpoint when there is one, and return its finished
        result when there is one; False trains this config afresh, replacing its checkpoint and
        result. Either way, files of another config in ``run_dir`` are an error, never overwritten
    progress : tqdm progress bars for epochs and batches, and a note when waiting for another
        process (also silenced by ``NCLAB_PROGRESS=0``)
    wait : when another process holds ``run_dir``'s lock, wait for it (True) or raise
        :class:`RunLocked` at once (False)

    Returns
    -------
    RunResult

    Raises
    ------
    ValueError
        ``run_dir`` holds a result or checkpoint of another config, or one that cannot be read, or
        files nclab did not write (checked before anything is created in it).
    RunLocked
        ``wait=False`` and another process is training in ``run_dir``.
    OSError
        ``run_dir`` cannot be created or written (the message names the path).
    FloatingPointError
        Training diverged (the network's outputs are no longer finite).

    Example
    -------
    >>> result = train(TrainConfig(dataset="digits", model="mlp", delta=0.1, epochs=5), progress=False)
    >>> result.series("nc1").shape
    (5,)
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    show = settings.progress() and progress
    if run_dir is None:
        with _cpu_threads(config.threads):
            return _train(config, None, True, show)
    run_dir = Path(run_dir)
    if resume and (run_dir / RESULT).is_file():
        # Finished: read it without the lock, which a read-only folder could not take. A result
        # is only ever replaced whole (by rename), so no lock is needed to read it.
        return RunResult.load(run_dir / RESULT, config=config)
    with _run_lock(run_dir, wait, show):
        if (run_dir / RESULT).exists():
            finished = RunResult.load(run_dir / RESULT, config=config)  # another config's is an error
            if resume:
                return finished
            # Training afresh replaces the result; remove it first, so that it never stands beside
            # a checkpoint of a half-trained replacement.
            _remove(run_dir / RESULT)
        elif not resume:
            _check_checkpoint_config(run_dir / CHECKPOINT, config)
        with _cpu_threads(config.threads):
            return _train(config, run_dir, resume, show)


def _train(config: TrainConfig, run_dir: Path | None, resume: bool, show: bool) -> RunResult:
    # The run seeds torch's generators; the caller's random state (a notebook's next draws) must not
    # depend on whether a run was trained or read from the cache. Gradients are on whatever the
    # caller's mode: a Ctrl-C that lands between a no_grad block's entry and its exit (in a notebook,
    # or in a sweep's worker, which then trains its next run) leaves them off in that process.
    device = resolve_device(config.device)
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        return _train_seeded(config, run_dir, resume, show)


def _train_seeded(config: TrainConfig, run_dir: Path | None, resume: bool, show: bool) -> RunResult:
    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True

    # Data: each split on the device as one normalized tensor.
    channels_last = cuda and config.model != "mlp"
    train_set = data.load(config.dataset, "train", train_size=config.train_size)
    train_data = data.DeviceBatches(train_set, device, channels_last)
    val_data = data.DeviceBatches(data.load(config.dataset, "val"), device, channels_last)
    test_data = data.DeviceBatches(data.load(config.dataset, "test"), device, channels_last)
    subsets = eval_subsets(config, val_data, test_data, train_set.num_classes)  # None: whole splits throughout

    # Model, optimizer and the generator that draws the batch order (and the augmentations).
    torch.manual_seed(config.seed)
    shape = {"num_classes": train_set.num_classes, "in_channels": train_set.in_channels,
             "image_size": train_set.image_size}
    model = models.build(config.model, *shape.values(), config.width).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = list(model.parameters())
    # Plain SGD with momentum (dampening 0, no Nesterov) and weight decay on every parameter, the
    # paper's optimizer; foreach applies each update to all parameters at once (few GPU kernels).
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, foreach=True)
    shuffle = torch.Generator().manual_seed(config.seed)
    history: list[HistoryRecord] = []
    light: list[dict] = []
    first_epoch, elapsed = 1, 0.0  # elapsed: wall seconds of the finished epochs, checkpoints included

    checkpoint = run_dir / CHECKPOINT if run_dir is not None else None
    if checkpoint is not None and resume and checkpoint.exists():
        first_epoch, history, elapsed = _restore(checkpoint, config, model, optimizer, shuffle)
        light = _restore_light(checkpoint, config, first_epoch - 1)

    epochs = tqdm(range(first_epoch, config.epochs + 1), desc="epochs", initial=first_epoch - 1,
                  total=config.epochs, disable=not show)
    for epoch in epochs:
        epoch_start = time.perf_counter()
        lr = lr_at(config, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        _train_epoch(config, epoch, model, optimizer, train_data, shuffle, show)
        time_train = time.perf_counter() - epoch_start

        full, light_epoch = epoch % config.log_every == 0 or epoch in (1, config.epochs), _light_epoch(config, epoch)
        if full or light_epoch:
            start = time.perf_counter()
            splits = subsets if subsets is not None and epoch < config.epochs else (val_data, test_data)
            try:
                measured = (measure(model, train_data, *splits, config.delta) if full
                            else measure_light(model, train_data, config.delta))
            except FloatingPointError:
                raise _diverged(epoch, lr) from None
            time_measure = (now := time.perf_counter()) - start
            if light_epoch:
                light.append({"epoch": epoch, "lr": lr, **{k: measured[k] for k in LIGHT_FIELDS[2:5]},
                              "time_measure": 0.0 if full else time_measure})
            if full:
                history.append(HistoryRecord(epoch=epoch, lr=lr, **measured, time_train=time_train,
                                             time_measure=time_measure, time_elapsed=elapsed + now - epoch_start))
            epochs.set_postfix(train_err=f"{measured['train_error']:.3f}", nc1=f"{measured['nc1']:.3g}")
        elapsed += time.perf_counter() - epoch_start
        if checkpoint is not None:
            # A diverged state is not worth keeping: the last finite epoch stays the checkpoint.
            if not all(bool(torch.isfinite(p).all()) for p in params):
                raise _diverged(epoch, lr)
            _save(checkpoint, config, epoch, history, light, elapsed, model, optimizer, shuffle, shape)

    result = RunResult(config, history, {**_provenance(device), **subset_provenance(config)}, run_dir, light)
    if run_dir is not None:
        result.save(run_dir / RESULT)
    return result


def _train_epoch(config: TrainConfig, epoch: int, model, optimizer, train_data, shuffle: torch.Generator,
                 show: bool) -> None:
    """One pass of SGD steps over the training split, in the batch order ``shuffle`` draws."""
    cuda = next(model.parameters()).device.type == "cuda"
    n_train = len(train_data)
    model.train()
    batches = train_data.shuffled(config.batch_size, shuffle, config.augment)
    for x, y in tqdm(batches, desc=f"epoch {epoch}", total=math.ceil(n_train / config.batch_size),
                     leave=False, disable=not show):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            h = model.features(x)
            z = model.classifier(h)
        # The LS loss of nclab.losses.label_smoothing_loss, without its per-call input checks.
        loss = F.cross_entropy(z.float(), y, label_smoothing=config.delta)
        if config.penalized:
            W, b = model.classifier.weight, model.classifier.bias
            loss = loss + 0.5 * (config.lambda_W * W.square().sum() + config.lambda_b * b.square().sum()
                                 + config.lambda_H * n_train / len(y) * h.float().square().sum())
        model.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if cuda:
        torch.cuda.synchronize()


@contextmanager
def _cpu_threads(threads: int | None):
    """Run the block with ``threads`` CPU threads for torch and for NumPy's BLAS; None changes nothing."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


# Checkpoints ------------------------------------------------------------------------------------

def _save(path: Path, config: TrainConfig, epoch: int, history: list[dict], light: list[dict], elapsed: float,
          model, optimizer: torch.optim.Optimizer, shuffle: torch.Generator, shape: dict) -> None:
    """Write the full training state to ``path`` (see :func:`_write_atomically`); ``shape`` holds the
    dataset's ``num_classes``, ``in_channels`` and ``image_size``."""
    state = {
        "format": _CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "epoch": epoch,
        "history": history,
        **({"light": light} if config.light_every is not None else {}),
        "elapsed": elapsed,
        "model": model.state_dict(),
        # What the network's shape depends on besides the config: opening the model needs no data.
        **shape,
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "shuffle_rng": shuffle.get_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    # Serialized in memory first: a file write that fails then raises an OSError with its errno
    # (ENOSPC for a full disk), where torch.save into a file reports a bare RuntimeError.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    _write_atomically(path, buffer.getbuffer())


# Results ----------------------------------------------------------------------------------------

