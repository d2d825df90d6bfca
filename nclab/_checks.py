"""Input checks shared by the package: one clear ValueError that names the argument."""

from __future__ import annotations

import math

import numpy as np
import torch


def as_tensor(x, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Return ``x`` as a torch tensor (NumPy arrays and lists are converted, not copied when possible)."""
    if isinstance(x, torch.Tensor):
        return x if dtype is None else x.to(dtype)
    try:
        t = torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array or tensor, got {type(x).__name__}") from exc
    return t if dtype is None else t.to(dtype)


def check_delta(delta: float, name: str = "delta") -> float:
    """Check a smoothing parameter: a finite number in [0, 1)."""
    try:
        value = float(delta)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number in [0, 1), got {delta!r}") from exc
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1) (0 is plain cross-entropy), got {delta!r}")
    return value


def check_num_classes(num_classes: int, name: str = "num_classes") -> int:
    """Check a class count: an integer K >= 2."""
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


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
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}), got values from {int(labels.min())} to {int(labels.max())}"
        )
    return labels.long()


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Check an integer count: an int (not a bool) that is at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def check_positive_number(value, name: str, allow_zero: bool = False) -> float:
    """Check a strength, step size or tolerance: a finite number > 0 (>= 0 with ``allow_zero``)."""
    if isinstance(value, (bool, str, bytes)):   # float() would accept True and "0.1"
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        expected = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {expected}, got {value!r}")
    return number


def check_device(device, name: str = "device") -> str:
    """Check a device name: ``"auto"`` or one torch parses (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...)."""
    if str(device) != "auto":
        try:
            torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    return str(device)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` becomes CUDA when available, else the CPU; other names are checked."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(check_device(device))
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available here")
    return resolved


def check_known_fields(values, known, what: str) -> None:
    """Raise when the mapping ``values`` has keys outside ``known``, naming them and the known ones."""
    known = set(known)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
