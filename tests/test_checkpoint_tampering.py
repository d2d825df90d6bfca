"""A damaged or tampered checkpoint stops a resume with one clear error, before any step or result.

One tiny run is trained once; each case writes its checkpoint, cut back to epoch 2 and then
changed in one way, into a fresh run folder and asks to resume it. The untouched cut-back
checkpoint resumes and finishes, so every failure below is the change's doing.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from nclab import runs
from nclab.__main__ import main
from nclab.train import CHECKPOINT, RESULT, RunResult, train

_EPOCHS, _RESUMED_AT = 4, 2


def _cfg():
    return runs.config("quick", epochs=_EPOCHS, width=8, log_every=1)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict:
    """The state of a finished run's checkpoint."""
    run_dir = tmp_path_factory.mktemp("finished")
    train(_cfg(), run_dir=run_dir, progress=False)
    return torch.load(run_dir / CHECKPOINT, weights_only=True)


def _write(finished: dict, run_dir: Path, tamper) -> Path:
    """Write ``finished`` cut back to epoch 2 and changed by ``tamper`` as ``run_dir``'s checkpoint."""
    state = copy.deepcopy(finished)
    state["epoch"], state["history"] = _RESUMED_AT, state["history"][:_RESUMED_AT]
    tamper(state)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(state, run_dir / CHECKPOINT)
    return run_dir / CHECKPOINT


def _set_record(i: int, **fields):
    return lambda state: state["history"][i].update(fields)


def _pop_field(name: str):
    return lambda state: [record.pop(name) for record in state["history"]]


def _set_buffer(value):
    def tamper(state):
        first = next(iter(state["optimizer"]["state"].values()))
        first["momentum_buffer"] = value(first["momentum_buffer"])
    return tamper


TAMPERINGS = {
    "record without nc1": _pop_field("nc1"),
    "record without an epoch": _pop_field("epoch"),
    "nc1 a string": _set_record(0, nc1="abc"),
    "test_error a bool": _set_record(1, test_error=True),
    "epoch a float": _set_record(1, epoch=2.0),
    "record with an unknown field": _set_record(0, accuracy=0.5),
    "record not a dict": lambda s: s["history"].__setitem__(0, [1, 2]),
    "history a string": lambda s: s.update(history="x"),
    "history empty": lambda s: s.update(history=[]),
    "epochs out of order": lambda s: s.update(history=s["history"][::-1]),
    "history behind the epoch": lambda s: s.update(history=s["history"][:1]),
    "history ahead of the epoch": lambda s: s.update(epoch=1),
    "elapsed a string": lambda s: s.update(elapsed="x"),
    "momentum buffer of a wrong shape": _set_buffer(lambda b: b[:1]),
    "momentum buffer transposed": _set_buffer(lambda b: b.T.contiguous() if b.dim() == 2 else b[:0]),
    "momentum buffer a string": _set_buffer(lambda b: "abc"),
    "a parameter's state missing from its group": lambda s: s["optimizer"]["param_groups"][0]["params"].pop(),
    "optimizer momentum changed": lambda s: s["optimizer"]["param_groups"][0].update(momentum=0.5),
}


@pytest.fixture
def no_step(monkeypatch):
    """Fail the test if an optimizer step is taken (a damaged checkpoint must stop the run first)."""
    monkeypatch.setattr(torch.optim.SGD, "step", lambda *a, **k: pytest.fail("an optimizer step was taken"))


def test_an_untouched_checkpoint_resumes(finished, tmp_path):
    _write(finished, tmp_path, lambda state: None)
    result = train(_cfg(), run_dir=tmp_path, progress=False)
    assert [r["epoch"] for r in result.history] == list(range(1, _EPOCHS + 1))
    assert RunResult.load(tmp_path / RESULT, config=_cfg()).history == result.history


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_a_tampered_checkpoint_stops_the_resume(finished, tmp_path, tamper, no_step):
    path = _write(finished, tmp_path, tamper)
    written = path.read_bytes()
    with pytest.raises(ValueError, match="checkpoint.pt") as info:
        train(_cfg(), run_dir=tmp_path, progress=False)
    message = str(info.value)
    assert str(path) in message and "delete it to restart the run" in message, message
    assert "\n" not in message
    assert not (tmp_path / RESULT).exists()
    assert path.read_bytes() == written  # left as it was, for the user to look at or delete


def test_the_command_line_reports_a_tampered_checkpoint_in_one_line(finished, tmp_path, capsys, no_step):
    path = _write(finished, tmp_path, TAMPERINGS["record without nc1"])
    code = main(["run", "--profile", "quick", "--epochs", str(_EPOCHS), "--width", "8", "--log-every", "1",
                 "--run-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and str(path) in err and "delete it" in err, err
    assert not (tmp_path / RESULT).exists()
