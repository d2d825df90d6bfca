"""Bundles under hostile or careless use: nclab writes only what it owns and trusts no manifest.

Each test is one case that used to lose or leak data: ``bundle --out`` over foreign files, a kill
in the middle of a swap, a manifest (local or served by a mirror over ``file://`` or HTTP on
127.0.0.1) that lists paths outside the bundle, misses files or repeats runs.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nclab import __main__ as cli
from nclab import _bundle_folder as folders
from nclab import bundle, runs


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Two tiny finished runs (CE and δ = 0.1, seed 0) and a bundle of them: (results, bundle folder)."""
    base = tmp_path_factory.mktemp("safety")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NCLAB_CACHE", str(base / "cache"))
        configs = runs.grid("quick", deltas=(0.0, 0.1), seeds=(0,), epochs=2, width=8, log_every=1)
        results = runs.sweep(configs, progress=False, workers=1)
        folder = bundle.export(results, base / "results" / "tiny", name="tiny", command="test", wall_seconds=1.0,
                               workers=1, description="digits, mlp")
    return results, folder


def _export(results, folder):
    return bundle.export(results, folder, name="tiny", command="test", wall_seconds=1.0, workers=1,
                         description="digits, mlp")


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# Writing: only into folders nclab owns ----------------------------------------------------------

def test_export_refuses_a_folder_with_foreign_files_and_leaves_them_intact(made, tmp_path):
    results, _ = made
    target = tmp_path / "thesis"
    (target / "sub").mkdir(parents=True)
    (target / "thesis.tex").write_text("years of work")
    (target / "sub" / "data.csv").write_text("1,2")
    before = _tree(target)
    with pytest.raises(ValueError, match=r"not empty and holds no bundle \(sub, thesis.tex\)"):
        _export(results, target)
    assert _tree(target) == before and not list(tmp_path.glob(".thesis.*"))


def test_export_refuses_a_bundle_folder_that_also_holds_a_foreign_file(made, tmp_path):
    results, folder = made
    target = tmp_path / "tiny"
    shutil.copytree(folder, target)
    (target / "README.md").write_text("my notes")
    with pytest.raises(ValueError, match=r"files that are not part of its bundle \(README.md: not in its manifest"):
        _export(results, target)
    assert (target / "README.md").read_text() == "my notes"


def test_the_command_refuses_out_over_foreign_files_before_training(made, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "other-run").mkdir(parents=True)
    (tmp_path / "cache" / "other-run" / "result.json").write_text("{}")
    work = tmp_path / "D"
    (work / "sub").mkdir(parents=True)
    (work / "notes.md").write_text("notes")
    (work / "sub" / "data.csv").write_text("1,2")
    monkeypatch.chdir(work)
    args = ["bundle", "--profile", "quick", "--deltas", "0", "--seeds", "0", "--epochs", "1", "--name", "x"]
    for out in (".", str(work), str(tmp_path / "cache"), "sub"):
        before = _tree(tmp_path)
        assert cli.main(args + ["--out", out]) == 2, out
        err = capsys.readouterr().err
        assert err.startswith("error: --out ") and err.count("\n") == 1, err
        assert _tree(tmp_path) == before, out  # nothing written, nothing removed, nothing trained


@pytest.mark.parametrize("edit", ["a hand-edited result", "a link in place of a listed file"])
def test_a_listed_file_changed_since_the_export_is_foreign(made, tmp_path, capsys, edit):
    results, folder = made
    target = tmp_path / "tiny"
    shutil.copytree(folder, target)
    manifest = json.loads((target / bundle.MANIFEST).read_text())
    listed = f"runs/{manifest['runs'][0]['folder']}/result.json"
    if edit == "a hand-edited result":
        (target / listed).write_text((target / listed).read_text().replace('"seed": 0', '"seed": 0 '))
    else:
        (tmp_path / "mine.json").write_bytes((target / listed).read_bytes())
        (target / listed).unlink()
        (target / listed).symlink_to(tmp_path / "mine.json")
    before = _tree(target)
    with pytest.raises(ValueError, match=rf"not part of its bundle \({listed}: not in its manifest, or changed since"):
        _export(results[:1], target)
    assert _tree(target) == before and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["tiny", *(["mine.json"] if edit != "a hand-edited result" else [])])
    args = ["bundle", "--profile", "quick", "--deltas", "0", "--seeds", "0", "--epochs", "1", "--name", "tiny",
            "--out", str(target)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {target} holds files") and listed in err and err.count("\n") == 1
    assert _tree(target) == before


def test_a_new_bundle_replaces_the_old_one_by_a_swap(made, tmp_path):
    results, folder = made
    target = tmp_path / "tiny"
    shutil.copytree(folder, target)
    manifest = json.loads((target / bundle.MANIFEST).read_text())
    _export(results[:1], target)   # the same name, one run fewer
    loaded = bundle._read(target, "tiny")
    assert len(loaded.results) == 1 and len(manifest["runs"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no leftover beside it
    assert not (target / "runs" / manifest["runs"][1]["folder"]).exists()  # the old run's files are gone


def _killed_between_the_two_renames(monkeypatch):
    """Make the swap of a bundle named "tiny" fall back to two renames, and be killed between them.

    Where the file system cannot exchange two folders, the old bundle is first renamed aside
    (".tiny.old-*") and the new one renamed into place; the interruption comes right after the first.
    Returns the real ``os.replace``.
    """
    monkeypatch.setattr(folders, "_exchange", lambda a, b: (_ for _ in ()).throw(OSError(22, "unsupported")))
    real_replace = os.replace

    def killed_after_first(src, dst):
        real_replace(src, dst)
        if Path(dst).name.startswith(".tiny.old-"):
            raise KeyboardInterrupt
    monkeypatch.setattr(folders.os, "replace", killed_after_first)
    return real_replace


def test_a_kill_during_the_swap_leaves_the_old_or_the_new_bundle_loadable(made, tmp_path, monkeypatch):
    results, folder = made
    target = tmp_path / "tiny"
    shutil.copytree(folder, target)
    old = _tree(target)
    # Where the file system cannot exchange two folders, a kill between the two renames leaves the
    # old bundle aside; the next reader puts it back.
    real_replace = _killed_between_the_two_renames(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        _export(results[:1], target)
    monkeypatch.setattr(folders.os, "replace", real_replace)
    assert not target.exists()
    monkeypatch.setenv("NCLAB_RESULTS", "")
    monkeypatch.chdir(tmp_path)
    folders._recover(target)
    assert _tree(target) == old and len(bundle._read(target, "tiny").results) == 2
    # A kill after the exchange, while the old bundle is removed: the new one is in place.
    monkeypatch.undo()
    monkeypatch.setattr(folders, "_remove_bundle", lambda folder: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        _export(results[:1], target)
    assert len(bundle._read(target, "tiny").results) == 1


def test_a_file_put_into_the_target_during_the_build_is_never_swapped_away(made, tmp_path, monkeypatch):
    results, folder = made
    target = tmp_path / "tiny"
    shutil.copytree(folder, target)
    before = _tree(target)
    real_outputs = bundle.outputs

    def the_user_writes_meanwhile(*args):
        (target / "notes.md").write_text("written during the build")
        return real_outputs(*args)

    monkeypatch.setattr(bundle, "outputs", the_user_writes_meanwhile)
    with pytest.raises(ValueError, match=r"not part of its bundle \(notes.md: not in its manifest"):
        _export(results[:1], target)
    assert _tree(target) == {**before, "notes.md": b"written during the build"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]      # no hidden folder left beside it


def test_a_file_put_into_the_target_at_the_swap_itself_is_kept_and_reported(made, tmp_path, monkeypatch):
    results, folder = made
    target = tmp_path / "tiny"
    shutil.copytree(folder, target)
    real_exchange = folders._exchange

    def the_user_writes_at_the_swap(a, b):
        (target / "notes.md").write_text("written at the swap")
        real_exchange(a, b)

    monkeypatch.setattr(folders, "_exchange", the_user_writes_at_the_swap)
    with pytest.warns(RuntimeWarning, match=r"\.tiny\.new-\w+ is kept: it holds files nclab did not write \(notes.md\)"):
        _export(results[:1], target)
    leftovers = list(tmp_path.glob(".tiny.new-*"))
    assert len(leftovers) == 1 and _tree(leftovers[0]) == {"notes.md": b"written at the swap"}
    assert len(bundle._read(target, "tiny").results) == 1


def test_the_command_reports_a_kept_folder_in_one_line(made, tmp_path, monkeypatch, capsys):
    results, folder = made
    target = tmp_path / "tiny"
    shutil.copytree(folder, target)
    monkeypatch.setenv("NCLAB_CACHE", str(results[0].run_dir.parent))   # the runs are found, not trained
    real_exchange = folders._exchange

    def the_user_writes_at_the_swap(a, b):
        (target / "notes.md").write_text("written at the swap")
        real_exchange(a, b)

    monkeypatch.setattr(folders, "_exchange", the_user_writes_at_the_swap)
    assert cli.main(["bundle", "--profile", "quick", "--deltas", "0", "0.1", "--seeds", "0", "--epochs", "2",
                     "--width", "8", "--log-every", "1", "--name", "tiny", "--out", str(target), "--no-progress"]) == 0
    warning = capsys.readouterr().err
    assert warning.startswith(f"warning: {tmp_path}/.tiny.new-") and warning.count("\n") == 1, warning
    assert "holds files nclab did not write (notes.md)" in warning


def test_a_complete_new_bundle_left_by_a_kill_between_the_two_renames_is_cleaned(made, tmp_path, monkeypatch):
    results, folder = made
    target = tmp_path / "tiny"
    shutil.copytree(folder, target)
    old = _tree(target)
    _killed_between_the_two_renames(monkeypatch)
    monkeypatch.setattr(folders, "_remove_build", lambda folder: None)   # a killed process cleans nothing up
    with pytest.raises(KeyboardInterrupt):
        _export(results[:1], target)
    monkeypatch.undo()
    assert len(list(tmp_path.glob(".tiny.new-*"))) == 1           # the new bundle, complete, never swapped in
    folders._recover(target)
    assert _tree(target) == old and sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]
    _export(results[:1], target)
    assert len(bundle._read(target, "tiny").results) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_a_killed_build_is_removed_but_a_file_put_into_it_is_kept(made, tmp_path):
    results, folder = made
    leftover = tmp_path / ".tiny.new-killed"
    shutil.copytree(folder, leftover)
    (leftover / ".nclab-partial").touch()
    (leftover / "tmpab_12cd").write_bytes(b"half a download")
    (leftover / "mine.txt").write_text("not nclab's")
    with pytest.warns(RuntimeWarning, match=r"\.tiny\.new-killed is kept: it holds files nclab did not write "
                                            r"\(mine.txt\)"):
        _export(results, tmp_path / "tiny")
    assert _tree(leftover) == {"mine.txt": b"not nclab's"}
    assert len(bundle._read(tmp_path / "tiny", "tiny").results) == 2


@pytest.mark.parametrize("kind", ["old", "new"])
def test_a_leftover_whose_subfolder_links_to_user_files_is_kept_and_they_are_not_removed(made, tmp_path, kind):
    results, folder = made
    target = tmp_path / "out"
    shutil.copytree(folder, target)
    # A leftover beside the target whose runs/ is a link to a user's folder holding files with the
    # very bytes (so the very SHA-256) its manifest lists.
    leftover = tmp_path / f".out.{kind}-abc"
    shutil.copytree(folder, leftover)
    user = tmp_path / "user"
    user.mkdir()
    shutil.move(leftover / "runs", user / "runs")
    (leftover / "runs").symlink_to(user / "runs", target_is_directory=True)
    mine = _tree(user)
    assert len(mine) == 4
    with pytest.warns(RuntimeWarning, match=rf"\.out\.{kind}-abc is kept: runs/\S+, a file it lists, lies behind a "
                                            r"symbolic link"):
        _export(results[:1], target)
    assert _tree(user) == mine
    assert (leftover / "runs").is_symlink() and (leftover / bundle.MANIFEST).is_file()
    assert len(bundle._read(target, "tiny").results) == 1


def test_a_refused_command_cleans_no_leftover_beside_its_target(made, tmp_path, capsys):
    results, folder = made
    target = tmp_path / "tiny"
    shutil.copytree(folder, target)
    leftover = tmp_path / ".tiny.old-abc"   # the old bundle of a swap cut short
    shutil.copytree(folder, leftover)
    before = _tree(leftover)
    assert cli.main(["bundle", "--profile", "quick", "--deltas", "7", "--seeds", "0", "--name", "tiny",
                     "--out", str(target), "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("error: delta must be in [0, 1)")
    assert _tree(leftover) == before


@pytest.mark.parametrize(("name", "other"), [("res[1]", "res1"), ("res*", "results"), ("re?", "res")])
def test_a_name_with_glob_characters_takes_over_no_other_folders_leftover(made, tmp_path, name, other):
    results, folder = made
    # Leftovers of another folder, whose names the glob .NAME.old-* (or .new-*) would match.
    theirs = [tmp_path / f".{other}.old-abc", tmp_path / f".{other}.new-abc"]
    for leftover in theirs:
        shutil.copytree(folder, leftover)
    before = [_tree(leftover) for leftover in theirs]
    _export(results[:1], tmp_path / name)      # the target is missing: an old bundle aside would be put back
    _export(results[:1], tmp_path / name)      # the target is a bundle: leftovers beside it would be removed
    assert [_tree(leftover) for leftover in theirs] == before
    assert len(bundle._read(tmp_path / name, "tiny").results) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, *(p.name for p in theirs)])


def test_a_second_export_to_the_folder_leaves_the_running_build_alone(made, tmp_path):
    fcntl = pytest.importorskip("fcntl", reason="builds are locked with flock, which Windows lacks")
    results, folder = made
    target = tmp_path / "tiny"
    running = tmp_path / ".tiny.new-running1"   # a build in progress: its partial marker held by its process
    shutil.copytree(folder, running)
    marker = os.open(running / ".nclab-partial", os.O_RDWR | os.O_CREAT)
    fcntl.flock(marker, fcntl.LOCK_EX)
    before = _tree(running)
    try:
        with pytest.raises(ValueError, match=rf"--out {target}: another export to this folder is running \(it builds "
                                             r"in \.tiny\.new-running1\)"):
            _export(results, target)
        assert _tree(running) == before and not target.exists()
    finally:
        os.close(marker)
    _export(results, target)   # the build was killed: its leftover goes, the export is made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


def test_an_interrupted_build_leaves_the_target_untouched_and_no_partial_folder(made, tmp_path, monkeypatch):
    results, folder = made
    target = tmp_path / "tiny"
    shutil.copytree(folder, target)
    before = _tree(target)
    monkeypatch.setattr(bundle.np, "savez_compressed", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OSError, match="No space"):
        _export(results, target)
    assert _tree(target) == before and sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "../x", "x" * 101])
def test_a_bad_bundle_name_is_refused_naming_it(made, tmp_path, name):
    results, _ = made
    with pytest.raises(ValueError, match="name must be letters"):
        bundle.export(results, tmp_path / "b", name=name, command="t", wall_seconds=1, workers=1, description="d")


@pytest.mark.parametrize("seconds", [float("nan"), -5.0, float("inf")])
def test_a_bad_wall_time_is_refused(made, tmp_path, seconds):
    results, _ = made
    with pytest.raises(ValueError, match="wall_seconds must be a finite number"):
        bundle.export(results, tmp_path / "b", name="b", command="t", wall_seconds=seconds, workers=1, description="d")


# Reading: the manifest is validated before any file is touched ----------------------------------

def _tampered(folder: Path, tmp_path: Path, change) -> Path:
    copy_ = tmp_path / "tiny"
    shutil.copytree(folder, copy_)
    manifest = json.loads((copy_ / bundle.MANIFEST).read_text())
    change(manifest)
    (copy_ / bundle.MANIFEST).write_text(json.dumps(manifest))
    return copy_


def _first_run(m):
    return m["runs"][0]["folder"]


CASES = {
    "no files": (lambda m: m.update(files={}), "does not list"),
    "a run not hashed": (lambda m: m["files"].pop(f"runs/{_first_run(m)}/result.json"), "does not list runs/"),
    "a run twice": (lambda m: m["runs"].append(dict(m["runs"][0])), "listed twice"),
    "deltas contradict": (lambda m: m.update(deltas=[0.0, 0.3]), "'deltas' or 'seeds' disagree"),
    "no runs": (lambda m: m.update(runs=[]), "'runs' is not a non-empty list"),
    "a parent path": (lambda m: m["files"].update({"../secret.txt": "0" * 64}), "not a relative path"),
    "an absolute path": (lambda m: m["files"].update({"/etc/hostname": "0" * 64}), "not a relative path"),
    "a run folder outside": (lambda m: m["runs"][0].update(folder="../../../elsewhere/RUN"), "not a plain folder"),
    "files as a list": (lambda m: m.update(files=[]), "'files' is not an object"),
    "delta as text": (lambda m: m["runs"][0].update(delta="0"), "delta must be a number"),
    "a bad hash": (lambda m: m["files"].update({"labels.npz": "abc"}), "no SHA-256"),
    "another schema": (lambda m: m.update(schema="x"), "schema is 'x'"),
    "not an object": (lambda m: m.clear(), "schema is None"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_tampered_manifest_is_refused_before_any_file_is_read(made, tmp_path, monkeypatch, case):
    _, folder = made
    change, message = CASES[case]
    copy_ = _tampered(folder, tmp_path, change)
    opened = []
    monkeypatch.setattr(bundle.pooch, "file_hash", lambda *a, **k: opened.append(a) or "")
    with pytest.raises(ValueError, match=message):
        bundle._read(copy_, "tiny")
    assert not opened


def test_a_file_that_is_a_link_out_of_the_bundle_is_refused(made, tmp_path):
    _, folder = made
    copy_ = tmp_path / "tiny"
    shutil.copytree(folder, copy_)
    (tmp_path / "secret.txt").write_bytes((copy_ / "labels.npz").read_bytes())
    (copy_ / "labels.npz").unlink()
    (copy_ / "labels.npz").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ValueError, match="leads outside the bundle folder"):
        bundle._read(copy_, "tiny")


def _copy_with_first_run_file(folder, tmp_path, name):
    """A copy of the bundle ``folder`` as tmp_path/tiny, its manifest, and the key of ``name`` in its first run."""
    copy_ = tmp_path / "tiny"
    shutil.copytree(folder, copy_)
    manifest = json.loads((copy_ / bundle.MANIFEST).read_text())
    return copy_, manifest, f"runs/{manifest['runs'][0]['folder']}/{name}"


def test_logits_with_the_wrong_number_of_rows_are_refused_naming_the_file(made, tmp_path):
    _, folder = made
    copy_, manifest, key = _copy_with_first_run_file(folder, tmp_path, bundle.LOGITS)
    with np.load(copy_ / key) as data:
        short = {k: data[k][:-1] for k in data.files}
    np.savez_compressed(copy_ / key, **short)
    manifest["files"][key] = hashlib.sha256((copy_ / key).read_bytes()).hexdigest()
    (copy_ / bundle.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"logits.npz: the val logits have shape"):
        bundle._read(copy_, "tiny")


def test_a_run_whose_config_disagrees_with_its_entry_is_refused(made, tmp_path):
    _, folder = made
    copy_ = _tampered(folder, tmp_path, lambda m: m["runs"][0].update(seed=7) or m.update(seeds=[0, 7]))
    with pytest.raises(ValueError, match="the manifest lists δ=0, seed 7"):
        bundle._read(copy_, "tiny")


# Fetching: a hostile mirror writes nothing outside the cache -------------------------------------

def _mirror(folder: Path, root: Path, change=None, garbage: dict | None = None) -> Path:
    """A copy of the bundle under ``root/tiny`` with its manifest changed and files replaced by garbage."""
    served = root / "tiny"
    shutil.copytree(folder, served)
    if change is not None:
        manifest = json.loads((served / bundle.MANIFEST).read_text())
        change(manifest)
        (served / bundle.MANIFEST).write_text(json.dumps(manifest))
    for name, content in (garbage or {}).items():
        (served / name).write_bytes(content)
    return root


def _traversal(m):
    m["files"]["../../../X"] = hashlib.sha256(b"owned").hexdigest()


def _absolute(target: Path):
    def change(m):
        m["files"][str(target)] = hashlib.sha256(b"owned").hexdigest()
    return change


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path/served``; yields (folder, URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("scheme", ["file", "http"])
@pytest.mark.parametrize("attack", ["traversal", "absolute", "garbage manifest", "altered file", "wrong name"])
def test_a_hostile_mirror_never_writes_outside_the_cache(made, tmp_path, monkeypatch, http_root, scheme, attack):
    _, folder = made
    victim = tmp_path / "victim" / ".bashrc"
    victim.parent.mkdir()
    victim.write_text("safe")
    changes = {"traversal": (_traversal, None, "not a relative path"),
               "absolute": (_absolute(victim), None, "not a relative path"),
               "garbage manifest": (None, {bundle.MANIFEST: b"<html>not json"}, "is not a bundle manifest"),
               "altered file": (None, {bundle.LABELS: b"owned"}, "does not match the hash"),
               "wrong name": (lambda m: m.update(name="other"), None, "manifest of bundle 'other'")}
    change, garbage, message = changes[attack]
    served, url = http_root
    _mirror(folder, served, change, garbage)
    url = served.as_uri() if scheme == "file" else url
    cache = tmp_path / "cache"
    monkeypatch.setenv("NCLAB_CACHE", str(cache))
    monkeypatch.setenv("NCLAB_RESULTS_URL", url)
    monkeypatch.delenv("NCLAB_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    outside = {p for p in tmp_path.rglob("*") if not p.is_relative_to(cache)}
    with pytest.raises(ValueError, match=message) as raised:
        bundle.load("tiny")
    assert url in str(raised.value) and "\n" not in str(raised.value)
    assert victim.read_text() == "safe"
    assert {p for p in tmp_path.rglob("*") if not p.is_relative_to(cache)} == outside
    assert not (cache / "published" / "tiny").exists()   # nothing half-fetched is left to be read


def test_an_honest_mirror_over_http_gives_the_same_bundle(made, tmp_path, monkeypatch, http_root):
    _, folder = made
    served, url = http_root
    _mirror(folder, served)
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NCLAB_RESULTS_URL", url)
    monkeypatch.delenv("NCLAB_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    fetched = bundle.load("tiny")
    assert fetched.folder == tmp_path / "cache" / "published" / "tiny"
    assert _tree(fetched.folder) == _tree(folder)


def _serve(monkeypatch, tmp_path, url):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NCLAB_RESULTS_URL", url)
    monkeypatch.delenv("NCLAB_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("scheme", ["file", "http"])
def test_a_download_over_the_size_limit_is_stopped(made, tmp_path, monkeypatch, http_root, scheme):
    _, folder = made
    served, url = http_root
    huge = bytes(bundle.MAX_BYTES + 2**20)           # one file alone over the limit, listed with its true hash
    _mirror(folder, served, lambda m: m["files"].update({bundle.LABELS: hashlib.sha256(huge).hexdigest()}),
            {bundle.LABELS: huge})
    _serve(monkeypatch, tmp_path, served.as_uri() if scheme == "file" else url)
    with pytest.raises(ValueError, match=r"labels.npz takes the published bundle over 25 MiB, the most a bundle may"):
        bundle.load("tiny")
    assert not (tmp_path / "cache" / "published" / "tiny").exists()
    assert sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*") if p.is_file()) < bundle.MAX_BYTES


def test_an_invalid_cached_copy_says_which_folder_to_delete(made, tmp_path, monkeypatch, http_root):
    _, folder = made
    served, url = http_root
    _mirror(folder, served)
    _serve(monkeypatch, tmp_path, url)
    cached = bundle.load("tiny").folder
    (cached / bundle.LABELS).write_bytes(b"damaged")
    with pytest.raises(ValueError, match=rf"labels.npz does not match the hash .*; this is the copy downloaded "
                                         rf"earlier: delete the folder {cached} to download it again"):
        bundle.load("tiny")


def _npz_declaring(shape: tuple[int, ...]) -> bytes:
    """An .npz whose val and test arrays declare ``shape`` (float16) in their headers and hold no data."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for split in ("val", "test"):
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<f2", "fortran_order": False, "shape": shape})
            archive.writestr(f"{split}.npy", header.getvalue())
    return buffer.getvalue()


def test_an_array_declared_too_large_is_refused_before_it_is_decompressed(made, tmp_path, monkeypatch):
    _, folder = made
    copy_, manifest, key = _copy_with_first_run_file(folder, tmp_path, bundle.LOGITS)
    (copy_ / key).write_bytes(_npz_declaring((20_000_000, 10)))   # 381 MiB of float16 once decompressed
    manifest["files"][key] = hashlib.sha256((copy_ / key).read_bytes()).hexdigest()
    (copy_ / bundle.MANIFEST).write_text(json.dumps(manifest))
    loaded, real_load = [], np.load
    monkeypatch.setattr(bundle.np, "load", lambda *a, **k: loaded.append(a) or real_load(*a, **k))
    with pytest.raises(ValueError, match=r"logits.npz with splits val, test \(the val array would take 381 MiB "
                                         r"decompressed, over the 100 MiB"):
        bundle._read(copy_, "tiny")
    assert not loaded


def test_no_bundle_file_is_ever_unpickled(made):
    """The npz files are read with allow_pickle=False: an object array inside is refused."""
    _, folder = made
    buffer = io.BytesIO()
    np.savez(buffer, val=np.array([{"x": 1}], dtype=object), test=np.zeros(1))
    path = folder.parent / "pickled.npz"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="pickled.npz is not a bundle's"):
        bundle._arrays(path)
    path.unlink()


def test_security_checklist_of_the_package_source():
    """No unpickling of untrusted data, no shell strings: every call site in nclab/ is checked from its syntax tree."""
    import ast

    problems = []
    for path in sorted((Path(__file__).resolve().parents[1] / "nclab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
            where = f"{path.name}:{node.lineno} {name}"
            if name in ("pickle.load", "pickle.loads", "os.system", "os.popen", "eval", "exec"):
                problems.append(where)
            if name == "torch.load" and keywords.get("weights_only") != "True":
                problems.append(where + " without weights_only=True")
            if name == "np.load" and keywords.get("allow_pickle") not in (None, "False"):
                problems.append(where + " with allow_pickle")
            if keywords.get("shell") not in (None, "False"):
                problems.append(where + " with shell=")
    assert not problems, problems


@pytest.mark.parametrize("where", ["a file on the path", "a read-only folder"])
def test_an_unwritable_out_is_refused_before_training(tmp_path, monkeypatch, capsys, where):
    monkeypatch.setenv("NCLAB_CACHE", str(tmp_path / "cache"))
    if where == "a file on the path":
        (tmp_path / "notes").write_text("a file, not a folder")
        out, parent = tmp_path / "notes" / "t", tmp_path / "notes"
        reason = "the folder of --out is a file, not a folder"
    else:
        (tmp_path / "rodir").mkdir()
        out, parent = tmp_path / "rodir" / "t", tmp_path / "rodir"
        reason = f"cannot create or write the folder ({os.strerror(30)})"
        real_mkstemp = cli.tempfile.mkstemp

        def read_only(*args, dir=None, **kwargs):
            if Path(dir) == parent:
                raise OSError(30, os.strerror(30))   # EROFS: what root meets on a read-only mount
            return real_mkstemp(*args, dir=dir, **kwargs)
        monkeypatch.setattr(cli.tempfile, "mkstemp", read_only)
    args = ["bundle", "--profile", "quick", "--deltas", "0", "--seeds", "0", "--epochs", "1", "--width", "8",
            "--name", "t", "--out", str(out), "--no-progress"]
    assert cli.main(args) != 0
    err = capsys.readouterr().err
    assert err == f"error: {reason}: {parent}\n"
    assert not list((tmp_path / "cache").rglob("result.json"))     # nothing trained


DEEP = b"[" * 100_000 + b"]" * 100_000   # JSON nested far deeper than Python's recursion limit


def test_a_deeply_nested_manifest_is_one_error_naming_it(made, tmp_path, monkeypatch):
    results, folder = made
    target = tmp_path / "tiny"
    shutil.copytree(folder, target)
    (target / bundle.MANIFEST).write_bytes(DEEP)
    with pytest.raises(ValueError, match=rf"{target / bundle.MANIFEST} is not a bundle manifest \(its JSON is nested"):
        bundle._read(target, "tiny")
    monkeypatch.setenv("NCLAB_RESULTS", str(tmp_path))
    with pytest.raises(ValueError, match="nested too deeply"):
        bundle.load("tiny")
    with pytest.raises(ValueError, match=r"not empty and holds no bundle"):
        _export(results, target)
    assert (target / bundle.MANIFEST).read_bytes() == DEEP
    nested_value = json.loads((folder / bundle.MANIFEST).read_text())
    nested_value["runs"][0]["folder"] = ["x"]
    text = json.dumps(nested_value).replace('["x"]', "[" * 990 + '"x"' + "]" * 990)
    with pytest.raises(ValueError, match="is not a"):
        folders.parse_manifest(text.encode(), "M")


def test_a_deeply_nested_result_in_a_bundle_is_one_error_naming_it(made, tmp_path):
    _, folder = made
    target, manifest, key = _copy_with_first_run_file(folder, tmp_path, "result.json")
    (target / key).write_bytes(DEEP)
    manifest["files"][key] = hashlib.sha256(DEEP).hexdigest()
    (target / bundle.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=rf"{target / key} is not an nclab run result \(its JSON is nested too deeply\)"):
        bundle._read(target, "tiny")
