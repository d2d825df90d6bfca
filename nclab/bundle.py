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
2. ``results/<name>`` in the book's repository (the nearest folder at or above the working
   directory that holds ``_config.yml``, or the folder above an editable install of the package);
3. a copy fetched earlier into the result cache (``<cache>/published/<name>``);
4. the repository on the web (``$NCLAB_RESULTS_URL``, else the raw files of
   :data:`nclab.repository.REPOSITORY`): every file the manifest lists is downloaded, its SHA-256
   checked, and the copy kept in the cache (so an installed package, e.g. in Colab, needs no
   repository files beside it).

Make one with :func:`export` (or ``python -m nclab bundle``) from finished runs with checkpoints.

Example
-------
>>> fashion = load("fashion")                                 # doctest: +SKIP
>>> evidence = nc.evidence.chapter3(fashion.results)           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .evaluate import Outputs, outputs
from .repository import results_url
from .runs import cache_dir
from .train import RESULT, RunResult, cache_name

__all__ = ["Bundle", "load", "locate", "export", "SCHEMA", "MANIFEST", "LOGITS", "MAX_BYTES"]

SCHEMA = "nclab-bundle-1"
MANIFEST = "manifest.json"
LOGITS = "logits.npz"
LABELS = "labels.npz"
MAX_BYTES = 25 * 2**20  # a bundle lives in the repository: 25 MiB at most
_SPLITS = ("val", "test")


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
        labels = torch.from_numpy(np.load(self.folder / LABELS)[split].astype(np.int64))
        empty = torch.zeros(0)
        grouped: dict[float, list[Outputs]] = {}
        for result in sorted(self.results, key=lambda r: r.config.delta):
            logits = np.load(result.run_dir / LOGITS)[split].astype(np.float32)
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


@contextlib.contextmanager
def _building(folder: Path):
    """A temporary folder beside ``folder``, renamed into its place when the block ends without error.

    A reader never sees half a bundle; on any error the temporary folder is removed.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        yield temp
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(temp, folder)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    folder : where the bundle goes (replaced when it exists)
    name : the bundle's name, read back with :func:`load`
    command : the exact command that trained the runs (for the provenance)
    wall_seconds : the sweep's wall time
    workers : runs trained at a time
    description : a few words on the setting, e.g. "Fashion-MNIST, ResNet18 (width 8)"

    Returns
    -------
    Path of the bundle folder
    """
    results = list(results)
    if not results or not all(isinstance(r, RunResult) for r in results):
        raise ValueError("results must be a non-empty list of RunResult")
    folder = Path(folder)
    with _building(folder) as temp:
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
        files = {str(p.relative_to(temp)): _file_hash(p) for p in sorted(temp.rglob("*")) if p.is_file()}
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
    return folder


def _read(folder: Path, name: str) -> Bundle:
    """Read and check a bundle folder: schema, every listed file present with its hash, every run finished."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{folder / MANIFEST} is not a readable bundle manifest ({exc})") from None
    if manifest.get("schema") != SCHEMA:
        raise ValueError(f"{folder} holds a bundle of schema {manifest.get('schema')!r}; this nclab reads {SCHEMA!r}")
    for file, digest in manifest["files"].items():
        path = folder / file
        if not path.is_file():
            raise ValueError(f"the bundle in {folder} lacks {file}, which its manifest lists")
        if _file_hash(path) != digest:
            raise ValueError(f"{path} does not match the hash in the bundle's manifest (changed or corrupt)")
    results = [RunResult.load(folder / "runs" / entry["folder"]) for entry in manifest["runs"]]
    return Bundle(name, folder, manifest, results)


def _repository_folder(name: str) -> Path | None:
    here = Path.cwd().resolve()
    for base in (*(f for f in (here, *here.parents) if (f / "_config.yml").exists()),
                 Path(__file__).resolve().parents[1]):
        if (base / "results" / name / MANIFEST).exists():
            return base / "results" / name
    return None


def _fetch(name: str, target: Path) -> None:
    """Download a published bundle into ``target`` (via a temporary folder; hashes checked)."""
    base = results_url().rstrip("/") + f"/{name}/"

    def get(file: str) -> bytes:
        try:
            with urllib.request.urlopen(base + file, timeout=60) as response:
                return response.read()
        except (urllib.error.URLError, OSError) as exc:
            raise FileNotFoundError(
                f"could not fetch the published results {base + file} ({exc}). Set NCLAB_RESULTS to a "
                "local copy of the repository's results/ folder, or NCLAB_RESULTS_URL to where it is served"
            ) from None

    manifest = json.loads(get(MANIFEST))
    with _building(target) as temp:
        for file, digest in manifest["files"].items():
            content = get(file)
            if hashlib.sha256(content).hexdigest() != digest:
                raise ValueError(f"{base + file} does not match the hash in its manifest")
            (temp / file).parent.mkdir(parents=True, exist_ok=True)
            (temp / file).write_bytes(content)
        (temp / MANIFEST).write_text(json.dumps(manifest, indent=1))


def locate(name: str, *, fetch: bool = True) -> Path:
    """The folder of bundle ``name``: a local copy, the repository's, a cached download, or a fresh download."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name must be a bundle name such as 'fashion', got {name!r}")
    if os.environ.get("NCLAB_RESULTS"):
        folder = Path(os.environ["NCLAB_RESULTS"]).expanduser() / name
        if not (folder / MANIFEST).exists():
            raise FileNotFoundError(f"NCLAB_RESULTS is set, but {folder} holds no {MANIFEST}")
        return folder
    folder = _repository_folder(name)
    if folder is not None:
        return folder
    cached = cache_dir() / "published" / name
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
        The copy is incomplete, corrupt, or of another schema.
    """
    return _read(locate(name, fetch=fetch), name)
