"""The folder ``python -m nclab report`` and ``sweep --out`` draw into: written only where nclab may.

nclab draws into a folder it owns: one that does not exist, is empty, or holds the list of the
figures nclab drew there before (:data:`LISTING`, a JSON file with each figure's SHA-256). A figure
file is replaced only when that list names it and its bytes still give the listed hash; a symbolic
link (to a file or a folder) on the way is refused, and so is any other file of the same name: a
user's own ``nc_plane.png`` is never overwritten. Every check is made before anything is drawn.
Each figure is written to a temporary file beside it and renamed over the old one
(:func:`nclab._files._write_atomically`). The list is updated first with the hash about to be
written, so that a kill between the two writes leaves a file the next call still recognizes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from .._files import _located, _write_atomically

__all__ = ["LISTING", "check_folder", "check_files", "replace_files"]

LISTING = ".nclab-figures.json"  # the figures nclab drew into the folder: {"files": {path: [sha256, ...]}}
_SCHEMA = "nclab-figures-1"


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _listing(out: Path) -> dict[str, list[str]]:
    """The figures nclab drew into ``out`` (relative path: accepted SHA-256s); {} when it holds no listing."""
    path = out / LISTING
    if not os.path.lexists(path):
        return {}
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"--out: {path} is not the list of figures nclab writes (a link or not a file); "
                         "move it away")
    try:
        listing = json.loads(path.read_bytes())
        files = listing["files"] if listing.get("schema") == _SCHEMA else None
    except (OSError, ValueError, RecursionError, AttributeError, KeyError, TypeError):
        files = None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, list)
                                              and all(isinstance(h, str) for h in v) for k, v in files.items()):
        raise ValueError(f"--out: {path} is not a list of figures nclab wrote (damaged or foreign); move it away")
    return files


def check_folder(out: str | os.PathLike) -> Path:
    """Refuse an ``--out`` that nclab may not draw into, and make sure it can be created and written.

    Raises
    ------
    ValueError
        ``out`` is a symbolic link or a file, or a folder that is not empty and holds no list of
        figures nclab drew (one line naming it and up to three of its files).
    OSError
        ``out`` cannot be created or written (the error names it).
    """
    out = Path(out)
    if out.is_symlink():
        raise ValueError(f"--out {out} is a symbolic link; give the real folder")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if out.is_dir() and not os.path.lexists(out / LISTING):
        entries = sorted(p.name for p in out.iterdir())
        if entries:
            raise ValueError(f"--out {out} is not empty and holds no figures nclab drew ({', '.join(entries[:3])}"
                             f"{', ...' if len(entries) > 3 else ''}); give a new or empty folder")
    _listing(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)  # the empty probe this function just created
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create or write the folder ({exc.strerror or exc})", str(out)) from None
    return out


def check_files(out: Path, names: list[str]) -> None:
    """Refuse, before anything is drawn, to write any of ``names`` (paths relative to ``out``) over what nclab did not write.

    Raises
    ------
    ValueError
        A folder on the way or a file of that name is a symbolic link, a folder stands where a
        figure goes, or a file of that name is not a figure nclab drew there or was changed since.
    """
    listing = _listing(out)
    for name in names:
        path = out / name
        for folder in reversed(path.relative_to(out).parents[:-1]):
            if (out / folder).is_symlink() or ((out / folder).exists() and not (out / folder).is_dir()):
                raise ValueError(f"--out: {out / folder} is a symbolic link or a file; nclab draws only into "
                                 "real folders")
        if not os.path.lexists(path):
            continue
        if path.is_symlink() or not path.is_file():
            raise ValueError(f"--out: {path} is a symbolic link or not a file; move it away")
        try:
            digest = _sha256(path.read_bytes())
        except OSError as exc:
            raise _located(exc, path) from None
        if digest not in listing.get(name, []):
            raise ValueError(f"--out: {path} is not a figure nclab drew there, or was changed since; "
                             "move it away: nclab never overwrites a file it did not write")


def _write_listing(out: Path, files: dict[str, list[str]]) -> None:
    text = json.dumps({"schema": _SCHEMA, "files": files}, indent=1, sort_keys=True)
    _write_atomically(out / LISTING, text.encode())


def replace_files(out: Path, figures: dict[str, bytes]) -> None:
    """Write ``figures`` (path relative to ``out``: PNG bytes), each by an atomic rename, after :func:`check_files`."""
    check_files(out, list(figures))   # again, right before writing: a file may have appeared since
    listing = _listing(out)
    digests = {name: _sha256(payload) for name, payload in figures.items()}
    _write_listing(out, {**listing, **{n: [*listing.get(n, []), d] for n, d in digests.items()}})
    for name, payload in figures.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(out / name, payload, place=lambda temp, path, name=name: _place_figure(out, name, temp, path))
    _write_listing(out, {**listing, **{n: [d] for n, d in digests.items()}})


def _place_figure(out: Path, name: str, temp: Path, path: Path) -> None:
    """Rename the written figure ``temp`` to ``path`` (``out / name``) after :func:`check_files` again, an instant before.

    A folder on the way swapped for a symbolic link (to a user's folder) since the first check,
    or a file put at ``path``, is refused then (ValueError): the rename never follows a link that
    appeared meanwhile, and the temporary file is removed by :func:`nclab._files._write_atomically`.
    """
    if out.is_symlink() or not out.is_dir():
        raise ValueError(f"--out {out} is a symbolic link or a file; nclab draws only into real folders")
    check_files(out, [name])
    os.replace(temp, path)
