"""The claims of chapters 2-5 hold on other floating-point paths, not only on the machine that built the book.

Training numbers move with the CPU's floating-point path (the BLAS's code path, the vector
instructions torch dispatches to) by about as much as they move with the seed. Each test checks
every claim that chapters 2-5 make in words (:mod:`nclab.book.evidence`) on the book's whole quick
sweep trained under an environment that selects a path, in a separate process.

The sweep of each path is trained once per session, by the ``quick_sweeps`` fixture of
``conftest.py``, which keys on the effective path (torch's CPU capability as that environment
resolves it, and the MKL variables set): a path that is the session's own default (e.g.
``ATEN_CPU_CAPABILITY=avx2`` on a machine whose best instructions are AVX2, or every entry when
the whole suite runs under that entry's environment) reads the repository's result cache, which
``make book`` and the chapter tests filled, and trains there only the runs missing; a genuinely
different path trains into a fresh cache. The ``quick_sweep`` mark starts every path's training
in the background at the session's start, at the lowest CPU priority, and runs these tests last.
Each test prints how many runs its path trained, and asserts that checking the claims trained
nothing more. It then executes chapters 3 and 4, whose sentences quote the verdicts that change
most between paths, on that path's sweep: their hidden checks must hold there too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parent.parent / "book"
# The chapters executed on every path (about 12 s each once the sweep is trained).
CHAPTERS = ("03_training_dynamics.md", "04_nc1_vs_nc2.md")

SCRIPT = """
import json
import nclab as nc
results = nc.runs.book_sweep(progress=False)
val = nc.runs.outputs_by_delta(results, "val")
test = nc.runs.outputs_by_delta(results, "test")
chapters = [nc.book.evidence.chapter2(results), nc.book.evidence.chapter3(results),
            nc.book.evidence.chapter4(results), nc.book.evidence.chapter5(results, val, test)]
print(json.dumps({ev.chapter: {"claims": len(ev.claims), "failed": ev.failed()} for ev in chapters}))
"""

PATHS = {
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    # torch's kernels without vector instructions: a different path also on a machine whose best
    # one is AVX2 (where "avx2" above is the default path).
    "aten-scalar": {"ATEN_CPU_CAPABILITY": "default"},
}


@pytest.mark.slow
@pytest.mark.parametrize("path", [pytest.param(name, marks=pytest.mark.quick_sweep(**env), id=name)
                                  for name, env in PATHS.items()])
def test_book_claims_hold_on_another_floating_point_path(path, quick_sweeps, tmp_path):
    env, cache, fp_path = quick_sweeps.prepare(PATHS[path], by=f"test_robust_claims[{path}]")
    trained = quick_sweeps.done[fp_path]
    shared = " (the session's default path: the repository's cache)" if fp_path == quick_sweeps.default else ""
    print(f"{path}: floating-point path {fp_path}{shared}; {trained.trained} of {trained.runs} runs trained "
          f"for it in this session, by {trained.by}")
    before = quick_sweeps.finished_runs(cache)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                          timeout=1800, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert quick_sweeps.finished_runs(cache) == before, "checking the claims trained runs: the sweep was trained twice"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report) == 4 and all(r["claims"] >= 4 for r in report.values())
    failed = {chapter: r["failed"] for chapter, r in report.items() if r["failed"]}
    assert not failed, f"under {PATHS[path]} ({fp_path}) these claims of the book fail: {failed}"
    # The chapters' hidden checks on the same runs: the kernel-free figures (see
    # tests/test_colab_like.py for why a headless client needs them), the quick profile.
    run_env = {k: v for k, v in env.items() if k != "NCLAB_PROFILE"} | {"NCLAB_STATIC": "1", "NCLAB_PROGRESS": "0"}
    for chapter in CHAPTERS:
        done = subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "--execute", str(BOOK / chapter),
                               "-o", str(tmp_path / chapter.replace(".md", ".ipynb"))],
                              env=run_env, capture_output=True, text=True, timeout=900, cwd=BOOK)
        assert done.returncode == 0, f"{chapter} under {PATHS[path]}:\n{done.stderr[-3000:]}"
    assert quick_sweeps.finished_runs(cache) == before, "executing the chapters trained runs"
