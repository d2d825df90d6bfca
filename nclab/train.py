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
they are imported here under their former names. :func:`cache_key` and :func:`cache_name` name a
config's folder in the result cache of :mod:`nclab.runs`, defined here because
:meth:`RunResult.load` checks them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

import nclab
from . import data, models, settings
from ._checks import (MAX_SEED, ArgumentTypeError, check_bool, check_delta, check_device, check_int, check_known_fields,
                      check_milestones, check_positive_number, check_str, resolve_device)
from ._files import LOCK, OWNER, RunLocked, _located, _remove, _run_lock, _write_atomically
from .checkpoints import (_CHECKPOINT_FORMAT, CHECKPOINT, _check_checkpoint_config, _check_same_config,
                          _load_checkpoint, _restore, _restore_light, _unfit)
from .evaluate import (LIGHT_FIELDS, HistoryRecord, _check_history, _diverged, _light_epoch, _provenance,
                       eval_subsets, light_problem, measure, measure_light, subset_provenance)

__all__ = ["TrainConfig", "RunResult", "RunLocked", "train", "measure", "lr_at", "resolve_device", "cache_key",
           "cache_name"]

RESULT = "result.json"


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that defines a training run; equal configs give equal runs.

    A config is checked when it is made (a ValueError, or a TypeError that is one too, names the
    field) and cannot be changed afterwards: make a variant with ``dataclasses.replace(config,
    delta=0.1)``. Numbers become plain ints and floats (``np.float32(0.1)`` 0.1), milestones a sorted
    tuple (a list in :meth:`to_dict`): equal settings give equal configs, hashes and cache keys.

    Attributes
    ----------
    dataset : the data set, a name of :data:`nclab.data.DATASETS`
    model : the network, a name of :data:`nclab.models.MODELS`
    width : model width: hidden units (mlp) or base channels (conv nets); None: the model's
        default, :data:`nclab.models.DEFAULT_WIDTH`
    delta : label smoothing δ in [0, 1); 0 is cross-entropy
    epochs : number of passes over the training split
    batch_size : SGD mini-batch size
    lr : initial SGD learning rate
    momentum : SGD momentum, in [0, 1)
    weight_decay : SGD weight decay, on all parameters
    schedule : "step" (lr times ``gamma`` after each epoch in ``milestones``; no milestones means a
        constant lr) or "cosine" (from lr down to 0 over the run)
    milestones : the epochs after which a "step" schedule multiplies the lr by ``gamma``
    gamma : the factor of each lr step, in (0, 1]
    lambda_W : explicit penalty (λ_W/2)‖W‖² on the classifier, as in the unconstrained feature
        model (chapter 6); replaces weight decay, which must then be 0
    lambda_H : explicit penalty (λ_H/2)‖H‖² on the features, rescaled from the batch to the whole
        training set (N/B times the batch sum); replaces weight decay, which must then be 0
    lambda_b : explicit penalty (λ_b/2)‖b‖² on the classifier bias
    augment : random crops and horizontal flips (off in the paper); True or False
    log_every : measure every this many epochs (and always the first and last epoch)
    light_every : also record the training loss, error and NC1 every this many epochs (and the first
        and last), in ``RunResult.light``; None (the default) records none
    seed : seeds the initialization and the batch order; an integer in [0, 2**64 - 1] (torch's)
    device : "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", ...; "mps" if available
    threads : CPU threads for the run (None: torch's default); small models train fastest on
        one thread, and a busy machine does not slow them down as much
    train_size : train on a fixed balanced subset of this many training images (a multiple of K;
        see :func:`nclab.data.load`); None uses the whole training split
    eval_subset : measure the validation and test fields of every full record but the last on a fixed
        balanced subset of this many images of each split (:func:`nclab.evaluate.eval_subset`); None
        (the default) measures every record on the whole splits
    """

    dataset: str = "digits"
    model: str = "mlp"
    width: int | None = None
    delta: float = 0.0
    epochs: int = 60
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    lambda_W: float = 0.0
    lambda_H: float = 0.0
    lambda_b: float = 0.0
    augment: bool = False
    log_every: int = 1
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    train_size: int | None = None
    light_every: int | None = None
    eval_subset: int | None = None

    def __post_init__(self) -> None:
        """Check every field; numbers are normalized to plain int/float, milestones to a sorted tuple."""
        set_ = partial(object.__setattr__, self)  # the config is frozen: normalized values are set once, here

        for name, choices in (("dataset", data.DATASETS), ("model", models.MODELS)):
            set_(name, check_str(getattr(self, name), name))
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}")
        set_("delta", check_delta(self.delta))
        for name, low in (("epochs", 1), ("batch_size", 2), ("log_every", 1), ("seed", 0)):
            set_(name, check_int(getattr(self, name), name, low, MAX_SEED if name == "seed" else None))
        for name in ("width", "threads", "train_size", "light_every", "eval_subset"):  # None: default, whole, none
            set_(name, None if getattr(self, name) is None else check_int(getattr(self, name), name, 1))
        for name in ("lr", "momentum", "weight_decay", "gamma", "lambda_W", "lambda_H", "lambda_b"):
            set_(name, check_positive_number(getattr(self, name), name, allow_zero=True))
        if self.lr == 0:
            raise ValueError("lr must be > 0")
        # Momentum >= 1 makes the velocity grow without bound; gamma scales the lr at each
        # milestone, so above 1 it would raise the lr and at 0 stop training.
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma (the lr factor at each milestone) must be in (0, 1], got {self.gamma!r}")
        if check_str(self.schedule, "schedule") not in ("step", "cosine"):
            raise ValueError(f"schedule must be 'step' or 'cosine', got {self.schedule!r}")
        set_("milestones", check_milestones(self.milestones))
        if self.penalized and self.weight_decay > 0:
            raise ValueError("weight_decay must be 0 when the explicit penalties lambda_W, lambda_H, "
                             f"lambda_b are used (they replace it), got {self.weight_decay!r}")
        set_("augment", check_bool(self.augment, "augment"))
        set_("device", check_device(self.device))

    def validate(self) -> TrainConfig:
        """The config itself: a TrainConfig is checked when it is made (kept for older callers)."""
        return self

    @property
    def penalized(self) -> bool:
        """Whether the run uses the unconstrained-feature-model penalties instead of weight decay."""
        return self.lambda_W > 0 or self.lambda_H > 0 or self.lambda_b > 0

    def to_dict(self) -> dict:
        """The config as plain types (JSON, checkpoint, cache key); unset train_size, light_every, eval_subset left out."""
        values = dataclasses.asdict(self)  # so that runs stored before these fields existed keep their key
        values["milestones"] = list(self.milestones)  # a list, as configs have always been written
        return {k: v for k, v in values.items() if not (k in ("train_size", "light_every", "eval_subset") and v is None)}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        check_known_fields(values, (f.name for f in dataclasses.fields(cls)), "TrainConfig")
        return cls(**values)


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
        ``run_dir`` holds a result or checkpoint of another config, or one that cannot be read.
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
    # depend on whether a run was trained or read from the cache.
    device = resolve_device(config.device)
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
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
    n_train = len(train_data)
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

@dataclass
class RunResult:
    """The record of one run: its config, its per-epoch history and where and when it ran.

    ``history`` is a list of :class:`nclab.evaluate.HistoryRecord` dicts, one per logged epoch
    (see :func:`train`); :meth:`series`
    turns one field into an array. ``result.json`` in the run folder is the same data in plain
    JSON (non-finite numbers as null), readable without nclab.

    Example
    -------
    >>> result = RunResult.load("runs/ce/result.json")          # doctest: +SKIP
    >>> plt.semilogy(result.epochs, result.series("nc1"))        # doctest: +SKIP
    """

    config: TrainConfig
    history: list[HistoryRecord]
    provenance: dict
    run_dir: Path | None = None
    light: list[dict] = dataclasses.field(default_factory=list)  # light records; empty without light_every

    @property
    def epochs(self) -> np.ndarray:
        """The logged epochs."""
        return self.series("epoch").astype(int)

    @property
    def final(self) -> dict:
        """The record of the last logged epoch."""
        return self.history[-1]

    def series(self, key: str) -> np.ndarray:
        """One history field over the logged epochs, as a float array (NaN where missing)."""
        if self.history and key not in self.history[0]:
            raise ValueError(f"key must be one of {', '.join(self.history[0])}; got {key!r}")
        return np.array([np.nan if r.get(key) is None else r[key] for r in self.history], dtype=float)

    def light_series(self, key: str) -> np.ndarray:
        """One field of the light records (:data:`nclab.evaluate.LIGHT_FIELDS`), as a float array."""
        if key not in LIGHT_FIELDS:
            raise ValueError(f"key must be one of {', '.join(LIGHT_FIELDS)}; got {key!r}")
        return np.array([np.nan if r.get(key) is None else r[key] for r in self.light], dtype=float)

    def to_dict(self) -> dict:
        light = {"light": self.light} if self.config.light_every is not None else {}
        return {"config": self.config.to_dict(), "history": self.history, **light, "provenance": self.provenance}

    def save(self, path: str | os.PathLike) -> None:
        """Write ``to_dict()`` as JSON (temporary file, fsync, rename: a reader never sees a part)."""
        path = Path(path)
        def finite(records):
            return [{k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in r.items()}
                    for r in records]
        values = self.to_dict()
        values.update({k: finite(values[k]) for k in ("history", "light") if k in values})
        text = json.dumps(values, indent=1, allow_nan=False)
        _write_atomically(path, text.encode())

    @classmethod
    def load(cls, path: str | os.PathLike, *, config: TrainConfig | None = None) -> RunResult:
        """Read a ``result.json`` (or the run folder holding one), checking what it holds.

        The file must hold a config, a provenance and a finished history: one record per logged
        epoch with every measured field, ending at the config's last epoch. A result in a folder
        of the result cache (named ``<dataset>-<model>-delta<δ>-seed<s>-<key>``) must be the run
        that name stands for, and with ``config`` given the stored config must equal it; anything
        else is a ValueError that names the differing fields.

        Parameters
        ----------
        path : a ``result.json`` or its folder
        config : the config the caller asked for; None skips that comparison
        """
        path = Path(path)
        if path.is_dir():
            path = path / RESULT
        try:
            raw = json.loads(path.read_text())
            stored = TrainConfig.from_dict(raw["config"])
            history, provenance = raw["history"], raw["provenance"]
            light = raw["light"] if stored.light_every is not None else []
            if not isinstance(provenance, dict):
                raise ValueError("its provenance is not a JSON object")
        except FileNotFoundError:
            raise FileNotFoundError(f"no run result at {path}") from None
        except OSError as exc:
            raise _located(exc, path) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            what = f"no {exc} field" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"{path} is not an nclab run result ({what}); delete it to train the run again") \
                from None
        if config is not None:
            _check_same_config(stored.to_dict(), config, path)
        _check_history(history, stored, path, provenance)
        problem = light_problem(light, stored, stored.epochs)
        if problem is not None:
            raise ValueError(f"{path} is not a finished nclab run result (it {problem}); delete it to train the "
                             "run again")
        _check_cache_name(path, stored, provenance)
        return cls(stored, history, provenance, path.parent, light)

    def load_model(self, device: str | torch.device = "cpu") -> models.Classifier:
        """The trained network from the run folder's checkpoint, in eval mode.

        The checkpoint must belong to this result's config and hold its last epoch; a checkpoint
        of another run, of an unfinished one, or with tensors that do not fit the network is a
        ValueError.
        """
        if self.run_dir is None or not (self.run_dir / CHECKPOINT).exists():
            raise FileNotFoundError(f"no checkpoint for this run (run_dir={self.run_dir})")
        path = self.run_dir / CHECKPOINT
        state = _load_checkpoint(path, {"config", "epoch", "model"})
        # device and threads say where the network was computed, not which network it is: a run
        # trained on a GPU is opened with a CPU device elsewhere (see nclab.runs.outputs).
        _check_same_config(state["config"], self.config, path, ignore=("device", "threads"))
        if state["epoch"] != self.config.epochs:
            raise ValueError(f"checkpoint {path} holds epoch {state['epoch']!r}, not the last epoch "
                             f"{self.config.epochs} of its result; delete the run folder to train it again")
        shape = [state.get(k) for k in ("num_classes", "in_channels", "image_size")]
        if any(v is None for v in shape):
            # A checkpoint written before these fields were stored: the dataset tells them.
            info = data.load(self.config.dataset, "test")
            shape = [info.num_classes, info.in_channels, info.image_size]
        model = models.build(self.config.model, *shape, self.config.width)
        try:
            model.load_state_dict(state["model"])
        except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise _unfit(path, exc) from None
        return model.to(device).eval()


def cache_key(config: TrainConfig, version: str | None = None) -> str:
    """12 hex digits of a hash of the config and the nclab version (None: this one) that trains it."""
    if not isinstance(config, TrainConfig) or not isinstance(version, (str, type(None))):
        raise ArgumentTypeError(f"config must be a TrainConfig and version a str or None, got "
                                f"{type(config).__name__} and {type(version).__name__}")
    version = nclab.__version__ if version is None else version
    text = json.dumps({"config": config.to_dict(), "nclab": version}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_name(config: TrainConfig, version: str | None = None) -> str:
    """The name of a config's folder in the result cache (:func:`nclab.runs.run_dir`)."""
    return f"{config.dataset}-{config.model}-delta{config.delta:g}-seed{config.seed}-{cache_key(config, version)}"


_CACHE_NAME = re.compile(r"^(?P<prefix>.+)-delta(?P<delta>[^/]+)-seed(?P<seed>\d+)-(?P<key>[0-9a-f]{12})$")


def _check_cache_name(path: Path, config: TrainConfig, provenance: dict) -> None:
    """Raise when ``path`` lies in a result-cache folder named for another run than the one it holds."""
    named = _CACHE_NAME.match(path.parent.name)
    if named is None:
        return  # not a cache folder: a run folder the user chose
    version = provenance.get("nclab") if isinstance(provenance.get("nclab"), str) else None
    if path.parent.name == cache_name(config, version):
        return
    held = {"dataset-model": f"{config.dataset}-{config.model}", "delta": f"{config.delta:g}",
            "seed": str(config.seed)}
    differ = ", ".join(f"{k}={held[k]} in the file, {named[name]} in the folder name"
                       for k, name in (("dataset-model", "prefix"), ("delta", "delta"), ("seed", "seed"))
                       if held[k] != named[name])
    if not differ:
        differ = (f"config key {cache_key(config, version)} in the file, "
                  f"{named['key']} in the folder name: another epochs, width, lr or other field")
    raise ValueError(f"{path} holds another run than its cache folder is named for ({differ}); delete the "
                     "folder to train the run again")
