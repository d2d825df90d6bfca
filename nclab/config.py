"""The configuration of a training run: :class:`TrainConfig`, every field checked when it is made.

Equal configs give equal runs, equal hashes and equal cache keys (:func:`nclab.results.cache_key`).
:mod:`nclab.train` trains one; its name :class:`nclab.train.TrainConfig` is this class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial


from . import data, models
from ._checks import (MAX_SEED, check_bool, check_delta, check_device, check_int, check_known_fields,
                      check_milestones, check_positive_number, check_str)

__all__ = ["TrainConfig"]


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
