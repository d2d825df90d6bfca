"""The claims of chapters 2-5 hold on other floating-point paths, not only on the machine that built the book.

Training numbers move with the CPU's floating-point path (the BLAS's code path, the vector
instructions torch dispatches to) by about as much as they move with the seed. Each test re-runs
the book's whole quick sweep in a fresh result cache, in a separate process whose environment
selects another path, and checks every claim that chapters 2-5 make in words
(:mod:`nclab.evidence`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json
import nclab as nc
results = nc.runs.book_sweep(progress=False)
val = nc.runs.outputs_by_delta(results, "val")
test = nc.runs.outputs_by_delta(results, "test")
chapters = [nc.evidence.chapter2(results), nc.evidence.chapter3(results),
            nc.evidence.chapter4(results), nc.evidence.chapter5(results, val, test)]
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
@pytest.mark.parametrize("path", PATHS)
def test_book_claims_hold_on_another_floating_point_path(path, tmp_path):
    env = {**os.environ, **PATHS[path], "NCLAB_CACHE": str(tmp_path / "cache"),
           "NCLAB_PROFILE": "quick", "NCLAB_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                          timeout=1800, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report) == 4 and all(r["claims"] >= 4 for r in report.values())
    failed = {chapter: r["failed"] for chapter, r in report.items() if r["failed"]}
    assert not failed, f"under {PATHS[path]} these claims of the book fail: {failed}"
