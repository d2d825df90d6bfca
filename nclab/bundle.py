"""Published results: evidence bundles of finished sweeps, read instead of retrained (chapters 2-5, 9).

A bundle is a folder that holds, for every run of a sweep, its ``result.json`` (config, per-epoch
history, provenance) and its final network's validation and test logits (float16), plus one
``manifest.json`` that says how the bundle was made: the exact command, the nclab version and git
commit, the CPU model, threads, torch version, date and wall times. The book's bundles are
committed in the repository under ``results/`` (e.g. ``results/fashion``: the ``fashion`` profile,
Fashion-MNIST on the CPU) and the chapters read them with :func:`load`; a book build never trains
them.

Where :func:`load` looks, in order:

1. ``$NCLAB_RESULTS/<name>`` when ``NCLAB_RESULTS`` is set (a local copy of ``results/``);
2. ``results/<name>`` in the book's repository, when the package is imported from a source
   checkout of it (:func:`nclab.settings.checkout`; the working directory plays no part);
3. a copy fetched earlier into the result cache (``<cache>/published/<name>``);
4. the repository on the web (:func:`results_url`: ``$NCLAB_RESULTS_URL``, else
   :data:`RESULTS_URL`, the raw ``results/`` files of the book's repository): every file the
   manifest lists is downloaded, its SHA-256
   checked, and the copy kept in the cache (so an installed package, e.g. in Colab, needs no
   repository files beside it).

Make one with :func:`export` (or ``python -m nclab bundle``) from finished runs with checkpoints.

Safety. A manifest, local or downloaded, is validated before any file is read or written: its
schema, every run listed once with its two files, every file a relative path inside the bundle
(no ``..``, no absolute path) with a SHA-256, ``deltas`` and ``seeds`` as the runs say; every path
is resolved and must lie inside the bundle folder. Downloads go through `pooch
<https://www.fatiando.org/pooch/>`_ (hash-checked, written atomically) into a hidden folder that is
swapped into the cache only when complete; a fetch stops once it has downloaded :data:`MAX_BYTES`.
Every array's shape and size are read from its ``.npy`` header and checked before it is
decompressed. :func:`export` writes only into a new or empty folder or
over a bundle it wrote, swaps the new bundle in atomically, and removes of the old one only the
files its manifest lists (:func:`check_target`). No bundle file is unpickled.

Example
-------
>>> fashion = load("fashion")                                 # doctest: +SKIP
>>> evidence = nc.book.evidence.chapter3(fashion.results)      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pooch
import torch

from . import settings
from ._checks import check_positive_int
from ._bundle_folder import (_PARTIAL, _SPLITS, LABELS, LOGITS, MANIFEST, SCHEMA, _inside,
                             _number, _recover, building, check_name, check_target, parse_manifest)
from .evaluate import Outputs, outputs
from .runs import cache_dir
from .train import RESULT, RunResult, cache_name

__all__ = ["Bundle", "load", "locate", "export", "check_target", "check_name", "results_url", "RESULTS_URL", "SCHEMA",
           "MANIFEST", "LOGITS", "MAX_BYTES"]

# Set by `make sync` from _config.yml (repository.url, repository.branch); do not edit by hand.
RESULTS_URL = "https://raw.githubusercontent.com/nclab-book/nclab/main/results"

MAX_BYTES = 25 * 2**20  # a bundle lives in the repository: 25 MiB at most


@dataclass
class Bundle:
    """A loaded bundle.

    Attributes
    ----------
    name : the bundle's name (e.g. "fashion")
    folder : where it was read from
    manifest : the contents of ``manifest.json`` (provenance and file list)
    results : every run, as :class:`nclab.train.RunResult` (history and provenance; no checkpoint)
    """

    name: str
    folder: Path
    manifest: dict
    results: list[RunResult]

    def outputs_by_delta(self, split: str = "test") -> dict[float, list[Outputs]]:
        """The stored logits of every run on ``split`` ("val" or "test"), grouped by δ, as :class:`nclab.evaluate.Outputs`.

        The same shape as :func:`nclab.evaluate.outputs_by_delta` gives for runs with checkpoints,
        but with logits only: ``features``, ``weight`` and ``bias`` are empty (a bundle stores no
        network).
        """
        if split not in _SPLITS:
            raise ValueError(f"split must be 'val' or 'test' (a bundle stores those logits), got {split!r}")
        labels = torch.from_numpy(_arrays(self.folder / LABELS, (split,))[split].astype(np.int64))
        empty = torch.zeros(0)
        grouped: dict[float, list[Outputs]] = {}
        for result in sorted(self.results, key=lambda r: r.config.delta):
            logits = _arrays(result.run_dir / LOGITS, (split,), rows={split: len(labels)})[split].astype(np.float32)
            grouped.setdefault(result.config.delta, []).append(
                Outputs(torch.zeros(len(labels), 0), torch.from_numpy(logits), labels, empty, empty))
        return grouped

    def describe(self) -> str:
        """One paragraph of provenance: what was run, how, where and when."""
        m = self.manifest
        return (f"{len(self.results)} runs ({m['description']}), made with `{m['command']}` "
                f"(nclab {m['nclab']}, commit {m['commit'][:10]}) on {m['cpu']} with {m['threads']} "
                f"thread(s) per run and {m['workers']} runs at a time, torch {m['torch']}, on {m['date'][:10]}; "
                f"sweep wall time {m['wall_seconds'] / 60:.0f} min, one run {m['run_seconds_median'] / 60:.1f} min (median).")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def export(results: list[RunResult], folder: str | os.PathLike, *, name: str, command: str,
           wall_seconds: float, workers: int, description: str) -> Path:
    """Write a bundle of finished runs (with their checkpoints) into ``folder``, atomically.

    Each run's final network is evaluated once on the validation and test splits; its logits are
    stored as float16. The bundle is first written to a temporary folder beside ``folder`` and
    renamed into place, so a reader never sees half a bundle.

    Parameters
    ----------
    results : finished runs of one sweep, each with a checkpoint (e.g. from :func:`nclab.runs.sweep`)
    folder : where the bundle goes: a new or empty folder, or one holding a bundle and nothing
        else, which is replaced by an atomic swap (see :func:`check_target`)
    name : the bundle's name, read back with :func:`load`
    command : the exact command that trained the runs (for the provenance)
    wall_seconds : the sweep's wall time
    workers : runs trained at a time
    description : a few words on the setting, e.g. "Fashion-MNIST, ResNet18 (width 8)"

    Returns
    -------
    Path of the bundle folder

    Raises
    ------
    ValueError
        ``folder`` holds files that are not part of a bundle (nothing is touched), a bad ``name``,
        ``wall_seconds`` or ``workers``, or a bundle over :data:`MAX_BYTES`.
    """
    results = list(results)
    if not results or not all(isinstance(r, RunResult) for r in results):
        raise ValueError("results must be a non-empty list of RunResult")
    check_name(name)
    if not _number(wall_seconds) or wall_seconds < 0:
        raise ValueError(f"wall_seconds must be a finite number of seconds >= 0, got {wall_seconds!r}")
    check_positive_int(workers, "workers")
    keys = [(r.config.delta, r.config.seed) for r in results]
    if len(set(keys)) != len(keys):
        raise ValueError("results holds the same (δ, seed) twice; a bundle holds each run once")
    with building(Path(folder)) as temp:
        labels = {}
        entries = []
        for result in results:
            run = temp / "runs" / cache_name(result.config, result.provenance.get("nclab"))
            run.mkdir(parents=True)
            shutil.copyfile(result.run_dir / RESULT, run / RESULT)
            logits = {}
            for split in _SPLITS:
                out = outputs(result, split)
                logits[split] = out.logits.numpy().astype(np.float16)
                labels.setdefault(split, out.labels.numpy().astype(np.int16))
            np.savez_compressed(run / LOGITS, **logits)
            entries.append({"folder": run.name, "delta": result.config.delta, "seed": result.config.seed,
                            "seconds": result.final["time_elapsed"]})
        np.savez_compressed(temp / LABELS, **labels)
        files = {str(p.relative_to(temp)): pooch.file_hash(str(p), alg="sha256") for p in sorted(temp.rglob("*")) if p.is_file() and p.name != _PARTIAL}
        size = sum((temp / f).stat().st_size for f in files)
        if size > MAX_BYTES:
            raise ValueError(f"the bundle would take {size / 2**20:.1f} MiB, over the {MAX_BYTES // 2**20} MiB "
                             "a bundle may take in the repository: fewer runs or a smaller test split")
        first = results[0]
        manifest = {
            "schema": SCHEMA, "name": name, "description": description, "command": command,
            "nclab": first.provenance.get("nclab"), "commit": _git_commit(), "cpu": _cpu_model(),
            "threads": first.config.threads, "workers": workers, "torch": torch.__version__,
            "python": platform.python_version(), "date": first.provenance.get("date"),
            "wall_seconds": float(wall_seconds),
            "run_seconds_median": float(np.median([e["seconds"] for e in entries])),
            "deltas": sorted({r.config.delta for r in results}), "seeds": sorted({r.config.seed for r in results}),
            "runs": entries, "files": files,
        }
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return Path(folder)


# Reading and checking a bundle ------------------------------------------------------------------

_MAX_ARRAY_BYTES = 4 * MAX_BYTES  # one array of a bundle, decompressed; a larger one is refused unread
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _shapes(path: Path, splits=_SPLITS, *, rows: dict[str, int] | None = None) -> dict[str, tuple[int, ...]]:
    """The shape of each split's array in a bundle's ``.npz``, read from the ``.npy`` headers alone (no data decompressed).

    Labels (``rows`` None) must be one-dimensional, logits two-dimensional with ``rows[split]``
    rows; no array may hold Python objects or take over ``_MAX_ARRAY_BYTES`` decompressed.
    ValueError naming the file otherwise.
    """
    bad = f"{path} is not a bundle's {path.name} with splits {', '.join(splits)}"
    shapes = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for split in splits:
                with archive.open(f"{split}.npy") as f:
                    version = np.lib.format.read_magic(f)
                    if version not in _HEADER_READERS:
                        raise ValueError(f"npy format version {version}")
                    shape, _, dtype = _HEADER_READERS[version](f)
                if dtype.hasobject:
                    raise ValueError(f"the {split} array holds Python objects")
                shapes[split] = shape
                size = math.prod(shape) * dtype.itemsize
                if size > _MAX_ARRAY_BYTES:
                    raise ValueError(f"the {split} array would take {size / 2**20:.0f} MiB decompressed, over the "
                                     f"{_MAX_ARRAY_BYTES // 2**20} MiB an array of a bundle may take")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{bad} ({exc})") from None
    for split, shape in shapes.items():
        if rows is None and len(shape) != 1:
            raise ValueError(f"{bad} (the {split} labels have shape {shape}, not one dimension)")
        if rows is not None and (len(shape) != 2 or shape[0] != rows[split]):
            raise ValueError(f"{path}: the {split} logits have shape {shape}, not one row for each of the "
                             f"{rows[split]} {split} labels")
    return shapes


def _arrays(path: Path, splits=_SPLITS, *, rows: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` of a bundle (no pickles), one per split, their shapes checked first (:func:`_shapes`)."""
    _shapes(path, splits, rows=rows)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {split: data[split] for split in splits}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a bundle's {path.name} with splits {', '.join(splits)} ({exc})") from None
    return arrays


def _read(folder: Path, name: str) -> Bundle:
    """Read and check a bundle folder: the manifest first, then every file inside it with its hash, shapes and runs."""
    root = folder.resolve()
    try:
        content = (root / MANIFEST).read_bytes()
    except OSError as exc:
        raise ValueError(f"{folder / MANIFEST} is not a readable bundle manifest ({exc.strerror or exc})") from None
    manifest = parse_manifest(content, str(folder / MANIFEST))
    for file, digest in manifest["files"].items():
        path = _inside(root, file)
        if not path.is_file():
            raise ValueError(f"the bundle in {folder} lacks {file}, which its manifest lists")
        if pooch.file_hash(str(path), alg="sha256") != digest:
            raise ValueError(f"{path} does not match the hash in the bundle's manifest (changed or corrupt)")
    labels = {split: shape[0] for split, shape in _shapes(root / LABELS).items()}
    results = []
    for entry in manifest["runs"]:
        run = root / "runs" / entry["folder"]
        result = RunResult.load(run)
        if (result.config.delta, result.config.seed) != (entry["delta"], entry["seed"]):
            raise ValueError(f"{run / RESULT} holds δ={result.config.delta:g}, seed {result.config.seed}; "
                             f"the manifest lists δ={entry['delta']:g}, seed {entry['seed']}")
        _shapes(run / LOGITS, rows=labels)
        results.append(result)
    return Bundle(name, folder, manifest, results)


def _repository_folder(name: str) -> Path | None:
    """``results/<name>`` of the source checkout the package is imported from, when it holds that bundle."""
    base = settings.checkout()
    if base is None:
        return None
    _recover(base / "results" / name)
    return base / "results" / name if (base / "results" / name / MANIFEST).exists() else None


# Fetching a published bundle --------------------------------------------------------------------

def _file_url(url: str, output_file, _pooch=None, check_only: bool = False):
    """A pooch downloader for ``file://`` URLs (pooch itself speaks HTTP, FTP, SFTP and DOI), copying in blocks."""
    path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if check_only:
        return path.is_file()
    with open(path, "rb") as source, _opened(output_file) as out:
        for block in iter(lambda: source.read(2**20), b""):
            out.write(block)
    return None


@contextlib.contextmanager
def _opened(output_file):
    """``output_file`` as a file to write: opened (and closed) when it is a path, as it is when a file."""
    if isinstance(output_file, (str, os.PathLike)):
        with open(output_file, "wb") as f:
            yield f
    else:
        yield output_file


class _TooLarge(ValueError):
    """A download that would take a bundle over :data:`MAX_BYTES`."""


class _Capped:
    """What a download writes, passed on to ``file`` until the fetch has written :data:`MAX_BYTES` in all."""

    def __init__(self, file, written: list[int], url: str):
        self.file, self.written, self.url = file, written, url

    def write(self, chunk: bytes) -> int:
        self.written[0] += len(chunk)
        if self.written[0] > MAX_BYTES:
            raise _TooLarge(f"{self.url} takes the published bundle over {MAX_BYTES // 2**20} MiB, the most a "
                            "bundle may take; the download is stopped")
        return self.file.write(chunk)

    def flush(self) -> None:
        self.file.flush()


def _capped(url: str, written: list[int]):
    """A pooch downloader for ``url`` (HTTP or ``file://``) that stops once ``written[0]`` bytes pass :data:`MAX_BYTES`."""
    inner = _file_url if url.startswith("file:") else pooch.HTTPDownloader(progressbar=False)

    def download(url, output_file, pooch_=None, check_only=False):
        if check_only:
            return inner(url, output_file, pooch_, check_only=True)
        with _opened(output_file) as out:
            return inner(url, _Capped(out, written, url), pooch_)
    return download


def _download(url: str, destination: Path, digest: str | None, written: list[int]) -> Path:
    """Download ``url`` into ``destination`` with pooch (atomic; SHA-256 checked when ``digest`` is given).

    ``written`` counts the bytes of the whole fetch: a download that takes it over
    :data:`MAX_BYTES` is stopped (a ValueError), its partial file removed.
    """
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # pooch announces every download and hash at INFO
    try:
        return Path(pooch.retrieve(url, known_hash=f"sha256:{digest}" if digest else None, fname=destination.name,
                                   path=destination.parent, progressbar=False, downloader=_capped(url, written)))
    except OSError as exc:   # requests' errors are OSErrors too
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise FileNotFoundError(
            f"could not fetch the published results {url} ({reason}). Set NCLAB_RESULTS to a local copy of "
            "the repository's results/ folder, or NCLAB_RESULTS_URL to where it is served") from None
    except _TooLarge:
        raise
    except ValueError as exc:
        if "hash" in str(exc):
            raise ValueError(f"{url} does not match the hash in its manifest (a damaged or altered copy)") from None
        raise ValueError(f"could not fetch {url}: {str(exc).splitlines()[0][:120]}") from None
    finally:
        logger.setLevel(level)


def results_url() -> str:
    """Where published bundles are downloaded from: ``$NCLAB_RESULTS_URL`` when set (a mirror, or a
    ``file://`` URL of a local copy), else :data:`RESULTS_URL`.

    Example
    -------
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"NCLAB_RESULTS_URL": "file:///srv/nclab/results"}):
    ...     print(results_url())
    file:///srv/nclab/results
    """
    return settings.results_url(RESULTS_URL)


def _fetch(name: str, target: Path) -> None:
    """Download a published bundle into ``target``: the manifest first, validated, then every file it lists, hashed."""
    base = results_url().rstrip("/") + f"/{name}/"
    written = [0]   # bytes downloaded so far: at most MAX_BYTES in all
    with building(target) as temp:
        manifest = parse_manifest(_download(base + MANIFEST, temp / MANIFEST, None, written).read_bytes(),
                                  base + MANIFEST)
        if manifest["name"] != name:
            raise ValueError(f"{base + MANIFEST} is the manifest of bundle {manifest['name']!r}, not {name!r}")
        root = temp.resolve()
        for file, digest in manifest["files"].items():
            destination = _inside(root, file)
            destination.parent.mkdir(parents=True, exist_ok=True)
            _download(base + file, destination, digest, written)


def locate(name: str, *, fetch: bool = True) -> Path:
    """The folder of bundle ``name``: a local copy, the repository's, a cached download, or a fresh download."""
    check_name(name)
    local = settings.results_dir()
    if local is not None:
        folder = local / name
        if not (folder / MANIFEST).exists():
            raise FileNotFoundError(f"NCLAB_RESULTS is set, but {folder} holds no {MANIFEST}")
        return folder
    folder = _repository_folder(name)
    if folder is not None:
        return folder
    cached = cache_dir() / "published" / name
    _recover(cached)
    if (cached / MANIFEST).exists():
        return cached
    if not fetch:
        raise FileNotFoundError(f"no copy of the published results {name!r} on this machine")
    _fetch(name, cached)
    return cached


def load(name: str = "fashion", *, fetch: bool = True) -> Bundle:
    """The published bundle ``name``, checked (see the module's description for where it is looked for).

    Parameters
    ----------
    name : the bundle's name; the book publishes "fashion"
    fetch : download it when no copy is on this machine

    Returns
    -------
    Bundle

    Raises
    ------
    FileNotFoundError
        No copy here and it cannot be fetched (the message says what to set).
    ValueError
        The copy is incomplete, corrupt, or of another schema (for a copy downloaded earlier, the
        message names the folder to delete).
    """
    folder = locate(name, fetch=fetch)
    try:
        return _read(folder, name)
    except ValueError as exc:
        if folder != cache_dir() / "published" / name:
            raise
        raise ValueError(f"{exc}; this is the copy downloaded earlier: delete the folder {folder} to download "
                         "it again") from None
