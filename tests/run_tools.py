"""Helpers for tests of interrupted training runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from nclab import train as train_module


class Stopped(Exception):
    """Raised right after the checkpoint of the chosen epoch is saved."""


def train_until(config, run_dir: Path, epoch: int) -> None:
    """Train ``config`` into ``run_dir`` and stop right after epoch ``epoch``'s checkpoint is written."""
    real_save = train_module._save

    def save_then_stop(path, cfg, done, *args):
        real_save(path, cfg, done, *args)
        if done == epoch:
            raise Stopped

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_module, "_save", save_then_stop)
        with pytest.raises(Stopped):
            train_module.train(config, run_dir=run_dir, progress=False)
