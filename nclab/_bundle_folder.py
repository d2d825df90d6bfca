"""A bundle folder on disk: the schema of its manifest, and writing it only where nclab may (see :mod:`nclab.bundle`).

Two jobs that every path into or out of a bundle folder shares: :func:`parse_manifest` validates a
manifest (local or downloaded) before any file it names is touched, and :func:`building` gives a
hidden folder to write a new bundle into and swaps it into place atomically, after
:func:`check_target` has made sure the target holds nothing nclab did not write.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:   # not on Windows: builds there are not locked
    fcntl = None

from ._files import _exchange, _umask   # _exchange: Linux renameat2(RENAME_EXCHANGE), see the notes below
from .train import RESULT

__all__ = ["SCHEMA", "MANIFEST", "LOGITS", "LABELS", "check_name", "check_target", "parse_manifest"]

SCHEMA = "nclab-bundle-1"
MANIFEST = "manifest.json"
LOGITS = "logits.npz"
LABELS = "labels.npz"
_SPLITS = ("val", "test")


# Writing a bundle folder ------------------------------------------------------------------------
#
# nclab writes a bundle only into a folder it owns: one that does not exist, is empty, or holds a
# bundle and nothing else (every file listed in its manifest, with the SHA-256 listed there: a
# listed file edited since is not nclab's). A new bundle is built in a hidden
# folder beside the target and swapped in atomically: Linux's renameat2(RENAME_EXCHANGE) exchanges
# the two folders in one step (a small ctypes call: no maintained package offers it); where the file
# system cannot exchange, the old bundle is renamed aside first and put back by the next call if a
# kill stops the swap half-way. The old bundle is then removed file by file, only the files its own
# manifest lists, unchanged. A reader therefore finds the old bundle or the new one, never a mixture.

_PARTIAL = ".nclab-partial"  # marks a folder being built; only such leftovers are ever removed whole
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def check_name(name) -> str:
    """A bundle's name: letters, digits, '.', '_' or '-', starting with a letter or digit (one path component)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string such as 'fashion', got {type(name).__name__}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"name must be letters, digits, '.', '_' or '-', starting with a letter or digit "
                         f"(e.g. 'fashion'), got {name!r}")
    return name


def _leftovers(folder: Path, kind: str) -> list[Path]:
    """The hidden folders :func:`building` names for ``folder`` (``.NAME.old-`` or ``.NAME.new-`` and a random suffix), this exact name only.

    The parent is listed and each name compared literally, never as a glob pattern: ``--out
    'res[1]'`` must not match ``.res1.old-...``, another folder's leftover. The random part is
    tempfile's (letters, digits, '_'), so ``.a.old-b.old-x`` (a leftover of ``a.old-b``) is not ``a``'s.
    """
    pattern = re.compile(re.escape(f".{folder.name}.{kind}-") + r"[A-Za-z0-9_]+")
    try:
        names = os.listdir(folder.parent)
    except OSError:
        return []
    return sorted(folder.parent / name for name in names if pattern.fullmatch(name))


def _hold(marker: Path) -> int | None:
    """Open the partial marker of a build and lock it (flock), for as long as the descriptor returned stays open.

    None when another process holds it: that build is alive. Where there is no flock (Windows),
    an open descriptor without a lock.
    """
    fd = os.open(marker, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
    return fd


def _running_build(folder: Path) -> Path | None:
    """A hidden folder beside ``folder`` where another process is building a bundle now (its marker locked), if any."""
    for leftover in _leftovers(folder, "new"):
        marker = leftover / _PARTIAL
        if fcntl is None or leftover.is_symlink() or not marker.is_file() or marker.is_symlink():
            continue
        try:
            fd = os.open(marker, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return leftover
        finally:
            os.close(fd)
    return None


def _refuse_running(folder: Path) -> None:
    running = _running_build(folder)
    if running is not None:
        raise ValueError(f"--out {folder}: another export to this folder is running (it builds in {running.name}); "
                         "wait for it to finish")


def _asides(folder: Path) -> list[Path]:
    return _leftovers(folder, "old")


def _recover(folder: Path) -> None:
    """Finish a swap that a kill interrupted (see the notes above).

    An old bundle left aside is put back when ``folder`` is missing; then every other leftover
    beside it (a complete new bundle never swapped in, an old one whose removal was cut short) is
    removed as :func:`_remove_bundle` does: only the files its manifest lists, unchanged, and the
    folders left empty. A folder still being built (marked partial) is left to its builder.
    """
    if not (folder.exists() or folder.is_symlink()):
        for aside in _asides(folder):
            if _manifest_of(aside) is not None:
                with contextlib.suppress(OSError):
                    os.rename(aside, folder)
                    break
    for leftover in [*_leftovers(folder, "new"), *_asides(folder)]:
        if leftover.is_dir() and not leftover.is_symlink() and not (leftover / _PARTIAL).exists():
            _remove_bundle(leftover)


def _manifest_of(folder: Path) -> dict | None:
    """The valid manifest of the bundle in ``folder``, or None when it holds none."""
    try:
        return parse_manifest((folder / MANIFEST).read_bytes(), str(folder / MANIFEST))
    except (OSError, ValueError):
        return None


def _unchanged(path: Path, digest: str) -> bool:
    """Whether ``path`` is a regular file (not a link) whose bytes give the SHA-256 ``digest``."""
    if path.is_symlink() or not path.is_file():
        return False
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                sha.update(block)
    except OSError:
        return False
    return sha.hexdigest() == digest


def _foreign_files(folder: Path, manifest: dict) -> list[str]:
    """The files in ``folder`` that nclab did not write there: not listed by ``manifest``, or changed since (another SHA-256)."""
    present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir() or p.is_symlink())
    return [f for f in present if f != MANIFEST and not (f in manifest["files"]
                                                        and _unchanged(folder / f, manifest["files"][f]))]


def check_target(folder: str | os.PathLike) -> Path:
    """Refuse, before any work, a folder that :func:`export` may not write: one holding files it did not write.

    The folder may be missing, empty, or hold a bundle and nothing else, every file as its manifest
    lists it (SHA-256 included; it is then replaced by an atomic swap). Anything else is a
    ValueError naming the folder and up to three foreign files. Nothing is touched, leftovers of
    killed builds beside it included: the build (``building``) cleans those, once every argument is valid.
    A ValueError too while another process builds a bundle for the same folder (its partial marker
    locked): two exports to one folder would remove each other's work.
    """
    folder = Path(folder).expanduser().absolute()
    _refuse_running(folder)
    return _check_contents(folder)


def _check_contents(folder: Path) -> Path:
    """:func:`check_target` but for a build running beside ``folder`` (this process's own, when it checks again)."""
    if folder.is_symlink():
        raise ValueError(f"--out {folder} is a symbolic link; give the real folder")
    here = Path.cwd().resolve()
    if folder.resolve() == here or folder.resolve() in here.parents:
        raise ValueError(f"--out {folder} is the working folder or above it; give a new folder such as results/NAME")
    if not folder.exists():
        return folder
    if not folder.is_dir():
        raise ValueError(f"--out {folder} is a file, not a folder")
    entries = list(folder.iterdir())
    if not entries:
        return folder
    manifest = _manifest_of(folder)
    if manifest is None:
        raise ValueError(f"--out {folder} is not empty and holds no bundle ({', '.join(sorted(p.name for p in entries)[:3])}"
                         f"{', ...' if len(entries) > 3 else ''}); nclab writes a bundle only into a new or empty "
                         "folder, or over a bundle it wrote")
    _refuse_foreign(folder, manifest)
    return folder


def _refuse_foreign(folder: Path, manifest: dict) -> None:
    """Refuse a bundle folder holding files nclab did not write there (unlisted, or changed since: another hash)."""
    foreign = _foreign_files(folder, manifest)
    if foreign:
        raise ValueError(f"--out {folder} holds files that are not part of its bundle ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}: not in its manifest, or changed since nclab wrote "
                         "them); move them away: nclab never replaces a folder holding files it did not write")


def _linked_files(folder: Path, manifest: dict | None) -> list[str]:
    """The files that :func:`_remove_bundle` would remove from ``folder`` whose path crosses a symbolic link.

    Each listed path is resolved (every link on it followed) and must be the same path inside
    ``folder``: a linked subfolder (``runs`` a link to a user's folder) or a linked file would
    otherwise let the removal reach files outside the bundle.
    """
    root = os.path.realpath(folder)
    keys = [*(manifest["files"] if manifest is not None else ()), MANIFEST, _PARTIAL]
    return [key for key in keys if os.path.realpath(folder / key) != os.path.join(root, *key.split("/"))]


def _remove_bundle(folder: Path) -> None:
    """Remove a bundle folder that this module wrote: the files its manifest lists, unchanged, then the folders left empty."""
    manifest = _manifest_of(folder)
    linked = _linked_files(folder, manifest)
    if linked:
        warnings.warn(f"{folder} is kept: {linked[0]}, a file it lists, lies behind a symbolic link (it may be "
                      "another folder's file); nclab removes nothing through a link: check it and delete it yourself",
                      RuntimeWarning, stacklevel=3)
        return
    listed = manifest["files"] if manifest is not None else {}
    for file, digest in listed.items():
        if _unchanged(folder / file, digest):
            with contextlib.suppress(OSError):
                (folder / file).unlink()
    for file in ((MANIFEST,) if manifest is not None else ()) + (_PARTIAL,):
        with contextlib.suppress(OSError):
            (folder / file).unlink()
    _remove_empty(folder)


# What building a bundle writes into its hidden folder: the bundle's files, the partial marker, and
# pooch's temporary downloads (tempfile's "tmp" names), nothing else.
_BUILD_FILE = re.compile(r"(runs/[A-Za-z0-9][A-Za-z0-9._-]{0,99}/)?(result\.json|logits\.npz|tmp\w+)"
                         r"|manifest\.json|labels\.npz|tmp\w+|" + re.escape(_PARTIAL))


def _remove_build(folder: Path) -> None:
    """Remove an unfinished build of this module: the files a build writes (:data:`_BUILD_FILE`), then the folders left empty."""
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and _BUILD_FILE.fullmatch(path.relative_to(folder).as_posix()):
            with contextlib.suppress(OSError):
                path.unlink()
    _remove_empty(folder)


def _remove_empty(folder: Path) -> None:
    """Remove ``folder``'s empty subfolders and itself when empty; a RuntimeWarning names what is kept."""
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            sub.rmdir()  # only empty folders go
    with contextlib.suppress(OSError):
        folder.rmdir()
    if folder.exists():
        kept = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir() or p.is_symlink())
        warnings.warn(f"{folder} is kept: it holds files nclab did not write ({', '.join(kept[:3])}"
                      f"{', ...' if len(kept) > 3 else ''}), put there while nclab wrote a bundle beside it; move "
                      "them where they belong and delete the folder", RuntimeWarning, stacklevel=3)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


@contextlib.contextmanager
def building(folder: Path):
    """A hidden folder beside ``folder`` to write a bundle into, swapped into place when the block ends without error.

    ``folder`` must have passed :func:`check_target`; it is checked again right before the swap, so
    that a file put into it during the build is never swapped away (a ValueError then). Leftovers
    of builds that were killed (hidden folders marked as partial, the marker not locked: this
    process locks its own while it builds) are removed first. On any error
    the hidden folder is removed and ``folder`` is left as it was. The old bundle swapped out is
    removed as :func:`_remove_bundle` does; should it still hold a file nclab did not write, it is
    kept and a RuntimeWarning names it.
    """
    folder = Path(folder).expanduser().absolute()
    _refuse_running(folder)
    _recover(folder)   # leftovers of killed builds: cleaned only now that every argument has been validated
    folder = check_target(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        for leftover in _leftovers(folder, "new"):
            marker = leftover / _PARTIAL
            if marker.is_file() and not marker.is_symlink() and not leftover.is_symlink():
                killed = _hold(marker)   # held while it is removed: a build started meanwhile is not
                if killed is None:
                    _refuse_running(folder)
                    continue
                try:
                    _remove_build(leftover)
                finally:
                    os.close(killed)
        temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=folder.parent))
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the bundle folder ({exc.strerror or exc})", str(folder)) from None
    held = _hold(temp / _PARTIAL)   # locked while this process builds: another export leaves it alone
    swapped = False
    try:
        yield temp
        _fsync_tree(temp)
        temp.chmod(0o777 & ~_umask())
        _check_contents(folder)   # again, right before the swap: files may have been put into it during the build
        (temp / _PARTIAL).unlink()
        if folder.exists() and any(folder.iterdir()):
            try:
                _exchange(temp, folder)
                old = temp
            except OSError:
                old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
                os.replace(folder, old)   # a kill here leaves the old bundle aside: _recover puts it back
                os.replace(temp, folder)
            swapped = True
            _remove_bundle(old)
        else:
            os.replace(temp, folder)
            swapped = True
    except BaseException:
        if not swapped:
            _remove_build(temp)   # the unfinished new bundle
        raise
    finally:
        if held is not None:
            os.close(held)


# Validating a manifest ---------------------------------------------------------------------------

_PROVENANCE = {"description": str, "command": str, "nclab": str, "commit": str, "cpu": str, "torch": str,
               "python": str, "date": str}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _relative(key) -> bool:
    """A file key of a manifest: a relative POSIX path inside the bundle (no '..', no absolute path)."""
    return (isinstance(key, str) and key and "\\" not in key and "\0" not in key and not key.startswith("/")
            and all(part not in ("", ".", "..") for part in key.split("/")))


def _manifest_problem(m) -> str | None:
    """What is wrong with a parsed manifest, in a few words; None when it is a valid bundle manifest."""
    if not isinstance(m, dict):
        return "it is not a JSON object"
    if m.get("schema") != SCHEMA:
        return f"its schema is {m.get('schema')!r}; this nclab reads {SCHEMA!r}"
    if not isinstance(m.get("name"), str) or not _NAME.fullmatch(m["name"]):
        return f"its name {m.get('name')!r} is not a bundle name"
    for key, kind in _PROVENANCE.items():
        if not isinstance(m.get(key), kind):
            return f"'{key}' is missing or not a {kind.__name__}"
    for key in ("threads", "workers"):
        if m.get(key) is not None and (not isinstance(m[key], int) or isinstance(m[key], bool) or m[key] < 1):
            return f"'{key}' is not a positive integer"
    for key in ("wall_seconds", "run_seconds_median"):
        if not _number(m.get(key)) or m[key] < 0:
            return f"'{key}' is not a finite number of seconds >= 0"
    runs, files = m.get("runs"), m.get("files")
    if not isinstance(runs, list) or not runs:
        return "'runs' is not a non-empty list"
    if not isinstance(files, dict):
        return "'files' is not an object of file: SHA-256"
    expected = {LABELS}
    seen = set()
    for entry in runs:
        if not isinstance(entry, dict) or set(entry) < {"folder", "delta", "seed", "seconds"}:
            return f"a run entry lacks folder, delta, seed or seconds: {entry!r:.80}"
        folder, delta, seed = entry["folder"], entry["delta"], entry["seed"]
        if not isinstance(folder, str) or not _NAME.fullmatch(folder):
            return f"the run folder {folder!r:.80} is not a plain folder name"
        if not _number(delta) or not 0 <= delta < 1 or not isinstance(seed, int) or isinstance(seed, bool):
            return f"run {folder}: delta must be a number in [0, 1) and seed an integer"
        if not _number(entry["seconds"]) or entry["seconds"] < 0:
            return f"run {folder}: seconds is not a finite number >= 0"
        if folder in {f for f, _ in seen} or (delta, seed) in {k for _, k in seen}:
            return f"run {folder} (δ={delta:g}, seed {seed}) is listed twice"
        seen.add((folder, (delta, seed)))
        expected |= {f"runs/{folder}/{RESULT}", f"runs/{folder}/{LOGITS}"}
    for key, digest in files.items():
        if not _relative(key):
            return f"the file {key!r:.80} is not a relative path inside the bundle"
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            return f"the file {key} has no SHA-256 hash"
    if set(files) != expected:
        extra, missing = sorted(set(files) - expected), sorted(expected - set(files))
        return (f"'files' lists {extra[0]}, which belongs to no run" if extra
                else f"'files' does not list {missing[0]}, so it would be read unchecked")
    if m.get("deltas") != sorted({d for _, (d, _) in seen}) or m.get("seeds") != sorted({s for _, (_, s) in seen}):
        return "'deltas' or 'seeds' disagree with the runs it lists"
    return None


def parse_manifest(content: bytes, where: str) -> dict:
    """A manifest's JSON, validated (see :func:`_manifest_problem`); ValueError naming ``where`` otherwise."""
    deep = ValueError(f"{where} is not a bundle manifest (its JSON is nested too deeply)")
    try:
        manifest = json.loads(content)
    except RecursionError:   # JSON nested thousands of levels deep
        raise deep from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{where} is not a bundle manifest (not JSON: {str(exc).splitlines()[0][:80]})") from None
    try:
        problem = _manifest_problem(manifest)
    except RecursionError:   # a value nested too deeply to describe
        raise deep from None
    if problem:
        raise ValueError(f"{where} is not a valid bundle manifest: {problem}")
    return manifest


def _inside(root: Path, key: str) -> Path:
    """``root / key``, refused when it resolves (symbolic links followed) outside ``root``."""
    path = (root / key).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{root / key} leads outside the bundle folder {root}")
    return path
