"""What a network computes, measured: the forward pass over a split, the per-epoch record, and the outputs of finished runs.

Everything that evaluates a network, rather than trains it, lives here (chapters 2-5 and 9):

- :func:`~nclab.evaluate.forward` passes a whole split through a network, in eval mode and float32;
- :func:`~nclab.evaluate.measure` turns one such pass over each split into the record that :func:`nclab.train.train`
  logs after an epoch (collapse on the training set, error and calibration on the test set);
  :class:`HistoryRecord` declares every field of that record;
- :func:`~nclab.evaluate.outputs` and :func:`~nclab.evaluate.outputs_by_delta` reload the final network of finished runs and
  return what it computes (:class:`Outputs`).

:func:`nclab.train.measure`, :func:`nclab.runs.outputs`, :func:`nclab.runs.outputs_by_delta` and
:class:`nclab.runs.Outputs` are the same objects, imported from here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypedDict

import torch
import torch.nn.functional as F

from . import calibration, data, metrics, models
from ._checks import resolve_device

__all__ = ["HistoryRecord", "RECORD_FIELDS", "MEASURED_FIELDS", "forward", "measure", "Outputs", "outputs",
           "outputs_by_delta"]

ECE_BINS = 20  # the paper's main calibration numbers use 20 equal-width bins
MEASURE_BATCH_SIZE = 1024


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
    was_training = model.training
    model.eval()
    try:
        features, logits = forward(model, train_data, batch_size=batch_size)
        if not bool(torch.isfinite(logits).all()):
            raise FloatingPointError("the network's outputs are not finite (training diverged): lower lr")
        classifier = model.classifier
        report = metrics.collapse_report_from_features(features, train_data.labels, classifier.weight,
                                                       classifier.bias, logits)
        test_logits = forward(model, test_data, batch_size=batch_size)[1]
        val_logits = forward(model, val_data, batch_size=batch_size)[1]
    finally:
        model.train(was_training)
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
