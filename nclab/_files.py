"""The files of a run folder: atomic writes and the lock that one training process holds.

Every file is written to a temporary file of the writing process, fsynced and renamed over the
old one (:func:`_write_atomically`), so a reader always finds a complete file. One process at a
time trains in a run folder: it holds the folder's lock (``.lock``), with its process id in
``.lock-owner`` (:func:`_run_lock`). :mod:`nclab.train` uses both; its names re-export these.
nclab trains only in a folder of its own: one holding a file it did not write is refused before
anything is created in it (:func:`check_run_folder`).
"""

from __future__ import annotations

import ctypes
import datetime
import errno
import json
import os
import re
import socket
import sys
import tempfile
import threading
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

__all__ = ["LOCK", "OWNER", "RUN_FILES", "RunLocked", "check_run_folder"]

LOCK = ".lock"  # held (flock) by the process that trains the run
OWNER = ".lock-owner"  # who holds the lock: read by a process that finds it taken


class RunLocked(RuntimeError):
    """Another process holds the lock of the run folder (raised by :func:`nclab.train.train` with ``wait=False``)."""


# The files nclab writes in a run folder: the checkpoint and the result (names of nclab.checkpoints
# and nclab.results, which import this module), the lock and its owner, and the temporary files of
# _write_atomically and of the command line's write test that a kill may leave behind.
RUN_FILES = ("checkpoint.pt", "result.json", LOCK, OWNER)
_LEFTOVER = re.compile(r"\.(checkpoint\.pt|result\.json|\.lock-owner)\.\w+\.tmp|\.write-test-\w+")


def _not_nclabs(path: Path) -> bool:
    """Whether ``path``, in a run folder, is a file nclab did not write there (see :data:`RUN_FILES`)."""
    if path.is_symlink() or not path.is_file():
        return True
    if path.name == LOCK:
        return path.stat().st_size != 0  # the lock file nclab takes is always empty
    if path.name == OWNER:
        try:
            owner = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError):
            return True
        return not isinstance(owner, dict) or set(owner) != {"pid", "host", "since"}
    return path.name not in RUN_FILES and not _LEFTOVER.fullmatch(path.name)


def check_run_folder(run_dir: Path) -> None:
    """Refuse, before anything is created, a run folder holding files nclab did not write.

    A run folder may be missing, empty, or hold only what nclab writes there (:data:`RUN_FILES`:
    its checkpoint and result, whose contents are checked when they are read, an empty lock file,
    a lock owner record, temporary files a kill left behind). A symbolic link, a folder or any
    other file is refused: nclab never writes beside, or over, files it did not write.

    Raises
    ------
    NotADirectoryError
        ``run_dir`` is a file.
    ValueError
        ``run_dir`` holds other files (one line naming the folder and up to three of them).
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "the run folder is a file, not a folder", str(run_dir))
    if not run_dir.is_dir():
        return
    try:
        foreign = sorted(p.name for p in run_dir.iterdir() if _not_nclabs(p))
    except OSError as exc:
        raise _located(exc, run_dir) from None
    if foreign:
        raise ValueError(f"{run_dir} holds files nclab did not write ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}); nclab trains only in a new or empty folder or in "
                         "a run folder of its own: move them away or choose another run folder")


@contextmanager
def _run_lock(run_dir: Path, wait: bool, show: bool):
    """Hold ``run_dir``'s lock for the block, creating the folder first; see :func:`nclab.train.train`.

    A folder holding files nclab did not write is refused before anything is created (:func:`check_run_folder`).
    """
    check_run_folder(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _located(exc, run_dir) from None
    lock = FileLock(str(run_dir / LOCK))
    try:
        try:
            lock.acquire(blocking=False)
        except Timeout:
            holder = _lock_holder(run_dir)
            if not wait:
                raise RunLocked(f"{run_dir} is being trained by {holder}; wait for it to finish, "
                                "or use another run folder") from None
            if show:
                print(f"{run_dir} is being trained by {holder}; waiting for it to finish", file=sys.stderr)
            lock.acquire()
    except OSError as exc:
        raise _located(exc, run_dir / LOCK) from None
    try:
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        _write_atomically(run_dir / OWNER, json.dumps(owner).encode())
        yield
    finally:
        _remove(run_dir / OWNER)
        lock.release()


def _lock_holder(run_dir: Path) -> str:
    """Who holds ``run_dir``'s lock, in words, from the owner file its holder writes."""
    try:
        owner = json.loads((run_dir / OWNER).read_text())
        return f"process {owner['pid']} on {owner['host']} (since {owner['since']})"
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return "another process"  # it has the lock but has not written its owner file yet


# Files are created with the usual permissions (mkstemp alone would make them private): 0o666
# less the process's umask, read once, at the first write, without changing it where possible.
_UMASK: int | None = None
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask, read without changing it.

    Linux reports it in ``/proc/self/status`` (line ``Umask:``, since Linux 4.7). Elsewhere the only
    way to read it is to set it and set it back (``os.umask``), which changes process-wide state for
    an instant: that is done once, at the first write rather than at import, under a lock, and a
    thread creating a file in that instant could still create it with mode 0o666. The value is
    cached: a program that changes its umask later keeps the first one for its run folders.
    """
    global _UMASK
    with _UMASK_LOCK:
        if _UMASK is None:
            _UMASK = _umask_from_proc()
            if _UMASK is None:
                _UMASK = os.umask(0o022)
                os.umask(_UMASK)
        return _UMASK


def _umask_from_proc() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _write_atomically(path: Path, payload: bytes | memoryview, place=None) -> None:
    """Replace ``path`` by ``payload`` so that a reader sees the old file or the new one, never a part.

    The bytes go to a temporary file of this process in the same folder (``mkstemp``: two
    processes never share one), are fsynced, and the file is renamed over ``path``; the folder is
    fsynced so the rename survives a crash. When anything fails (a full disk, Ctrl-C) the temporary
    file is removed and ``path`` keeps its last complete content; an OSError names ``path``.
    ``place(temp, path)``, when given, puts the written temporary file at ``path`` instead of the
    rename (e.g. never over a file that appeared meanwhile); should it leave another file at the
    temporary name (a swap it could not undo), that file is not removed.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _located(exc, path) from None
    ours = os.fstat(fd)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if place is None:
            os.replace(tmp, path)
        else:
            place(Path(tmp), path)
    except BaseException as exc:
        with suppress(OSError):
            if os.path.samestat(os.lstat(tmp), ours):   # only the file this call wrote
                _remove(Path(tmp))
        if isinstance(exc, OSError):
            raise _located(exc, path) from None
        raise
    try:
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return  # a folder that cannot be opened cannot be fsynced either (the file itself is)
    try:
        os.fsync(folder)
    except OSError:
        pass  # some file systems do not fsync folders; the rename itself has been made
    finally:
        os.close(folder)


_RENAME_NOREPLACE, _RENAME_EXCHANGE, _AT_FDCWD = 1, 2, -100


def _renameat2(a: Path, b: Path, flags: int) -> None:
    """Linux renameat2 (a small ctypes call: no maintained package offers it); OSError where unsupported."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a), None, str(b))


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths (files or folders) in one atomic step (renameat2 RENAME_EXCHANGE); OSError where unsupported."""
    _renameat2(a, b, _RENAME_EXCHANGE)


def _link_new(src: Path, dst: Path) -> None:
    """Give the file ``src`` the new name ``dst``, never replacing what is there: FileExistsError if anything is.

    A hard link (os.link never replaces) and then ``src`` is unlinked; where the file system has no
    hard links, renameat2 with RENAME_NOREPLACE.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
            raise
        _renameat2(src, dst, _RENAME_NOREPLACE)
        return
    os.unlink(src)


def _located(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` (an OSError of the same kind, e.g. PermissionError, when it named none)."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def _remove(path: Path) -> None:
    with suppress(OSError):
        path.unlink()
