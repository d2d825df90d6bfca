"""Reading and checking a run's checkpoint (``checkpoint.pt``) before training resumes from it.

:func:`nclab.train.train` writes the whole training state after every epoch; this module reads it
back and checks everything a resumed run takes from it: the format, the config (it must be the
config asking to resume), the epoch, the history so far (one record per logged epoch, with every
field of a :class:`nclab.evaluate.HistoryRecord` and only those, each a number), and tensors that
fit the network and its optimizer. A checkpoint that fails any check is a ValueError that names the
file and says to delete it to restart the run, raised before the first training step, so a damaged
checkpoint never turns into a wrong result.

Configs are :class:`nclab.train.TrainConfig` objects; only their ``to_dict``, ``epochs`` and
``log_every`` are used here, so this module does not import :mod:`nclab.train`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch

from ._files import _located
from .evaluate import RECORD_FIELDS, light_problem

CHECKPOINT = "checkpoint.pt"
_CHECKPOINT_FORMAT = "nclab-checkpoint-2"  # 2: torch.optim.SGD's state_dict replaces "velocity"
# Checkpoints of format 1 hold the momentum buffers as a list "velocity"; they still resume.
_READABLE_FORMATS = ("nclab-checkpoint-1", _CHECKPOINT_FORMAT)
# The settings of an SGD parameter group that the config fixes (the lr is set anew every epoch).
_GROUP_SETTINGS = ("momentum", "dampening", "nesterov", "weight_decay")


def _differences(saved: dict, wanted: dict) -> str:
    """The fields where two configs differ, as ``name=value there, value here`` (config dicts).

    >>> _differences({"lr": 0.1, "epochs": 5}, {"lr": 0.05, "epochs": 5})
    'lr=0.1 there, 0.05 here'
    """
    return ", ".join(f"{k}={saved.get(k)!r} there, {wanted.get(k)!r} here"
                     for k in sorted(set(saved) | set(wanted)) if saved.get(k) != wanted.get(k))


def _damaged(path: Path, problem: str) -> ValueError:
    return ValueError(f"checkpoint {path} {problem}; delete it to restart the run")


def _load_checkpoint(path: Path, keys: set[str]) -> dict:
    """A checkpoint's contents, checked to be an nclab checkpoint holding ``keys``."""
    # Read first, parse second: an OSError is then the file system's (it names the path), and
    # whatever torch.load raises (RuntimeError, EOFError, even OSError(EINVAL)) means bad content.
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise _located(exc, path) from None
    try:
        state = torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _damaged(path, f"cannot be read ({type(exc).__name__}: it is truncated or corrupt)") from None
    if not isinstance(state, dict) or state.get("format") not in _READABLE_FORMATS or not keys <= state.keys():
        raise ValueError(f"{path} is not an nclab training checkpoint; delete it or choose another run_dir")
    return state


def _check_same_config(saved: dict, config, path: Path, ignore: tuple[str, ...] = ()) -> None:
    """Raise when a file's stored config is not ``config`` (a file of another run), fields ``ignore`` aside."""
    wanted = {k: v for k, v in config.to_dict().items() if k not in ignore}
    if isinstance(saved, dict):
        saved = {k: v for k, v in saved.items() if k not in ignore}
    if saved != wanted:
        differ = _differences(saved, wanted) if isinstance(saved, dict) else "no readable config there"
        raise ValueError(f"{path} belongs to a different run ({differ}); use another run folder or delete "
                         "this one")


def _check_checkpoint_config(path: Path, config) -> None:
    """Before a fresh start over ``path``: refuse when it is a readable checkpoint of another config."""
    if not path.exists():
        return
    try:
        state = _load_checkpoint(path, {"config"})
    except ValueError:
        return  # unreadable: nothing to keep, the fresh start replaces it
    _check_same_config(state["config"], config, path)


def _unfit(path: Path, exc: Exception) -> ValueError:
    # load_state_dict says "Error(s) in loading state_dict for MLP:", then one line per problem.
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    detail = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
    return _damaged(path, f"does not fit the network of its config ({detail.rstrip('.')})")


def _logged_epochs(config, epoch: int) -> list[int]:
    """The epochs up to ``epoch`` that :func:`nclab.train.train` measures (every ``log_every``, the first, the last).

    >>> from types import SimpleNamespace
    >>> _logged_epochs(SimpleNamespace(epochs=7, log_every=3), 7)
    [1, 3, 6, 7]
    """
    return [e for e in range(1, epoch + 1) if e % config.log_every == 0 or e in (1, config.epochs)]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _history_problem(history, config, epoch: int) -> str | None:
    """What is wrong with a checkpoint's history after ``epoch`` epochs of ``config``'s run, or None.

    It must hold one record per logged epoch so far, in order, each a dict with exactly the fields
    of a :class:`nclab.evaluate.HistoryRecord`, each a number (``epoch`` an int) or None.
    """
    if not isinstance(history, list):
        return f"holds a history of type {type(history).__name__}, not a list of records"
    for i, record in enumerate(history):
        if not isinstance(record, dict):
            return f"holds a history whose record {i} is a {type(record).__name__}, not a dict"
        missing = [k for k in RECORD_FIELDS if k not in record]
        extra = [str(k) for k in record if k not in RECORD_FIELDS]
        if missing or extra:
            listed = ", ".join([*(f"no {k}" for k in missing), *(f"an unknown {k}" for k in extra)][:4])
            return f"holds a history whose record {i} has {listed}"
        bad = [k for k in RECORD_FIELDS if record[k] is not None and not _is_number(record[k])]
        if not isinstance(record["epoch"], int) or isinstance(record["epoch"], bool):
            bad = ["epoch", *(k for k in bad if k != "epoch")]
        if bad:
            return f"holds a history whose record {i} has non-numbers in {', '.join(bad[:4])}"
    epochs, wanted = [r["epoch"] for r in history], _logged_epochs(config, epoch)
    if epochs != wanted:
        return f"holds a history of epochs {_listed(epochs)}, where epoch {epoch} has logged {_listed(wanted)}"
    return None


def _listed(epochs: list) -> str:
    return ", ".join(map(repr, epochs[:8])) + (", ..." if len(epochs) > 8 else "") or "none"


def _check_optimizer_state(path: Path, optimizer: torch.optim.Optimizer) -> None:
    """Raise unless the loaded state of every parameter holds tensors of the parameter's shape,
    and every group the settings the config gave the fresh optimizer."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            for name, value in optimizer.state.get(p, {}).items():
                if value is None:
                    continue
                if not isinstance(value, torch.Tensor):
                    raise _damaged(path, f"holds an optimizer {name} of type {type(value).__name__}, not a tensor")
                if name != "step" and tuple(value.shape) != tuple(p.shape):
                    raise _damaged(path, f"holds an optimizer {name} of shape {tuple(value.shape)} for a "
                                         f"parameter of shape {tuple(p.shape)}")


def _restore(path: Path, config, model, optimizer: torch.optim.Optimizer, shuffle: torch.Generator):
    """Load a checkpoint into the run's objects; returns (next epoch, history so far, elapsed seconds).

    Everything is checked before it is returned: a ValueError naming ``path`` otherwise.
    """
    keys = {"config", "epoch", "history", "elapsed", "model", "torch_rng", "shuffle_rng", "cuda_rng"}
    state = _load_checkpoint(path, keys)
    _check_same_config(state["config"], config, path)
    epoch, history, elapsed = state["epoch"], state["history"], state["elapsed"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= config.epochs:
        raise _damaged(path, f"holds no valid epoch (epoch {epoch!r} of {config.epochs})")
    if not _is_number(elapsed) or not math.isfinite(elapsed) or elapsed < 0:
        raise _damaged(path, f"holds no valid elapsed time ({elapsed!r} seconds)")
    if "optimizer" not in state and "velocity" not in state:
        raise _damaged(path, "holds no optimizer state")
    settings = {k: optimizer.param_groups[0][k] for k in _GROUP_SETTINGS}
    try:
        model.load_state_dict(state["model"])
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        else:  # format 1
            _restore_velocity(optimizer, state["velocity"])
        torch.set_rng_state(state["torch_rng"])
        shuffle.set_state(state["shuffle_rng"])
    except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _unfit(path, exc) from None
    for group in optimizer.param_groups:
        differ = [f"{k}={group.get(k)!r}" for k in _GROUP_SETTINGS if group.get(k) != settings[k]]
        if differ:
            raise _damaged(path, f"holds optimizer settings {', '.join(differ)} that its config does not give")
    _check_optimizer_state(path, optimizer)
    # The history last: tensors that do not fit the network are the more telling problem.
    problem = _history_problem(history, config, epoch)
    if problem is not None:
        raise _damaged(path, problem)
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return epoch + 1, history, elapsed


def _restore_velocity(optimizer: torch.optim.SGD, velocity: list[torch.Tensor]) -> None:
    """Load the momentum buffers of a format-1 checkpoint (one per parameter, in order) into ``optimizer``.

    The hand-written step those checkpoints come from kept the buffers that ``torch.optim.SGD``
    keeps as ``momentum_buffer``, updated the same way, so the run resumes bit for bit.
    """
    params = optimizer.param_groups[0]["params"]
    if len(velocity) != len(params):
        raise ValueError(f"{len(velocity)} momentum buffers for {len(params)} parameters")
    if optimizer.param_groups[0]["momentum"] == 0:
        return  # without momentum SGD keeps no buffers
    for p, v in zip(params, velocity):
        if tuple(v.shape) != tuple(p.shape):
            raise ValueError(f"a momentum buffer of shape {tuple(v.shape)} for a parameter of shape "
                             f"{tuple(p.shape)}")
        optimizer.state[p]["momentum_buffer"] = v.to(p.device, p.dtype).clone()


def _restore_light(path: Path, config, epoch: int) -> list[dict]:
    """The light records of a checkpoint after ``epoch`` epochs, checked (see :func:`nclab.evaluate.light_problem`)."""
    light = _load_checkpoint(path, {"config"}).get("light") if config.light_every is not None else []
    problem = light_problem(light, config, epoch)
    if problem is not None:
        raise ValueError(f"checkpoint {path} {problem}; delete it to restart the run")
    return light
