"""What a network computes, measured: the forward pass over a split, the per-epoch record, and the outputs of finished runs.

Everything that evaluates a network, rather than trains it, lives here (chapters 2-5 and 9):

- :func:`~nclab.evaluate.forward` passes a whole split through a network, in eval mode and float32;
- :func:`~nclab.evaluate.measure` turns one such pass over each split into the record that :func:`nclab.train.train`
  logs after an epoch (collapse on the training set, error and calibration on the test set);
  :class:`HistoryRecord` declares every field of that record;
- :func:`~nclab.evaluate.measure_light` is the cheap record of the epochs between (``light_every``):
  one eval-mode pass over the training split only, giving the training loss and error and NC1
  (:data:`LIGHT_FIELDS`). Light records are kept apart from the history, in a run's ``light`` list
  (``RunResult.light``, the ``"light"`` key of ``result.json`` and of the checkpoint, present only
  when the config sets ``light_every``), so the history and every reader of it stay as they were.
  At an epoch that has both, the light record is read off the full one (the same pass, the same
  numbers);
- :func:`~nclab.evaluate.eval_subset` is the fixed balanced subset of the validation and test splits
  on which a run with ``eval_subset`` measures its intermediate full records (the last one always
  on the whole splits); the run's provenance says which records used it (:func:`subset_provenance`);
- :func:`~nclab.evaluate.outputs` and :func:`~nclab.evaluate.outputs_by_delta` reload the final network of finished runs and
  return what it computes (:class:`Outputs`).

:func:`nclab.train.measure`, :func:`nclab.runs.outputs`, :func:`nclab.runs.outputs_by_delta` and
:class:`nclab.runs.Outputs` are the same objects, imported from here.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

import nclab

from . import calibration, data, metrics, models
from ._checks import resolve_device

__all__ = ["HistoryRecord", "RECORD_FIELDS", "MEASURED_FIELDS", "LIGHT_FIELDS", "forward", "measure",
           "measure_light", "eval_subset", "subset_provenance", "Outputs", "outputs", "outputs_by_delta"]

ECE_BINS = 20  # the paper's main calibration numbers use 20 equal-width bins
MEASURE_BATCH_SIZE = 1024
CONV_CPU_BATCH_SIZE = 128  # conv nets on the CPU: smaller batches keep the activations in cache


# The collapse measures are CollapseReport's fields, listed once there.
HistoryRecord = TypedDict("HistoryRecord", {
    "epoch": int, "lr": float,
    "train_loss": float, "train_error": float, "test_loss": float, "test_error": float,
    **{f.name: float for f in dataclasses.fields(metrics.CollapseReport)},
    "test_ece": float, "test_ece_scaled": float, "temperature": float,
    "time_train": float, "time_measure": float, "time_elapsed": float,
})
HistoryRecord.__doc__ = """One logged epoch of a run: the schema of every entry of ``RunResult.history``.

:func:`~nclab.evaluate.measure` returns the fields from ``train_loss`` to ``temperature``; :func:`nclab.train.train`
adds ``epoch``, ``lr`` and the three timings. Every value is a plain Python number (``epoch`` an
int, the rest floats); ``result.json`` stores a non-finite value as null.

In a run whose config sets ``eval_subset``, every record but the last measures ``test_loss``,
``test_error``, ``test_ece``, ``test_ece_scaled`` and ``temperature`` on a fixed balanced subset of
``eval_subset`` validation and test images (:func:`~nclab.evaluate.eval_subset`), the last on the
whole splits; ``provenance["eval_subset"]`` lists those epochs (:func:`subset_provenance`). The
training-set fields are always measured on the whole training split.

Attributes
----------
epoch : the epoch just finished (1-based)
lr : the learning rate of that epoch's steps
train_loss, test_loss : the LS loss with the run's δ on the training and test splits (eval mode)
train_error, test_error : the fraction of misclassified samples
nc1 : within-class variability relative to the between-class spread, tr(Σ_W Σ_B⁺)/K
nc2_h, nc2_w, nc2_wh : distance of the centred class means, of the classifier rows and of
    their product from a simplex ETF
nc3 : distance between the normalized classifier and the normalized centred class means
nc4 : disagreement of the network with the nearest-class-mean classifier
equinorm_h, equinorm_w : std/mean of the norms of the centred class means and classifier rows
equiangularity_h, equiangularity_w : mean deviation of their pairwise cosines from -1/(K-1)
w_norm, h_norm : mean norm of the classifier rows and of the centred class means
b_norm : norm of the classifier bias (NaN without one)
test_ece : expected calibration error on the test split (20 equal-width bins)
test_ece_scaled : the same after temperature scaling
temperature : the temperature T fitted on the validation split
time_train : wall seconds of the epoch's training steps
time_measure : wall seconds of this measurement
time_elapsed : wall seconds of the run so far (every epoch and checkpoint included)

"""


RECORD_FIELDS: tuple[str, ...] = tuple(HistoryRecord.__annotations__)
"""Every field of a :class:`HistoryRecord`, in the order a record lists them."""

_ADDED_BY_TRAIN = ("epoch", "lr", "time_train", "time_measure", "time_elapsed")
MEASURED_FIELDS: tuple[str, ...] = tuple(f for f in RECORD_FIELDS if f not in _ADDED_BY_TRAIN)
"""The fields of a :class:`HistoryRecord` that :func:`~nclab.evaluate.measure` returns."""

LIGHT_FIELDS: tuple[str, ...] = ("epoch", "lr", "train_loss", "train_error", "nc1", "time_measure")
"""Every field of a light record (``RunResult.light``): the epoch, its lr, the training loss, error and NC1
as in a :class:`HistoryRecord`, and the wall seconds of the light pass (0 where the record is read off
the epoch's full measurement)."""



@torch.no_grad()
def forward(model: models.Classifier, batches: data.DeviceBatches, *,
            batch_size: int = MEASURE_BATCH_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and logits of a whole split, concatenated on its device.

    Always in float32, also on a GPU where training uses bf16: bf16 keeps about three significant
    digits, and that rounding alone would put a floor under NC1 late in training. The model is
    used as it is (call ``model.eval()`` first for the measurement).

    Parameters
    ----------
    model : a :class:`nclab.models.Classifier`
    batches : the split, as :class:`nclab.data.DeviceBatches` (read in storage order, no augmentation)
    batch_size : rows per forward pass

    Returns
    -------
    features : (N, d) float32 tensor
    logits : (N, K) float32 tensor
    """
    features, logits = [], []
    for x, _ in batches.in_order(batch_size):
        h = model.features(x)
        features.append(h.float())
        logits.append(model.classifier(h).float())
    return torch.cat(features), torch.cat(logits)


@torch.no_grad()
def measure(model: models.Classifier, train_data: data.DeviceBatches, val_data: data.DeviceBatches,
            test_data: data.DeviceBatches, delta: float, *, batch_size: int = MEASURE_BATCH_SIZE) -> dict:
    """Measure a model the way the paper does: collapse on the training set, calibration on the test set.

    One eval-mode float32 :func:`~nclab.evaluate.forward` pass over the training split (no augmentation, large
    batches) keeps every feature vector and logit on the device, from which
    :func:`~nclab.metrics.collapse_report_from_features` computes NC1-NC4 and the norms in two
    passes over the kept features (class means, then projected deviations). Forward passes over the
    validation and test splits give the test loss and error, the test ECE (20 bins), a temperature
    T fitted on the validation split by minimizing NLL, and the test ECE of logits/T (chapter 5).

    Parameters
    ----------
    model : a :class:`nclab.models.Classifier`
    train_data, val_data, test_data : the three splits, as :class:`nclab.data.DeviceBatches`
    delta : the label smoothing of the run (the reported losses are LS losses with this δ)
    batch_size : rows per forward pass

    Returns
    -------
    dict of floats: the fields :data:`MEASURED_FIELDS` of a :class:`HistoryRecord`.

    Raises
    ------
    FloatingPointError
        The network's outputs on the training split are not finite (training diverged).
    """
    net, batch_size = _measuring_model(model, train_data, batch_size)
    logits, report = _train_pass(net, train_data, batch_size)
    test_logits = forward(net, test_data, batch_size=batch_size)[1]
    val_logits = forward(net, val_data, batch_size=batch_size)[1]
    temperature = calibration.fit_temperature(val_logits, val_data.labels)
    record = {
        # The LS loss of nclab.losses.label_smoothing_loss, without its per-call input checks.
        "train_loss": float(F.cross_entropy(logits, train_data.labels, label_smoothing=delta)),
        "train_error": _error(logits, train_data.labels),
        "test_loss": float(F.cross_entropy(test_logits, test_data.labels, label_smoothing=delta)),
        "test_error": _error(test_logits, test_data.labels),
        **report.to_dict(),
        "test_ece": float(calibration.ece(test_logits, test_data.labels, n_bins=ECE_BINS)),
        "test_ece_scaled": float(calibration.ece(test_logits / temperature, test_data.labels, n_bins=ECE_BINS)),
        "temperature": float(temperature),
    }
    # In the schema's order, so that every record lists its fields alike.
    return {k: record[k] for k in MEASURED_FIELDS}


@torch.no_grad()
def measure_light(model: models.Classifier, train_data: data.DeviceBatches, delta: float, *,
                  batch_size: int = MEASURE_BATCH_SIZE) -> dict:
    """The light record of an epoch: training loss, error and NC1 from one eval-mode pass over the training split.

    The same pass and the same formulas as :func:`~nclab.evaluate.measure` (which computes these
    three numbers identically, and everything else besides); it draws no random numbers and leaves
    the model as it was (weights, batch-norm statistics and train/eval mode).

    Returns
    -------
    dict of floats: ``train_loss``, ``train_error``, ``nc1``.
    """
    net, batch_size = _measuring_model(model, train_data, batch_size)
    logits, report = _train_pass(net, train_data, batch_size)
    return {"train_loss": float(F.cross_entropy(logits, train_data.labels, label_smoothing=delta)),
            "train_error": _error(logits, train_data.labels), "nc1": report.nc1}


def _train_pass(net: models.Classifier, train_data: data.DeviceBatches, batch_size: int):
    """Logits of the training split and its collapse report (FloatingPointError when not finite)."""
    features, logits = forward(net, train_data, batch_size=batch_size)
    if not bool(torch.isfinite(logits).all()):
        raise FloatingPointError("the network's outputs are not finite (training diverged): lower lr")
    classifier = net.classifier
    return logits, metrics.collapse_report_from_features(features, train_data.labels, classifier.weight,
                                                         classifier.bias, logits)


def _measuring_model(model: models.Classifier, batches: data.DeviceBatches, batch_size: int):
    """The network to measure with, in eval mode, and the batch size, without touching ``model``.

    A conv net on the CPU is measured through a copy with every batch norm folded into the
    convolution before it and channels-last weights (the images are converted batch by batch), in
    batches of at most :data:`CONV_CPU_BATCH_SIZE`: about twice as fast, equal to the plain eval
    pass up to float32 rounding (relative 1e-6). Any other network is measured as it is, in eval
    mode, exactly as before: an MLP's numbers do not change.
    """
    if batches.device.type != "cpu" or not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return _EvalView(model), batch_size
    net = _fold_batch_norms(copy.deepcopy(model).eval()).to(memory_format=torch.channels_last)
    return _ChannelsLast(net), min(batch_size, CONV_CPU_BATCH_SIZE)


class _EvalView:
    """A model seen in eval mode: ``features`` and ``classifier`` switch it to eval and back."""

    def __init__(self, model):
        self.model, self.classifier = model, model.classifier

    def features(self, x):
        was_training = self.model.training
        self.model.eval()
        try:
            return self.model.features(x)
        finally:
            self.model.train(was_training)


class _ChannelsLast:
    def __init__(self, net):
        self.net, self.classifier = net, net.classifier

    def features(self, x):
        return self.net.features(x.contiguous(memory_format=torch.channels_last))


def _fold_batch_norms(module: nn.Module) -> nn.Module:
    """Fold each eval-mode BatchNorm2d into the Conv2d registered just before it (in place)."""
    for child in module.children():
        _fold_batch_norms(child)
    names = list(module._modules)
    for first, second in zip(names, names[1:]):
        conv, norm = module._modules[first], module._modules[second]
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            module._modules[first] = fuse_conv_bn_eval(conv, norm)
            module._modules[second] = nn.Identity()
    return module


def eval_subset(batches: data.DeviceBatches, size: int, num_classes: int) -> data.DeviceBatches:
    """The fixed balanced evaluation subset of a validation or test split: the first ``size / K`` images
    of each class, in the split's stored order, kept in that order.

    The rule draws no random numbers and depends on nothing but the split, so every run, seed and
    epoch is measured on the same images. The images are the split's own normalized tensors
    (indexed, not reloaded), so a subset record's numbers are those of the same images in a
    whole-split pass.

    Raises
    ------
    ValueError
        ``size`` is not a multiple of K, or not smaller than the split, or asks a class for more
        images than the split has of it.
    """
    if size % num_classes or size >= len(batches):
        raise ValueError(f"eval_subset must be a multiple of the number of classes ({num_classes}) and smaller "
                         f"than the split ({len(batches)} images), so that the subset is balanced; got {size}")
    per_class = size // num_classes
    members = [torch.nonzero(batches.labels == k).flatten()[:per_class] for k in range(num_classes)]
    if min(len(m) for m in members) < per_class:
        raise ValueError(f"eval_subset {size} asks for {per_class} images of each class, but the split has only "
                         f"{min(len(m) for m in members)} of some class")
    index = torch.cat(members).sort().values
    subset = copy.copy(batches)
    subset.images, subset.labels = batches.images[index], batches.labels[index]
    return subset


def eval_subsets(config, val_data: data.DeviceBatches, test_data: data.DeviceBatches,
                 num_classes: int) -> tuple[data.DeviceBatches, data.DeviceBatches] | None:
    """The validation and test subsets of ``config``'s intermediate full records; None without ``eval_subset``."""
    if config.eval_subset is None:
        return None
    return eval_subset(val_data, config.eval_subset, num_classes), eval_subset(test_data, config.eval_subset,
                                                                              num_classes)


def subset_provenance(config) -> dict:
    """What a run's provenance says about its evaluation subset: empty without ``eval_subset``, else
    ``{"eval_subset": {"images": n, "rule": ..., "subset_epochs": [...], "whole_split_epochs": [last]}}``:
    the history records of ``subset_epochs`` measured their validation and test fields on the subset."""
    if config.eval_subset is None:
        return {}
    logged = [e for e in range(1, config.epochs + 1) if e % config.log_every == 0 or e in (1, config.epochs)]
    rule = ("the first eval_subset / K images of each class of the validation and of the test split, in stored "
            "order; the training-set fields always use the whole training split")
    return {"eval_subset": {"images": config.eval_subset, "rule": rule, "subset_epochs": logged[:-1],
                            "whole_split_epochs": logged[-1:]}}


def _diverged(epoch: int, lr: float) -> FloatingPointError:
    return FloatingPointError(f"training diverged in epoch {epoch} (lr {lr:g}): the network's weights or "
                              "outputs are no longer finite; use a lower lr")


def _error(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) != labels).float().mean())


# The final networks of finished runs -------------------------------------------------------------

@dataclass
class Outputs:
    """What a trained network computes on one split: features, logits, labels, and its classifier.

    Attributes
    ----------
    features : (N, d) float32 penultimate features h
    logits : (N, K) float32 logits W h + b
    labels : (N,) int64 labels
    weight, bias : the classifier's W (K, d) and b (K,)
    """

    features: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor


def _is_result(result) -> bool:
    # Recognized by what a result offers, not by its class: nclab.train imports this module.
    return hasattr(result, "config") and callable(getattr(result, "load_model", None))


@torch.no_grad()
def outputs(result, split: str = "train", *, batch_size: int = MEASURE_BATCH_SIZE) -> Outputs:
    """Features and logits of a finished run's final network on one split (chapters 2 and 5).

    Loads the network from the run's checkpoint, in eval mode, onto the run's device (the CPU
    when a GPU run is opened on a machine without one), and passes the split through it with
    :func:`~nclab.evaluate.forward`, as :func:`~nclab.evaluate.measure` does. Results come back on the CPU.

    Parameters
    ----------
    result : :class:`nclab.train.RunResult`
        A finished run with a checkpoint (from :func:`nclab.runs.get` or :func:`nclab.runs.book_sweep`).
    split : "train", "val" or "test"
    batch_size : rows per forward pass

    Returns
    -------
    Outputs
    """
    if not _is_result(result):
        raise ValueError(f"result must be a RunResult, got {type(result).__name__}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    # The run's own device when this machine has it; a GPU run opens on the CPU elsewhere.
    wanted = str(result.config.device)
    device = resolve_device(wanted if torch.cuda.is_available() or not wanted.startswith("cuda") else "cpu")
    model = result.load_model(device)
    subset = getattr(result.config, "train_size", None) if split == "train" else None
    batches = data.DeviceBatches(data.load(result.config.dataset, split, train_size=subset), device)
    features, logits = forward(model, batches, batch_size=batch_size)
    classifier = model.classifier
    return Outputs(features.cpu(), logits.cpu(), batches.labels.cpu(),
                   classifier.weight.detach().cpu(), classifier.bias.detach().cpu())


def outputs_by_delta(results, split: str = "test") -> dict[float, list[Outputs]]:
    """:func:`~nclab.evaluate.outputs` of every run, grouped by δ (in increasing δ, runs in the given order; chapter 5).

    Parameters
    ----------
    results : list of :class:`nclab.train.RunResult`
    split : "train", "val" or "test"

    Returns
    -------
    dict δ -> list of Outputs

    Example
    -------
    >>> test = outputs_by_delta(nclab.runs.book_sweep(), "test")   # doctest: +SKIP
    >>> len(test[0.05]) == len(nclab.runs.SWEEP_SEEDS)              # doctest: +SKIP
    True
    """
    results = list(results)
    if not results or not all(_is_result(r) for r in results):
        raise ValueError("results must be a non-empty list of RunResult")
    deltas = sorted({r.config.delta for r in results})
    return {d: [outputs(r, split) for r in results if r.config.delta == d] for d in deltas}


# Checks of stored records, the provenance of a run (used by nclab.train) ---------------------------

def _light_epoch(config, epoch: int) -> bool:
    every = config.light_every
    return every is not None and (epoch % every == 0 or epoch in (1, config.epochs))


def _check_history(history, config, path: Path, provenance: dict | None = None) -> None:
    """Raise unless ``history`` is the finished history of ``config``'s run (see :meth:`RunResult.load`)
    and, with ``provenance``, that says which records used the evaluation subset (:func:`subset_provenance`)."""
    problem = None
    wanted = subset_provenance(config).get("eval_subset")
    if provenance is not None and wanted is not None and provenance.get("eval_subset") != wanted:
        problem = "its provenance does not say which records used the evaluation subset (eval_subset)"
    elif not isinstance(history, list) or not history:
        problem = "its history is empty"
    else:
        previous = 0
        for i, record in enumerate(history):
            missing = [k for k in RECORD_FIELDS if not isinstance(record, dict) or k not in record]
            if missing:
                problem = f"record {i} of its history lacks {', '.join(missing[:4])}{'...' if len(missing) > 4 else ''}"
                break
            bad = [k for k in RECORD_FIELDS if record[k] is not None and
                   (isinstance(record[k], bool) or not isinstance(record[k], (int, float)))]
            if bad:
                problem = f"record {i} of its history has non-numbers in {', '.join(bad[:4])}"
                break
            epoch = record["epoch"]
            if not isinstance(epoch, int) or not previous < epoch <= config.epochs:
                problem = f"record {i} of its history has epoch {epoch!r} after epoch {previous}"
                break
            previous = epoch
        else:
            if previous != config.epochs:
                problem = f"its history ends at epoch {previous}, not at the last epoch {config.epochs}"
    if problem is not None:
        raise ValueError(f"{path} is not a finished nclab run result ({problem}); delete it to train the run again")


def light_problem(light, config, epoch: int) -> str | None:
    """What is wrong with the light records of ``config``'s run after ``epoch`` epochs, or None.

    With ``config.light_every`` set they must be a list of one record per light epoch so far, in
    order, each with exactly :data:`LIGHT_FIELDS`, each a number (``epoch`` an int) or None.
    """
    if config.light_every is None:
        return None
    if not isinstance(light, list):
        return f"holds light records of type {type(light).__name__}, not a list"
    for i, record in enumerate(light):
        if not isinstance(record, dict) or set(record) != set(LIGHT_FIELDS):
            return f"holds a light record {i} without exactly the fields {', '.join(LIGHT_FIELDS)}"
        if any(v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))) for v in record.values()) \
                or not isinstance(record["epoch"], int):
            return f"holds a light record {i} with non-numbers"
    wanted = [e for e in range(1, epoch + 1) if _light_epoch(config, e)]
    if [r["epoch"] for r in light] != wanted:
        return f"holds light records of other epochs than the {len(wanted)} light epochs up to epoch {epoch}"
    return None


def _provenance(device: torch.device) -> dict:
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        threads = torch.get_num_threads()
        device_name = f"{platform.machine()} CPU ({threads} thread{'s' if threads > 1 else ''})"
    return {
        "nclab": nclab.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device_name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
