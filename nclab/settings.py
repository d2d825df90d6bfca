"""Every ``NCLAB_*`` environment variable, read and documented in one place (chapters 2-5, 9).

Each function below reads its variable when it is called, never at import, so a variable set (or
changed) after ``import nclab`` takes effect. A variable that is unset or empty takes its default.
One parsing rule per type:

- boolean: ``1``, ``true``, ``yes``, ``on`` or ``0``, ``false``, ``no``, ``off`` (any case,
  spaces around ignored);
- positive integer: decimal digits, at least 1;
- path: ``~`` expanded;
- name: one of the variable's choices;
- URL: taken as it is.

Any other value is a ValueError that names the variable and its value.

Variables
---------
``NCLAB_PROFILE`` (name; default ``quick``)
    The scale of runs: one of :data:`nclab.runs.PROFILES` (:func:`profile`). A GPU never changes
    it by itself.
``NCLAB_CACHE`` (path; default: the checkout's ``.nclab-cache``, else ``~/.cache/nclab``)
    Where finished runs and fetched bundles are kept (:func:`cache_dir`). Without it: when the
    package is imported from a source checkout of the book (:func:`checkout`), that checkout's
    ``.nclab-cache``; else ``~/.cache/nclab``. The working directory plays no part.
``NCLAB_WORKERS`` (positive integer; default: one per CPU core available)
    Worker processes of a sweep (:func:`workers`).
``NCLAB_PROGRESS`` (boolean; default on)
    Off silences the progress bars and the plan of training and sweeps (:func:`progress`).
``NCLAB_DATA`` (path; default ``~/.nclab/data``)
    The folder datasets are read from and downloaded to (:func:`data_dir`).
``NCLAB_RESULTS`` (path; default none)
    A local copy of the repository's ``results/`` folder, read before any other copy of a
    published bundle (:func:`results_dir`).
``NCLAB_RESULTS_URL`` (URL; default :data:`nclab.bundle.RESULTS_URL`)
    Where published bundles are downloaded from: a mirror, or a ``file://`` URL (:func:`results_url`).
``NCLAB_STATIC`` (boolean; default off)
    On renders the δ explorers as kernel-free animations for the static site; ``make book`` sets
    it (:func:`static`).

Example
-------
>>> import os
>>> from unittest import mock
>>> with mock.patch.dict(os.environ, {"NCLAB_PROGRESS": "Off", "NCLAB_WORKERS": "3"}):
...     progress(), workers()
(False, 3)
>>> with mock.patch.dict(os.environ, {"NCLAB_STATIC": "maybe"}):
...     static()
Traceback (most recent call last):
ValueError: NCLAB_STATIC must be a boolean (1, true, yes, on or 0, false, no, off); got 'maybe'
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["VARIABLES", "flag", "integer", "path", "name", "text", "checkout", "profile", "cache_dir",
           "workers", "progress", "data_dir", "results_dir", "results_url", "static"]

#: Every variable nclab reads, with its type (the module's docstring says what each does).
VARIABLES: dict[str, str] = {
    "NCLAB_PROFILE": "name", "NCLAB_CACHE": "path", "NCLAB_WORKERS": "positive integer",
    "NCLAB_PROGRESS": "boolean", "NCLAB_DATA": "path", "NCLAB_RESULTS": "path", "NCLAB_RESULTS_URL": "URL",
    "NCLAB_STATIC": "boolean",
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _raw(variable: str) -> str | None:
    """The variable's value, stripped; None when unset or empty."""
    if variable not in VARIABLES:
        raise KeyError(f"{variable} is not one of nclab's variables ({', '.join(VARIABLES)})")
    value = os.environ.get(variable, "").strip()
    return value or None


def flag(variable: str, default: bool) -> bool:
    """A boolean variable: 1/true/yes/on or 0/false/no/off, in any case; unset or empty: ``default``."""
    value = _raw(variable)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"{variable} must be a boolean ({', '.join(_TRUE[:-1])}, {_TRUE[-1]} or "
                     f"{', '.join(_FALSE[:-1])}, {_FALSE[-1]}); got {os.environ[variable]!r}")


def integer(variable: str, default: int | None, *, minimum: int = 1) -> int | None:
    """An integer variable of at least ``minimum``; unset or empty: ``default``."""
    value = _raw(variable)
    if value is None:
        return default
    if not re.fullmatch(r"[+-]?[0-9]+", value) or int(value) < minimum:
        raise ValueError(f"{variable} must be an integer of at least {minimum}; got {os.environ[variable]!r}")
    return int(value)


def path(variable: str, default: str | os.PathLike | None) -> Path | None:
    """A path variable, ``~`` expanded; unset or empty: ``default`` (expanded too), or None."""
    value = _raw(variable)
    if value is None:
        return None if default is None else Path(default).expanduser()
    return Path(value).expanduser()


def name(variable: str, choices: Iterable[str], default: str) -> str:
    """A variable naming one of ``choices``; unset or empty: ``default``."""
    choices = tuple(choices)
    value = _raw(variable)
    if value is None:
        return default
    if value not in choices:
        raise ValueError(f"{variable} must be one of {', '.join(choices)}; got {os.environ[variable]!r}")
    return value


def text(variable: str, default: str | None) -> str | None:
    """A variable taken as it is (a URL); unset or empty: ``default``."""
    value = _raw(variable)
    return default if value is None else value


# The source checkout --------------------------------------------------------------------------

_PACKAGE_PARENT = Path(__file__).resolve().parents[1]


def _is_checkout(folder: Path) -> bool:
    """Whether ``folder`` is a checkout of this book: its ``_config.yml`` (a Jupyter Book's) lists the
    package folder ``nclab`` among the files the book leaves out, and it holds ``book/`` and ``nclab/``."""
    try:
        config = (folder / "_config.yml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return ((folder / "book").is_dir() and (folder / "nclab" / "__init__.py").is_file()
            and re.search(r"^\s*-\s*[\"']?nclab/?[\"']?\s*$", config, re.MULTILINE) is not None)


def checkout() -> Path | None:
    """The source checkout of the book that this package is imported from, or None (an installed package).

    It is the folder above the package when that folder is the book's repository (its
    ``_config.yml`` excludes ``nclab``, and it holds ``book/`` and the package), whatever the
    working directory.
    """
    return _PACKAGE_PARENT if _is_checkout(_PACKAGE_PARENT) else None


# The variables ----------------------------------------------------------------------------------

def profile(choices: Iterable[str]) -> str:
    """``$NCLAB_PROFILE``, one of ``choices`` (:data:`nclab.runs.PROFILES`); else ``"quick"``."""
    return name("NCLAB_PROFILE", choices, "quick")


def cache_dir() -> Path:
    """``$NCLAB_CACHE``; else ``<checkout>/.nclab-cache`` when imported from a checkout; else ``~/.cache/nclab``."""
    folder = path("NCLAB_CACHE", None)
    if folder is not None:
        return folder
    root = checkout()
    return root / ".nclab-cache" if root is not None else Path("~/.cache/nclab").expanduser()


def workers() -> int:
    """``$NCLAB_WORKERS``; else one per CPU core available to this process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return integer("NCLAB_WORKERS", cores)


def progress() -> bool:
    """``$NCLAB_PROGRESS`` (default on): whether training and sweeps show progress bars and plans."""
    return flag("NCLAB_PROGRESS", True)


def data_dir() -> Path:
    """``$NCLAB_DATA``, else ``~/.nclab/data``."""
    return path("NCLAB_DATA", "~/.nclab/data")


def results_dir() -> Path | None:
    """``$NCLAB_RESULTS`` (a local copy of the repository's ``results/``), else None."""
    return path("NCLAB_RESULTS", None)


def results_url(default: str) -> str:
    """``$NCLAB_RESULTS_URL``, else ``default``."""
    return text("NCLAB_RESULTS_URL", default)


def static() -> bool:
    """``$NCLAB_STATIC`` (default off): whether output is rendered for the static site."""
    return flag("NCLAB_STATIC", False)
