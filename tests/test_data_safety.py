"""nclab writes only where it may: the figure folders of report and sweep, and run folders.

Each test puts a file of the user's where nclab would write (a file of the same name, a symbolic
link out of the folder, a file in the folder nclab did not write) and checks that the command
refuses in one line naming it, before any work, and leaves the file as it was.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from nclab import runs
from nclab.__main__ import main
from nclab.plots import _figure_folder
from nclab.plots._figure_folder import LISTING, check_files, check_folder, replace_files
from nclab.plots.report import draw_report
from nclab.train import train

FIGURES = ["nc_plane.png", "training_curves.png"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One finished tiny run (about two seconds)."""
    folder = tmp_path_factory.mktemp("runs") / "ce"
    train(runs.config("quick", epochs=1, width=16), run_dir=folder, progress=False)
    return folder


def refused(argv, capsys, status=2) -> str:
    """Run ``python -m nclab ARGV``; check that it fails with ``status`` and one line ``error: ...``; return it."""
    assert main([str(arg) for arg in argv]) == status
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


# report --out ----------------------------------------------------------------------------------

def test_report_never_writes_through_a_symbolic_link(run_dir, tmp_path, capsys):
    precious = tmp_path / "precious.txt"
    precious.write_text("the user's data")
    out = tmp_path / "figs"
    out.mkdir()
    os.symlink("../precious.txt", out / "nc_plane.png")
    (out / LISTING).write_text('{"schema": "nclab-figures-1", "files": {}}')
    err = refused(["report", run_dir, "--out", out], capsys)
    assert str(out / "nc_plane.png") in err and "symbolic link" in err
    assert precious.read_text() == "the user's data"
    assert sorted(p.name for p in out.iterdir()) == [LISTING, "nc_plane.png"]   # nothing drawn before refusing
    linked = tmp_path / "linked"
    os.symlink(tmp_path / "elsewhere", linked)
    assert "symbolic link" in refused(["report", run_dir, "--out", linked], capsys)
    assert not (tmp_path / "elsewhere").exists()


def test_report_never_overwrites_a_file_it_did_not_write(run_dir, tmp_path, capsys):
    out = tmp_path / "figs"
    out.mkdir()
    (out / "training_curves.png").write_bytes(b"the user's own figure")
    err = refused(["report", run_dir, "--out", out], capsys)
    assert str(out) in err and "holds no figures nclab drew (training_curves.png)" in err
    assert (out / "training_curves.png").read_bytes() == b"the user's own figure"
    assert [p.name for p in out.iterdir()] == ["training_curves.png"]


def test_report_replaces_only_the_unchanged_figures_it_drew(run_dir, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    (out / "notes.txt").write_text("kept")                       # the user's file beside the figures
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([LISTING, *FIGURES, "notes.txt"])
    assert (out / "notes.txt").read_text() == "kept"
    (out / "nc_plane.png").write_bytes(b"edited by the user")
    before = (out / "training_curves.png").read_bytes()
    err = refused(["report", run_dir, "--out", out], capsys)
    assert f"{out / 'nc_plane.png'} is not a figure nclab drew there, or was changed since" in err
    assert (out / "nc_plane.png").read_bytes() == b"edited by the user"
    assert (out / "training_curves.png").read_bytes() == before


def test_a_figure_interrupted_between_its_two_writes_is_still_nclabs(run_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "figs"
    results = [runs.load_results(run_dir)[0]]
    draw_report(results, out, echo=lambda line: None)
    real = _figure_folder._write_atomically

    def killed_at_the_figure(path, payload, **kwargs):
        if path.suffix == ".png":
            raise KeyboardInterrupt
        real(path, payload, **kwargs)

    monkeypatch.setattr(_figure_folder, "_write_atomically", killed_at_the_figure)
    with pytest.raises(KeyboardInterrupt):
        draw_report(results, out, echo=lambda line: None)
    monkeypatch.undo()
    assert [str(p) for p in draw_report(results, out, echo=lambda line: None)] == [str(out / f) for f in
                                                                                   reversed(FIGURES)]


def test_groups_whose_settings_print_alike_are_drawn_into_distinct_folders(run_dir, tmp_path):
    run = runs.load_results(run_dir)[0]
    # lr 0.1 and 0.1000001 both print as 0.1 (6 significant digits): one folder would take both.
    results = [dataclasses.replace(run, config=dataclasses.replace(run.config, lr=lr)) for lr in (0.1, 0.1000001)]
    out = tmp_path / "figs"
    written = draw_report(results, out, echo=lambda line: None)
    assert len(written) == 4 and len(set(written)) == 4
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == 2 and all(name.startswith("lr0.1-") for name in folders), folders
    assert all(sorted(p.name for p in (out / name).iterdir()) == sorted(FIGURES) for name in folders)


def test_a_subfolder_swapped_for_a_link_during_the_write_gets_no_figure(tmp_path, monkeypatch):
    out = tmp_path / "figs"
    user = tmp_path / "user"
    user.mkdir()
    (user / "nc_plane.png").write_bytes(b"the user's own figure")
    real = _figure_folder._write_atomically

    def swapped_after_the_check(path, *args, **kwargs):
        if path.suffix == ".png":   # the subfolder, checked and created, becomes a link to the user's folder
            (out / "group").rmdir()
            (out / "group").symlink_to(user, target_is_directory=True)
        real(path, *args, **kwargs)

    monkeypatch.setattr(_figure_folder, "_write_atomically", swapped_after_the_check)
    check_folder(out)
    with pytest.raises(ValueError, match=f"{out / 'group'} is a symbolic link or a file"):
        replace_files(out, {"group/nc_plane.png": b"a figure"})
    assert sorted(p.name for p in user.iterdir()) == ["nc_plane.png"]
    assert (user / "nc_plane.png").read_bytes() == b"the user's own figure"


def test_a_linked_subfolder_of_the_figures_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "group")
    with pytest.raises(ValueError, match=f"{tmp_path / 'group'} is a symbolic link or a file"):
        check_files(tmp_path, ["group/nc_plane.png"])


def test_sweep_refuses_its_figure_folder_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "figs"
    out.mkdir()
    (out / "delta_summary.png").write_bytes(b"mine")
    err = refused(["sweep", "--profile", "quick", "--epochs", "1", "--width", "16", "--deltas", "0",
                   "--seeds", "0", "--no-progress", "--out", out], capsys)
    assert f"--out {out} is not empty" in err
    assert not list((tmp_path / "cache").rglob("result.json"))
    assert (out / "delta_summary.png").read_bytes() == b"mine"


# run --run-dir ---------------------------------------------------------------------------------

_TINY = ["--profile", "quick", "--epochs", "2", "--width", "16", "--log-every", "1", "--no-progress"]


def _tree(folder: Path) -> dict[str, bytes | str]:
    return {p.name: (os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "folder")
            for p in sorted(folder.iterdir())}


def _notes(folder: Path) -> None:
    (folder / "notes.txt").write_text("the user's notes")


def _owner(folder: Path) -> None:
    (folder / ".lock-owner").write_text("the user's own file of that name")


def _lock(folder: Path) -> None:
    (folder / ".lock").write_text("not an empty lock file")


def _linked_checkpoint(folder: Path) -> None:
    (folder.parent / "precious.pt").write_bytes(b"elsewhere")
    os.symlink(folder.parent / "precious.pt", folder / "checkpoint.pt")


def _subfolder(folder: Path) -> None:
    (folder / "data").mkdir()


@pytest.mark.parametrize("put", [_notes, _owner, _lock, _linked_checkpoint, _subfolder])
def test_run_refuses_a_folder_with_files_nclab_did_not_write_before_creating_anything(tmp_path, capsys, put):
    folder = tmp_path / "DIR"
    folder.mkdir()
    put(folder)
    before, around = _tree(folder), _tree(tmp_path)
    err = refused(["run", *_TINY, "--run-dir", folder], capsys)
    name = {_notes: "notes.txt", _owner: ".lock-owner", _lock: ".lock", _linked_checkpoint: "checkpoint.pt",
            _subfolder: "data"}[put]
    assert err.startswith(f"error: {folder} holds files nclab did not write ({name})"), err
    assert _tree(folder) == before and _tree(tmp_path) == around     # no .lock, no checkpoint, no probe
    with pytest.raises(ValueError, match="holds files nclab did not write"):
        train(runs.config("quick", epochs=2, width=16), run_dir=folder, progress=False)
    assert _tree(folder) == before


def test_an_interrupted_run_in_its_own_folder_resumes_from_its_finished_epochs(tmp_path, capsys, monkeypatch):
    from nclab import train as train_module
    from run_tools import train_until

    folder = tmp_path / "DIR"
    train_until(runs.config("quick", epochs=2, width=16, log_every=1), folder, epoch=1)
    # What a killed process leaves: its lock owner record, a temporary file of a write cut short.
    (folder / ".lock-owner").write_text('{"pid": 1, "host": "h", "since": "2024-01-01T00:00:00+00:00"}')
    (folder / ".checkpoint.pt.abc_1234.tmp").write_bytes(b"half a checkpoint")
    saved = []
    real_save = train_module._save
    monkeypatch.setattr(train_module, "_save", lambda path, cfg, epoch, *a: saved.append(epoch) or
                        real_save(path, cfg, epoch, *a))
    assert main(["run", *_TINY, "--run-dir", str(folder)]) == 0
    assert saved == [2]                                             # epoch 1 was kept, not trained again
    assert "final train error" in capsys.readouterr().out


def test_the_run_folder_names_are_those_nclab_writes():
    from nclab import _files
    from nclab.train import CHECKPOINT, LOCK, OWNER, RESULT

    assert set(_files.RUN_FILES) == {CHECKPOINT, RESULT, LOCK, OWNER}


def test_sweep_refuses_an_unwritable_figure_folder_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "notes").write_text("a file, not a folder")
    out = tmp_path / "notes" / "figs"
    err = refused(["sweep", "--profile", "quick", "--epochs", "1", "--width", "16", "--deltas", "0",
                   "--seeds", "0", "--no-progress", "--out", out], capsys, status=1)
    assert err == f"error: cannot create or write the folder ({os.strerror(20)}): {out}\n"
    assert not list((tmp_path / "cache").rglob("result.json"))


def test_report_of_a_deeply_nested_result_is_one_line_naming_it(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "result.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    err = refused(["report", tmp_path / "run", "--out", tmp_path / "figs"], capsys)
    assert err.startswith(f"error: {tmp_path / 'run' / 'result.json'} is not an nclab run result (its JSON is "
                          "nested too deeply)")
