"""Input checks shared by the package: one clear, one-line error that names the argument.

A value of the wrong type raises :class:`ArgumentTypeError`, a value of the right type outside
its range a ValueError; either message says what was expected and what was given.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import torch

# The most equal-width confidence bins a calibration measure accepts: bins of width 1e-4, far
# finer than any test split fills, at a few hundred kilobytes; 10**9 bins would need tens of GB.
MAX_BINS = 10_000
# The seeds torch's generators accept (torch.manual_seed): an unsigned 64-bit integer.
MAX_SEED = 2**64 - 1


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type.

    A TypeError, and a ValueError as well: code that catches ValueError for bad input (the command
    line prints it as one line) catches this too.
    """


def _shown(value) -> str:
    """A short description of a given value for an error message: its repr, cut to one line."""
    text = repr(value)
    if "\n" in text or len(text) > 80:
        text = f"a {type(value).__name__}" + (f" of shape {tuple(value.shape)}" if hasattr(value, "shape") else "")
    return text


def as_tensor(x, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``x`` as a torch tensor (NumPy arrays and lists are converted, not copied when possible)."""
    if isinstance(x, torch.Tensor):
        return x if dtype is None else x.to(dtype)
    if isinstance(x, (str, bytes)):
        raise ArgumentTypeError(f"{name} must be an array or tensor, got {type(x).__name__} {_shown(x)}")
    try:
        t = torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ArgumentTypeError(f"{name} must be an array or tensor of numbers, got {type(x).__name__}") from exc
    return t if dtype is None else t.to(dtype)


def _plain_number(value, name: str, expected: str) -> float:
    """``value`` as a Python float; anything but one real number is an :class:`ArgumentTypeError`.

    A float32 or float16 becomes the shortest decimal that rounds to it (``np.float32(0.1)`` is
    0.1, as written), not its binary value widened to float64 (0.10000000149011612), so that a
    number gives the same float whatever precision it passed through.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_complex:
        value = value.detach().cpu().reshape(())
        value = value.numpy()[()] if value.dtype in (torch.float16, torch.float32, torch.bool) else value.item()
    elif isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_, str, bytes, complex, np.complexfloating, np.ndarray, torch.Tensor)):
        raise ArgumentTypeError(f"{name} must be {expected}, got {type(value).__name__} {_shown(value)}")
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return float(str(value))
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"{name} must be {expected}, got {type(value).__name__} {_shown(value)}") from None


def check_number(value, name: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, expected: str | None = None) -> float:
    """Check a finite real number in the range [low, high] (either end open, or absent); return it as a float."""
    if expected is None:
        left = "" if low is None else ("(" if low_open else "[") + f"{low:g}, "
        right = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        expected = ("a finite number" + (f" in {left or '(-inf, '}{right or 'inf)'}"
                                         if low is not None or high is not None else ""))
    number = _plain_number(value, name, expected)
    if (not math.isfinite(number) or (low is not None and (number < low or (low_open and number == low)))
            or (high is not None and (number > high or (high_open and number == high)))):
        raise ValueError(f"{name} must be {expected}, got {_shown(value)}")
    return number


def check_fraction(value, name: str) -> float:
    """Check a level or relative tolerance: a number strictly between 0 and 1."""
    return check_number(value, name, 0.0, 1.0, low_open=True, high_open=True)


def check_delta(delta: float, name: str = "delta") -> float:
    """Check a smoothing parameter: a finite number in [0, 1)."""
    value = _plain_number(delta, name, "a number in [0, 1)")
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1) (0 is plain cross-entropy), got {_shown(delta)}")
    return value


def check_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """Check an integer (a Python or NumPy int, not a bool) in [minimum, maximum]; return it as an int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ArgumentTypeError(f"{name} must be an integer, got {type(value).__name__} {_shown(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        elif minimum is None:
            expected = f"an integer <= {maximum}"
        else:
            expected = f"an integer in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def check_num_classes(num_classes: int, name: str = "num_classes") -> int:
    """Check a class count: an integer K >= 2."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ArgumentTypeError(f"{name} must be an integer >= 2, got {type(num_classes).__name__} "
                                f"{_shown(num_classes)}")
    if num_classes < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


def check_bool(value, name: str) -> bool:
    """Check a switch: True or False (a NumPy bool too), never a string or number read as one."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be True or False, got {type(value).__name__} {_shown(value)}")
    return bool(value)


def check_str(value, name: str) -> str:
    """Check a name or option: a str (a NumPy str too); return it as a plain str."""
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be a string, got {type(value).__name__} {_shown(value)}")
    return str(value)


class Milestones(tuple):
    """The epochs after which a step schedule lowers the lr (:class:`nclab.train.TrainConfig`): sorted ints.

    A tuple, so that the frozen config holding it can be hashed and cannot be changed through it;
    it compares equal to, and prints as, the list of the same epochs, the form it has in a
    config's JSON.

    >>> Milestones((30, 50)) == [30, 50], Milestones((30, 50))
    (True, [30, 50])
    """

    __slots__ = ()

    def __eq__(self, other):
        if isinstance(other, list):
            return list(self) == other
        return tuple.__eq__(self, other)

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return repr(list(self))


def check_milestones(values, name: str = "milestones") -> Milestones:
    """Check a list (or tuple) of epochs, positive integers; return them sorted, as :class:`Milestones`.

    Sorted, so that the same epochs in another order give an equal config and cache key.
    """
    if not isinstance(values, (list, tuple)):
        raise ArgumentTypeError(f"{name} must be a list of epochs, got {type(values).__name__} {_shown(values)}")
    return Milestones(sorted(check_int(epoch, name, 1) for epoch in values))


def check_seed(seed, name: str = "seed") -> int:
    """Check a random seed: an integer in [0, 2**64 - 1], the range torch's generators accept."""
    return check_int(seed, name, 0, MAX_SEED)


def check_bins(n_bins, name: str = "n_bins") -> int:
    """Check a number of equal-width bins: an integer in [1, :data:`MAX_BINS`]."""
    return check_int(n_bins, name, 1, MAX_BINS)


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise if ``x`` holds NaN or infinity."""
    if not x.is_floating_point() or x.numel() == 0:
        return
    # Fast path: the sum of finite values is finite unless it overflows, and any NaN or infinity
    # makes it non-finite; only then is the element-wise test needed.
    if bool(torch.isfinite(x.sum())):
        return
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")


def check_labels(labels: torch.Tensor, num_classes: int, name: str = "labels") -> torch.Tensor:
    """Check a 1-D integer label vector with values in [0, num_classes)."""
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ArgumentTypeError(f"{name} must hold integers, got dtype {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}), got values from {int(labels.min())} to {int(labels.max())}"
        )
    return labels.long()


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Check an integer count: an int (not a bool) that is at least ``minimum``."""
    return check_int(value, name, minimum)


def check_positive_number(value, name: str, allow_zero: bool = False) -> float:
    """Check a strength, step size or tolerance: a finite number > 0 (>= 0 with ``allow_zero``)."""
    return check_number(value, name, 0.0, low_open=not allow_zero,
                        expected="a finite number >= 0" if allow_zero else "a finite number > 0")


def warn_if_probabilities(z: torch.Tensor, name: str = "logits", stacklevel: int = 3) -> None:
    """Warn when the "logits" ``z`` (N, K) look like probabilities: every row non-negative and summing to 1.

    The softmax of probabilities is far flatter than the probabilities themselves, so a measure
    that applies it would be computed for confidences near 1/K: a different, meaningless number.
    Logits of a network are practically never such rows; it is a warning, not an error, for the
    rare ones. ``stacklevel`` counts from the caller of this function, as in :func:`warnings.warn`.
    """
    if bool((z >= 0).all()) and bool(torch.allclose(z.sum(1), torch.ones((), dtype=z.dtype, device=z.device),
                                                    rtol=0, atol=1e-6)):
        warnings.warn(f"{name} look like probabilities (every row is non-negative and sums to 1); pass the "
                      "logits, or log-probabilities, instead: the softmax is applied here", UserWarning,
                      stacklevel=stacklevel)


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(device, name: str = "device") -> str:
    """Check a device name: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or ``"mps"`` where it is available.

    The device names torch parses but nclab cannot train on (``"meta"``, ``"xla"``, ...) are refused
    here, with the others, rather than deep inside a run.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ArgumentTypeError(f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {type(device).__name__} "
                                f"{_shown(device)}")
    if _DEVICE.fullmatch(device):
        return str(device)
    if re.fullmatch(r"mps(:0)?", device):
        if torch.backends.mps.is_available():
            return str(device)
        raise ValueError(f"{name} {device!r} was requested but MPS is not available here; use 'auto', 'cpu', "
                         "'cuda' or 'cuda:N'")
    raise ValueError(f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` becomes CUDA when available, else the CPU; other names are checked."""
    name = check_device(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(name)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available here")
    return resolved


def check_known_fields(values, known, what: str) -> None:
    """Raise when the mapping ``values`` has keys outside ``known``, naming them and the known ones."""
    known = set(known)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
