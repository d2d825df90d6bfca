"""No number that a run produces is typed into the prose of chapters 2-5: it is glued from the computation.

The prose is what is left of a chapter after removing code cells, math, inline code, roles (glue,
citations, references) and link targets. A digit left there must be part of a name (NC1,
ResNet18, CIFAR-10), a chapter or section reference, or a list number; anything else is a typed
number and fails this test, unless it is one of the constants listed in ``ALLOWED``.

The README, which cannot glue, and the teaching page quote the fashion bundle's cost in one
sentence each, in plain text: it is checked against the bundle's manifest, and the README's words
for the shared sweep against the package.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from nclab.runs import SWEEP_DELTAS, SWEEP_SEEDS

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("0[2-5]_*.md"))

# Constants (not results) written in prose on purpose: the confidence level of every interval and
# its complement. Keep these lists short.
EVERYWHERE = {"95%", "5%"}
ALLOWED: dict[str, set[str]] = {}


def prose(text: str) -> str:
    """The chapter without front matter, code, math, roles and link targets."""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)            # front matter
    text = re.sub(r"```.*?```", " ", text, flags=re.S)                   # code cells and fenced blocks
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)                 # display math
    text = re.sub(r"\$[^$]+\$", " ", text)                                 # inline math (may wrap)
    text = re.sub(r"\{[a-z:]+\}`[^`]*`", " ", text)                      # roles: {glue:text}`x`, {cite:p}`x`
    text = re.sub(r"`[^`]*`", " ", text)                                 # inline code
    text = re.sub(r"\]\([^)]*\)", "]", text)                             # link targets
    text = re.sub(r"^:::\{[^}]*\}.*$|^:class:.*$", " ", text, flags=re.M)  # directive lines
    return text


def typed_numbers(text: str) -> list[str]:
    text = prose(text)
    text = re.sub(r"^\s*#+ \d+(\.\d+)*\.?", " ", text, flags=re.M)       # heading numbers
    text = re.sub(r"^\s*\d+\. ", " ", text, flags=re.M)                  # numbered lists
    text = re.sub(r"\b[Cc]hapters? \d+(\s*(–|-|and|or|,|to)\s*\d+)*", " ", text)   # chapter references
    text = re.sub(r"\b(Theorem|Figure|Section|Question|Exercise)s? \d+(\.\d+)?", " ", text)  # numbered references
    text = re.sub(r"\b[A-Za-z][A-Za-z_]*[-_]?\d+\w*", " ", text)         # names: NC1, ResNet18, CIFAR-10
    return [n.rstrip(".,") for n in re.findall(r"(?<![\w.])[−-]?\d[\d.,/%]*", text)]


def test_the_scanner_finds_typed_numbers_and_ignores_the_rest():
    sample = ("---\nfront: 1\n---\n# 3. Title\nNC1 fell by 32.7 in chapter 6, as $K = 10$ and "
              "{glue:text}`ch3_x` say (Exercise 3.2); `0.5` and\n```{code-cell}\nx = 3\n```\n1. A question with 0.25.\n")
    assert typed_numbers(sample) == ["32.7", "0.25"]


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_no_typed_result_numbers_in_the_prose(md):
    found = [n for n in typed_numbers(md.read_text()) if n not in EVERYWHERE | ALLOWED.get(md.stem, set())]
    assert not found, (f"{md.name}: numbers typed into the prose: {found}. Glue them from the "
                       "computation ({glue:text}`name`), write constants as math, or list a true "
                       "constant in ALLOWED")


# Pages that cannot glue (the README) or quote it in plain text (the teaching page) state the
# fashion bundle's cost in one sentence, with the manifest's own numbers: checked against the file.
BUNDLE_COST = re.compile(r"records the wall time of the sweep that made it, (\d+) s for (\d+) runs trained (\d+) "
                         r"at a time \(`wall_seconds`\), and a median of (\d+) s a run \(`run_seconds_median`\)")


def bundle_cost(text: str) -> tuple[int, int, int, int]:
    found = BUNDLE_COST.findall(re.sub(r"\s+", " ", text))
    assert len(found) == 1, f"expected one sentence quoting the bundle's manifest, found {len(found)}"
    return tuple(int(n) for n in found[0])


@pytest.mark.parametrize("page", ["README.md", "book/teaching.md"])
def test_the_quoted_bundle_cost_is_the_manifests(page):
    manifest = json.loads((ROOT / "results" / "fashion" / "manifest.json").read_text())
    median = float(np.median([run["seconds"] for run in manifest["runs"]]))
    assert bundle_cost((ROOT / page).read_text()) == (round(manifest["wall_seconds"]), len(manifest["runs"]),
                                                     manifest["workers"], round(median))


def test_the_bundle_cost_check_catches_a_stale_number():
    sentence = ("records the wall time of the sweep that made it, 3600 s for 24 runs trained 2\n at a time "
                "(`wall_seconds`), and a median of 483 s a run (`run_seconds_median`).")
    assert bundle_cost(sentence) == (3600, 24, 2, 483)
    with pytest.raises(AssertionError, match="found 0"):
        bundle_cost("about an hour on two CPU cores")


def test_the_readmes_sweep_and_profile_words_match_the_package():
    # "six values of δ, eight seeds each" (the shared sweep) and "fashion (... minutes a run)"
    words = {6: "six", 8: "eight"}
    text = re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    assert (f"one sweep: {words[len(SWEEP_DELTAS)]} values of δ, {words[len(SWEEP_SEEDS)]} seeds each"
            in text)
    assert "(real images on a CPU, minutes a run)" in text
    assert 60 <= json.loads((ROOT / "results" / "fashion" / "manifest.json").read_text())["run_seconds_median"] < 3600
