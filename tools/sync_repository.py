"""Carry the repository URL of _config.yml into the package, every chapter's install cell and the teachers' page's.

It writes ``REPOSITORY`` and ``BRANCH`` into the book's machinery (``nclab/book/repository.py``) and
the raw-results URL they give into the library (``RESULTS_URL`` in ``nclab/bundle.py``).

Run by `make sync` (before jupytext regenerates the notebooks). _config.yml's `repository.url`
and `repository.branch` are the one place the URL is set by hand.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def raw_results_url(url: str, branch: str) -> str:
    """The raw files of ``results/`` in the repository ``url`` on ``branch`` (as nclab.book.repository.results_url)."""
    if url.startswith("https://github.com/"):
        return f"https://raw.githubusercontent.com/{url.removeprefix('https://github.com/').strip('/')}/{branch}/results"
    return f"{url.rstrip('/')}/raw/{branch}/results"


def main() -> int:
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    url, branch = repo["url"].rstrip("/"), repo.get("branch", "main")
    changed = []
    module = ROOT / "nclab" / "book" / "repository.py"
    text = module.read_text()
    new = re.sub(r'^REPOSITORY = ".*"$', f'REPOSITORY = "{url}"', text, flags=re.M)
    new = re.sub(r'^BRANCH = ".*"$', f'BRANCH = "{branch}"', new, flags=re.M)
    if new != text:
        module.write_text(new)
        changed.append(module)
    bundle = ROOT / "nclab" / "bundle.py"
    text = bundle.read_text()
    new = re.sub(r'^RESULTS_URL = ".*"$', f'RESULTS_URL = "{raw_results_url(url, branch)}"', text, flags=re.M)
    if new != text:
        bundle.write_text(new)
        changed.append(bundle)
    for md in [*sorted((ROOT / "book").glob("[0-9]*.md")), ROOT / "book" / "teaching.md"]:
        text = md.read_text()
        new = re.sub(r'%pip install -q "git\+[^"]*"', f'%pip install -q "git+{url}"', text)
        if new != text:
            md.write_text(new)
            changed.append(md)
    for path in changed:
        print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
