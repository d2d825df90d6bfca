"""The record of a finished run and its place in the result cache (chapters 3-5, 9).

:class:`RunResult` holds a run's config, per-epoch history and provenance, and reads ``result.json``
back with every check; :func:`cache_key` and :func:`cache_name` name a config's folder in the
result cache of :mod:`nclab.runs`, defined here because :meth:`RunResult.load` checks them.
:mod:`nclab.train` writes these records and re-exports these names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import nclab
from . import data, models
from ._checks import ArgumentTypeError
from ._files import _located, _write_atomically
from .checkpoints import CHECKPOINT, _check_same_config, _load_checkpoint, _unfit
from .evaluate import LIGHT_FIELDS, HistoryRecord, _check_history, light_problem

from .config import TrainConfig

__all__ = ["RunResult", "cache_key", "cache_name", "RESULT"]

RESULT = "result.json"


@dataclass
class RunResult:
    """The record of one run: its config, its per-epoch history and where and when it ran.

    ``history`` is a list of :class:`nclab.evaluate.HistoryRecord` dicts, one per logged epoch
    (see :func:`nclab.train.train`); :meth:`series`
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
        except RecursionError:   # JSON nested thousands of levels deep
            raise ValueError(f"{path} is not an nclab run result (its JSON is nested too deeply); delete it to "
                             "train the run again") from None
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
