"""Run folders under concurrency, tampering and OS errors: never a lost, mixed or half-written result."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from nclab import _files, runs
from nclab import train as train_module
from nclab.train import CHECKPOINT, LOCK, OWNER, RESULT, RunLocked, RunResult, train

ROOT = Path(__file__).resolve().parents[1]


def _tiny(**overrides):
    return runs.config("quick", **{"epochs": 2, "width": 32, **overrides})


def _without_times(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if not k.startswith("time_")} for record in history]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


@pytest.fixture
def gated_training(monkeypatch):
    """Training that starts only once the gate opens, and a record of which threads trained."""
    gate, trained = threading.Event(), []
    real = train_module._train

    def gated(*args, **kwargs):
        trained.append(threading.current_thread().name)
        assert gate.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "_train", gated)
    return gate, trained


def _in_thread(name: str, function, *args, **kwargs) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def target():
        try:
            out["result"] = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread, out


# One process per run folder -----------------------------------------------------------------------

def test_a_held_run_folder_fails_at_once_naming_its_holder(tmp_path):
    with train_module._run_lock(tmp_path, wait=True, show=False):
        with pytest.raises(RunLocked, match=f"is being trained by process {os.getpid()} on "):
            train(_tiny(), run_dir=tmp_path, wait=False, progress=False)
        assert not (tmp_path / CHECKPOINT).exists()
    assert not (tmp_path / OWNER).exists()
    train(_tiny(), run_dir=tmp_path, wait=False, progress=False)


def test_a_second_caller_waits_for_the_first_and_gets_its_result(tmp_path, gated_training, capsys, monkeypatch):
    monkeypatch.delenv("NCLAB_PROGRESS", raising=False)  # the waiting note is shown with progress on
    gate, trained = gated_training
    first, out = _in_thread("first", train, _tiny(), run_dir=tmp_path, progress=False)
    _wait_for(tmp_path / OWNER)  # the first thread holds the folder
    threading.Timer(0.5, gate.set).start()
    start = time.monotonic()
    second = train(_tiny(), run_dir=tmp_path, progress=True)
    first.join()
    assert time.monotonic() - start >= 0.4, "the second caller should have waited"
    assert "error" not in out and trained == ["first"]
    assert second.history == out["result"].history
    assert "is being trained by process" in capsys.readouterr().err


def test_two_configs_given_one_run_folder_never_mix(tmp_path, gated_training):
    gate, trained = gated_training
    first, out = _in_thread("first", train, _tiny(), run_dir=tmp_path, progress=False)
    _wait_for(tmp_path / OWNER)
    with pytest.raises(RunLocked):
        train(_tiny(delta=0.2), run_dir=tmp_path, wait=False, progress=False)
    threading.Timer(0.3, gate.set).start()
    with pytest.raises(ValueError, match=r"result.json belongs to a different run \(delta=0.0 there, 0.2 here\)"):
        train(_tiny(delta=0.2), run_dir=tmp_path, progress=False)
    first.join()
    assert trained == ["first"]
    assert RunResult.load(tmp_path, config=_tiny()).history == out["result"].history


def test_a_cache_caller_that_waited_reads_the_finished_result(cache, gated_training):
    gate, trained = gated_training
    folder = runs.run_dir(_tiny())
    first, out = _in_thread("first", runs.get, _tiny(), progress=False)
    _wait_for(folder / OWNER)
    threading.Timer(0.3, gate.set).start()
    second = runs.get(_tiny(), progress=False)
    first.join()
    assert trained == ["first"] and second.history == out["result"].history


_CHILD = """
import json
import nclab.train as t
from nclab import _files, runs

trained = []
real = t._train


def counting(*args, **kwargs):
    trained.append(1)
    return real(*args, **kwargs)


t._train = counting
result = runs.get(runs.config("quick", epochs={epochs}, width=64), progress=False)
history = [{{k: v for k, v in r.items() if not k.startswith("time_")}} for r in result.history]
print(json.dumps({{"trained": len(trained), "history": history}}))
"""


@pytest.mark.slow
def test_two_processes_on_one_config_train_it_once_and_the_checkpoint_stays_readable(cache):
    config = runs.config("quick", epochs=12, width=64)
    checkpoint = runs.run_dir(config) / CHECKPOINT
    reads, failures, stop = [0], [], threading.Event()

    def reader():
        while not stop.is_set():
            if checkpoint.exists():
                try:
                    torch.load(checkpoint, weights_only=True)
                    reads[0] += 1
                except Exception as exc:  # noqa: BLE001 - every failed read is recorded
                    failures.append(repr(exc))
            time.sleep(0.002)

    polling = threading.Thread(target=reader)
    polling.start()
    env = {**os.environ, "NCLAB_PROGRESS": "0"}
    try:
        children = [subprocess.Popen([sys.executable, "-c", _CHILD.format(epochs=config.epochs)], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        done = [child.communicate(timeout=300) for child in children]
    finally:
        stop.set()
        polling.join()
    assert [child.returncode for child in children] == [0, 0], [err for _, err in done]
    outputs = [json.loads(out.strip().splitlines()[-1]) for out, _ in done]
    assert sum(o["trained"] for o in outputs) == 1
    reference = _without_times(train(config, progress=False).history)
    assert outputs[0]["history"] == outputs[1]["history"] == json.loads(json.dumps(reference))
    assert failures == [] and reads[0] > 0
    # No temporary or owner file is left behind.
    assert {p.name for p in checkpoint.parent.iterdir()} == {CHECKPOINT, RESULT, LOCK}


# Writes that fail ---------------------------------------------------------------------------------

class _FullDisk:
    """A file whose writes fail with ENOSPC once ``room`` bytes are written, as on a full disk."""

    def __init__(self, file, room: int):
        self.file, self.room = file, room

    def write(self, data) -> int:
        data = bytes(data)
        self.file.write(data[: self.room])
        if len(data) > self.room:
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return len(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def _fill_disk_at(monkeypatch, name: str, nth: int, room: int = 1000) -> None:
    """Make the ``nth`` write of a temporary file for ``name`` (by _write_atomically) run out of space."""
    names, count = {}, [0]
    real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen

    def mkstemp(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        names[fd] = Path(path).name
        return fd, path

    def fdopen(fd, *args, **kwargs):
        file = real_fdopen(fd, *args, **kwargs)
        if names.pop(fd, "").startswith(f".{name}."):
            count[0] += 1
            if count[0] == nth:
                return _FullDisk(file, room)
        return file

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "fdopen", fdopen)


@pytest.mark.parametrize("where", ["torch.save", "file write"])
def test_a_full_disk_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, where):
    config = _tiny(epochs=3)
    if where == "torch.save":
        real_save, calls = torch.save, [0]

        def save(obj, file, *args, **kwargs):
            calls[0] += 1
            if calls[0] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_save(obj, file, *args, **kwargs)

        monkeypatch.setattr(torch, "save", save)
    else:
        _fill_disk_at(monkeypatch, CHECKPOINT, nth=2)
    with pytest.raises(OSError) as info:
        train(config, run_dir=tmp_path, progress=False)
    assert info.value.errno == errno.ENOSPC
    if where == "file write":
        assert str(tmp_path / CHECKPOINT) in str(info.value)
    monkeypatch.undo()
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["epoch"] == 1
    assert {p.name for p in tmp_path.iterdir()} == {LOCK, CHECKPOINT}  # no temporary file, no result
    resumed = train(config, run_dir=tmp_path, progress=False)
    assert _without_times(resumed.history) == _without_times(train(config, progress=False).history)


def test_a_failed_result_write_keeps_the_last_good_file(tmp_path, monkeypatch):
    result = train(_tiny(), run_dir=tmp_path, progress=False)
    before = (tmp_path / RESULT).read_bytes()
    _fill_disk_at(monkeypatch, RESULT, nth=1)
    with pytest.raises(OSError, match=f"No space left on device: '{tmp_path / RESULT}'"):
        result.save(tmp_path / RESULT)
    monkeypatch.undo()

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        result.save(tmp_path / RESULT)
    monkeypatch.undo()
    assert (tmp_path / RESULT).read_bytes() == before
    assert {p.name for p in tmp_path.iterdir()} == {LOCK, CHECKPOINT, RESULT}


def test_result_json_is_fsynced_before_its_rename(tmp_path, monkeypatch):
    result = train(_tiny(), progress=False)
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", stat.S_ISREG(os.fstat(fd).st_mode)))
        real_fsync(fd)

    def replace(source, target):
        events.append(("replace", Path(target).name))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    result.save(tmp_path / RESULT)
    assert events.index(("fsync", True)) < events.index(("replace", RESULT))
    assert (tmp_path / RESULT).stat().st_mode & 0o777 == 0o666 & ~_files._UMASK


_TMPFS_SCRIPT = """
mount -t tmpfs -o size={size}k tmpfs {mount} || exit 99
"{python}" -m nclab run --profile quick --epochs 3 --width 32 --no-progress --run-dir {mount}/run
echo "rc=$?"
"{python}" -c "import torch; print('epoch', torch.load('{mount}/run/checkpoint.pt', weights_only=True)['epoch'])"
ls -A {mount}/run
"""


@pytest.mark.slow
def test_a_real_full_disk_keeps_the_last_good_checkpoint(tmp_path):
    """On a tmpfs with room for one checkpoint but not for its replacement beside it."""
    if shutil.which("unshare") is None:  # util-linux, on every Debian: missing it under CI is a failure
        if os.environ.get("CI"):
            pytest.fail("unshare (util-linux) is missing")
        pytest.skip("needs unshare (util-linux), to mount a small tmpfs")
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("this kernel or sandbox refuses user and mount namespaces, needed to mount a small tmpfs")
    train(runs.config("quick", epochs=1, width=32), run_dir=tmp_path / "probe", progress=False)
    pages = -(-(tmp_path / "probe" / CHECKPOINT).stat().st_size // 4096)
    mount = tmp_path / "mnt"
    mount.mkdir()
    script = _TMPFS_SCRIPT.format(size=4 * (pages * 3 // 2 + 2), mount=mount, python=sys.executable)
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "NCLAB_PROGRESS": "0"}, timeout=300)
    if "rc=" not in done.stdout:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert "rc=1" in done.stdout and "epoch 1" in done.stdout, done.stdout + done.stderr
    assert done.stderr.strip() == f"error: No space left on device: {mount}/run/checkpoint.pt"
    assert done.stdout.split()[-2:] == [".lock", "checkpoint.pt"]


# Whatever is read back is checked against what was asked for -------------------------------------

def test_a_result_copied_into_another_configs_cache_folder_is_refused(cache):
    runs.get(_tiny(delta=0.1), progress=False)
    target = runs.run_dir(_tiny(delta=0.0))
    target.mkdir(parents=True)
    shutil.copy(runs.run_dir(_tiny(delta=0.1)) / RESULT, target / RESULT)
    with pytest.raises(ValueError, match=r"belongs to a different run \(delta=0.1 there, 0.0 here\)"):
        runs.get(_tiny(delta=0.0), progress=False)
    named = r"holds another run than its cache folder is named for \(delta=0.1 in the file, 0 in the folder name\)"
    with pytest.raises(ValueError, match=named):
        runs.sweep([_tiny(delta=0.0)], progress=False, workers=1)
    with pytest.raises(ValueError, match=named):
        runs.load_results(cache)
    # A config that differs only in a field outside the folder name is found out by the key.
    shutil.rmtree(target)
    other = runs.run_dir(_tiny(delta=0.1, epochs=3))
    other.mkdir()
    shutil.copy(runs.run_dir(_tiny(delta=0.1)) / RESULT, other / RESULT)
    with pytest.raises(ValueError, match=r"belongs to a different run \(epochs=2 there, 3 here\)"):
        runs.get(_tiny(delta=0.1, epochs=3), progress=False)
    with pytest.raises(ValueError, match="config key [0-9a-f]{12} in the file"):
        RunResult.load(other)


def test_outputs_checks_the_checkpoint_against_its_result(cache):
    a, b = runs.get(_tiny(), progress=False), runs.get(_tiny(seed=1), progress=False)
    assert runs.outputs(a, "test").logits.shape[1] == 10
    # Where a run is computed (device, threads) is not which run it is: a GPU run opens on a CPU.
    elsewhere = dataclasses.replace(a, config=dataclasses.replace(a.config, threads=4))
    assert runs.outputs(elsewhere, "test").logits.shape[1] == 10
    own = (a.run_dir / CHECKPOINT).read_bytes()
    shutil.copy(b.run_dir / CHECKPOINT, a.run_dir / CHECKPOINT)
    with pytest.raises(ValueError, match=r"checkpoint.pt belongs to a different run \(seed=1 there, 0 here\)"):
        runs.outputs(a)
    state = torch.load(b.run_dir / CHECKPOINT, weights_only=True)
    state["config"] = a.config.to_dict()
    state["epoch"] = 1
    torch.save(state, a.run_dir / CHECKPOINT)
    with pytest.raises(ValueError, match="holds epoch 1, not the last epoch 2 of its result"):
        runs.outputs(a)
    (a.run_dir / CHECKPOINT).write_bytes(own)
    state = torch.load(a.run_dir / CHECKPOINT, weights_only=True)
    state["model"]["classifier.weight"] = torch.zeros(10, 7)
    torch.save(state, a.run_dir / CHECKPOINT)
    with pytest.raises(ValueError, match="does not fit the network of its config .*size mismatch"):
        runs.outputs(a)
    # The same checkpoint met when resuming an unfinished run.
    (a.run_dir / RESULT).unlink()
    state["epoch"] = 1
    torch.save(state, a.run_dir / CHECKPOINT)
    with pytest.raises(ValueError, match="does not fit the network of its config"):
        train(a.config, run_dir=a.run_dir, progress=False)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("finished") / "run"
    train(_tiny(), run_dir=folder, progress=False)
    return folder


@pytest.mark.parametrize("tamper, problem", [
    (lambda h: [], "its history is empty"),
    (lambda h: h[:-1], "its history ends at epoch 1, not at the last epoch 2"),
    (lambda h: [h[0], {k: v for k, v in h[1].items() if k != "nc1"}], "record 1 of its history lacks nc1"),
    (lambda h: [h[0], {**h[1], "test_error": "low"}], "record 1 of its history has non-numbers in test_error"),
    (lambda h: [h[1], h[0]], "record 1 of its history has epoch 1 after epoch 2"),
])
def test_a_tampered_history_is_refused(finished_run, tmp_path, tamper, problem):
    folder = tmp_path / "run"
    shutil.copytree(finished_run, folder)
    raw = json.loads((folder / RESULT).read_text())
    raw["history"] = tamper(raw["history"])
    (folder / RESULT).write_text(json.dumps(raw))
    message = f"{folder / RESULT} is not a finished nclab run result ({problem}); delete it"
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunResult.load(folder)
    with pytest.raises(ValueError, match="not a finished nclab run result"):  # nor is it trained over
        train(_tiny(), run_dir=folder, progress=False)


def test_a_fresh_start_replaces_the_result_of_its_own_config_only(tmp_path, monkeypatch):
    first = train(_tiny(), run_dir=tmp_path, progress=False)

    def diverge(*args, **kwargs):
        raise FloatingPointError("the network's outputs are not finite")

    monkeypatch.setattr(train_module, "measure", diverge)
    with pytest.raises(FloatingPointError, match="training diverged in epoch 1"):
        train(_tiny(), run_dir=tmp_path, resume=False, progress=False)
    # The old result went first: it never stands beside the checkpoint of another training.
    assert not (tmp_path / RESULT).exists()
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["epoch"] == 2
    monkeypatch.undo()
    again = train(_tiny(), run_dir=tmp_path, resume=False, progress=False)
    assert _without_times(again.history) == _without_times(first.history)


def test_a_finished_result_is_read_without_taking_the_lock(tmp_path):
    # So a finished run in a read-only folder, or one whose lock is held, can still be read.
    finished = train(_tiny(), run_dir=tmp_path, progress=False)
    with train_module._run_lock(tmp_path, wait=True, show=False):
        again = train(_tiny(), run_dir=tmp_path, wait=False, progress=False)
    assert again.history == RunResult.load(tmp_path).history
    assert _without_times(again.history) == _without_times(finished.history)
    with pytest.raises(ValueError, match="belongs to a different run"):
        train(_tiny(delta=0.3), run_dir=tmp_path, wait=False, progress=False)
