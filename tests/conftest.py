"""Shared fixtures, and the one place that trains the book's quick sweep for the tests.

The quick sweep (:func:`nclab.runs.book_sweep`, 48 runs) is the costliest thing the suite
computes. Tests that need it trained on some floating-point path ask the session fixture
:func:`quick_sweeps`, which trains it at most once per path in a session: a path equal to the
session's own (the default) reuses the repository's result cache, which ``make book`` and the
chapters fill; another path gets a fresh cache.

A test marked ``quick_sweep(**env)`` declares the path it needs: when such tests are selected,
their sweeps start training at the session's start, one after another, in a background process
at the lowest CPU priority, so that they use the cores the other tests leave idle; those tests
run last, and wait for their sweep (raised back to normal priority) if it is still training.

At the end of the session the terminal summary lists the runs trained per path (also stored in
pytest's cache as ``nclab/runs-trained-per-path``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# Environment variables that pick a floating-point path besides torch's CPU capability, which the
# probe below reads as torch resolves it (ATEN_CPU_CAPABILITY, or the best one the CPU has).
MKL_VARIABLES = ("MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE")
ONEDNN_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
PROBE = ("import json, torch; print(json.dumps({'capability': torch.backends.cpu.get_cpu_capability(), "
         "'mkl': torch.backends.mkl.is_available(), 'onednn': torch.backends.mkldnn.is_available()}))")

TRAIN = """
import json
import nclab as nc
from nclab.train import RESULT
configs = nc.runs.grid(deltas=nc.runs.SWEEP_DELTAS, seeds=nc.runs.SWEEP_SEEDS)
missing = sum(not (nc.runs.run_dir(c) / RESULT).exists() for c in configs)
nc.runs.book_sweep(progress=False)
left = sum(not (nc.runs.run_dir(c) / RESULT).exists() for c in configs)
print(json.dumps({"runs": len(configs), "trained": missing, "left": left}))
"""

# What this session trained, for the terminal summary: one entry per training or reuse.
TRAINED: list[dict] = []


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny problems run much faster on one thread on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def default_cache() -> Path:
    """The result cache a chapter run from the repository uses: ``$NCLAB_CACHE``, else ``<repo>/.nclab-cache``."""
    value = os.environ.get("NCLAB_CACHE")
    return Path(value).expanduser() if value else ROOT / ".nclab-cache"


def finished_runs(cache: Path) -> int:
    """How many finished runs (``*/result.json``) a result cache holds."""
    return sum(1 for _ in cache.glob("*/result.json")) if cache.is_dir() else 0


@dataclass
class Training:
    path: str            # the floating-point path, as floating_point_path names it
    cache: str           # the result cache it trained into
    by: str              # the test that asked first
    runs: int            # runs in the sweep
    trained: int         # runs this session trained (0: all were in the cache already)
    seconds: float       # wall time of the training


class _Job:
    """One sweep to train: its environment and cache, and once run, its process and outcome."""

    def __init__(self, path: str, env: dict[str, str], cache: Path):
        self.path, self.env, self.cache = path, env, cache
        self.claimed = False              # a thread has started (or is about to start) it
        self.background = False
        self.process: subprocess.Popen | None = None
        self.finished = threading.Event()
        self.outcome: tuple[int, str, str, float, int] | None = None   # rc, stdout, stderr, seconds, gained

    def run(self, cwd: Path, background: bool) -> None:
        self.background = background
        before = finished_runs(self.cache)
        start = time.perf_counter()
        try:
            # Its own process group, so that its sweep's worker processes are reniced and stopped with it.
            self.process = subprocess.Popen([sys.executable, "-c", TRAIN], env=self.env, cwd=cwd, text=True,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
            if background:
                os.setpriority(os.PRIO_PGRP, self.process.pid, 19)   # before it starts its workers
            out, err = self.process.communicate(timeout=3600)
            self.outcome = (self.process.returncode, out, err, time.perf_counter() - start,
                            finished_runs(self.cache) - before)
        except Exception as error:   # noqa: BLE001 - reported by the test that waits for it
            self.outcome = (-1, "", repr(error), time.perf_counter() - start, 0)
        finally:
            self.finished.set()

    def hurry(self) -> None:
        """A test waits for this background job: give its processes the normal priority (where allowed)."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.setpriority(os.PRIO_PGRP, self.process.pid, 0)
            except OSError:
                pass

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except OSError:
                pass


class QuickSweeps:
    """The book's quick sweep, trained at most once per floating-point path in a test session.

    :meth:`prepare` names the path an environment selects (:meth:`floating_point_path`); the
    first time a path is asked for, it trains whatever runs of the sweep that path's cache lacks
    (in a subprocess with that environment, or by waiting for the background one
    :meth:`start_in_background` started) and records how many; later calls for the same path
    train nothing and assert that its cache still holds the whole sweep.
    """

    finished_runs = staticmethod(finished_runs)

    def __init__(self, scratch: Path):
        self.scratch = scratch
        self._probed: dict[tuple, dict] = {}
        self.default = self.floating_point_path(dict(os.environ))
        self.done: dict[str, Training] = {}
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def floating_point_path(self, env: dict[str, str]) -> str:
        """The floating-point path a process started with ``env`` takes, e.g. ``AVX2`` or ``AVX512 MKL_CBWR=COMPATIBLE``.

        Keyed on the effective environment: torch's CPU capability as a process with ``env``
        resolves it, plus the MKL and oneDNN variables that change a code path (MKL_CBWR=AUTO
        is MKL's own default, so it names the default path; variables of a library torch lacks
        are left out).
        """
        relevant = tuple((k, env.get(k, "")) for k in ("ATEN_CPU_CAPABILITY", *MKL_VARIABLES, *ONEDNN_VARIABLES))
        if relevant not in self._probed:
            done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-2000:]
            self._probed[relevant] = json.loads(done.stdout.strip().splitlines()[-1])
        probe = self._probed[relevant]
        parts = [probe["capability"]]
        for names, present in ((MKL_VARIABLES, probe["mkl"]), (ONEDNN_VARIABLES, probe["onednn"])):
            for name in names if present else ():
                value = env.get(name, "").strip().upper()
                if value and not (name == "MKL_CBWR" and value == "AUTO"):
                    parts.append(f"{name}={value}")
        return " ".join(parts)

    def _job(self, overrides: dict[str, str]) -> _Job:
        """The job of the path that the session's environment with ``overrides`` selects (made on first use)."""
        env = {**os.environ, **overrides, "NCLAB_PROFILE": "quick", "NCLAB_PROGRESS": "0"}
        path = self.floating_point_path(env)
        with self._lock:
            if path not in self._jobs:
                if path == self.default:
                    cache = default_cache()
                else:
                    cache = self.scratch / ("sweep-" + re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-").lower())
                env["NCLAB_CACHE"] = str(cache)
                self._jobs[path] = _Job(path, env, cache)
            return self._jobs[path]

    def start_in_background(self, overrides: list[dict[str, str]]) -> None:
        """Train the sweeps of these environments' paths one after another, at the lowest priority, from now on."""
        jobs = list(dict.fromkeys(self._job(o) for o in overrides))

        def work():
            for job in jobs:
                with self._lock:
                    if self._stopping or job.claimed:
                        continue
                    job.claimed = True
                job.run(self.scratch, background=True)

        self._thread = threading.Thread(target=work, name="quick sweeps", daemon=True)
        self._thread.start()

    def prepare(self, overrides: dict[str, str], by: str) -> tuple[dict[str, str], Path, str]:
        """An environment (the session's, with ``overrides``) whose result cache holds the whole quick sweep.

        Returns the environment (with ``NCLAB_CACHE``, ``NCLAB_PROFILE=quick``), its cache and
        the name of its floating-point path.
        """
        job = self._job(overrides)
        with self._lock:
            mine = not job.claimed
            job.claimed = True
        if mine:
            job.run(self.scratch, background=False)
        else:
            job.hurry()
            job.finished.wait()
        rc, out, err, seconds, gained = job.outcome
        assert rc == 0, f"training the quick sweep on {job.path} failed:\n{err[-3000:]}"
        report = json.loads(out.strip().splitlines()[-1])
        assert report["left"] == 0, f"the quick sweep on {job.path} is still missing {report['left']} runs"
        assert gained >= report["trained"], f"{job.cache} gained {gained} results for {report['trained']} runs trained"
        if job.path not in self.done:
            how = " (in the background from the session's start)" if job.background else ""
            self.done[job.path] = Training(job.path, str(job.cache), by + how, report["runs"], report["trained"], seconds)
            TRAINED.append(asdict(self.done[job.path]))
        else:
            # Asked again: the sweep must still be whole, and nothing may train it a second time.
            start = time.perf_counter()
            before = finished_runs(job.cache)
            again = subprocess.run([sys.executable, "-c", TRAIN], env=job.env, capture_output=True, text=True,
                                   timeout=3600, cwd=self.scratch)
            assert again.returncode == 0, again.stderr[-3000:]
            report = json.loads(again.stdout.strip().splitlines()[-1])
            assert report["trained"] == 0 and finished_runs(job.cache) == before, (
                f"the quick sweep on {job.path} was trained twice in one session: {report['trained']} runs "
                f"again for {by}, after {self.done[job.path].by}")
            TRAINED.append(asdict(Training(job.path, str(job.cache), by, report["runs"], 0,
                                           time.perf_counter() - start)))
        return dict(job.env), job.cache, job.path

    def record(self, path: str, cache: Path, by: str, runs: int, trained: int, seconds: float) -> None:
        """Log a training that deliberately does not go through :meth:`prepare` (the Colab-like cold run)."""
        TRAINED.append(asdict(Training(path, str(cache), by, runs, trained, seconds)))

    def stop(self) -> None:
        """End the background training (the session is over): stop the running sweep, start no other."""
        with self._lock:
            self._stopping = True
        for job in list(self._jobs.values()):
            job.stop()
        if self._thread is not None:
            self._thread.join(timeout=60)


@pytest.fixture(scope="session")
def quick_sweeps(tmp_path_factory):
    """The book's quick sweep, trained at most once per floating-point path in this session (see :class:`QuickSweeps`)."""
    sweeps = QuickSweeps(tmp_path_factory.mktemp("quick-sweeps"))
    yield sweeps
    sweeps.stop()


@pytest.fixture(scope="session", autouse=True)
def _quick_sweeps_in_the_background(request):
    """Start training, in the background, the sweeps that the selected ``quick_sweep`` tests will ask for."""
    wanted = [dict(mark.kwargs) for item in request.session.items for mark in item.iter_markers("quick_sweep")]
    if wanted:
        request.getfixturevalue("quick_sweeps").start_in_background(wanted)


def pytest_configure(config):
    """Ctrl-C reaches the processes the tests start, as it does in a terminal.

    A suite started in the background by a non-interactive shell (``cmd &``) inherits SIGINT
    ignored, and so would every process it starts: the tests of Ctrl-C, of a worker's SIGINT and of
    a cancelled job would then see a signal that does nothing. A handled signal is reset to its
    default in an exec'd child, so handling it here restores the terminal's behaviour for them.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config, items):
    # The tests that wait for a background sweep go last, so that it has the whole session to train.
    items.sort(key=lambda item: item.get_closest_marker("quick_sweep") is not None)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not TRAINED:
        return
    terminalreporter.section("runs trained per path")
    for entry in TRAINED:
        terminalreporter.write_line(
            f"{entry['path']:28s} {entry['trained']:3d} of {entry['runs']:3d} runs trained "
            f"{entry['seconds']:7.1f} s  for {entry['by']}  ({entry['cache']})")
    totals: dict[str, int] = {}
    for entry in TRAINED:
        totals[entry["path"]] = totals.get(entry["path"], 0) + entry["trained"]
    terminalreporter.write_line("total: " + ", ".join(f"{p}: {n} runs" for p, n in totals.items()))
    if getattr(config, "cache", None) is not None:
        config.cache.set("nclab/runs-trained-per-path", TRAINED)
