"""Every MyST heading of a page of the book is a heading of its built HTML page, unchanged and in order.

A heading that lost its line (``... sentence r## Questions``), or that an unclosed fence swallowed,
renders as text or not at all; a heading whose text changed on the way no longer matches. The
source side is parsed with the book's own MyST parser (markdown cells only, code fences skipped),
the built side is ``_build/html`` from ``make book``; without it the comparison is skipped (it
fails in CI, which builds the book first), while the checker itself is tested on hand-made pairs.
"""

from __future__ import annotations

import difflib
import html.parser
import os
import re
from pathlib import Path

import jupytext
import pytest
import yaml
from markdown_it.renderer import RendererHTML
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.mdit import create_md_parser

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
MYST = create_md_parser(
    MdParserConfig(enable_extensions=set(CONFIG["parse"]["myst_enable_extensions"])), RendererHTML)
# Heading marks inside a paragraph's text: what a heading that lost its own line leaves behind.
HEADING_MARK = re.compile(r"(?<![#&])#{1,6}[ \t]+\S[^\n]*")
ROLE = "\x00"  # a role in a heading ({glue:text}`x`, ...): its rendered text is not in the source
# Pages whose built headings include generated ones (autodoc's docstrings): the source's headings
# must appear among them, in order; elsewhere the two lists are equal.
GENERATED = {"api"}
# What Sphinx's smart quotes do to text: compare with straight quotes and typographic dashes.
SMART = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def _toc_pages() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [e["file"] for part in toc.get("parts", []) for e in part["chapters"]]
    return [ROOT / f"{f}.md" for f in files]


PAGES = _toc_pages()


def _inline_text(inline) -> str:
    """A heading's text as the HTML page shows it: markup dropped, math as MathJax's ``\\(...\\)``."""
    parts = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "math_inline":
            parts.append(rf"\({child.content}\)")
        elif child.type == "myst_role":
            parts.append(ROLE)
    return _plain("".join(parts))


def _plain(text: str) -> str:
    text = text.translate(SMART).replace("---", "\u2014").replace("--", "\u2013").replace("...", "\u2026")
    return " ".join(text.split())


def _fence_is_closed(token, lines: list[str]) -> bool:
    start, end = token.map
    last = lines[end - 1].strip() if end - 1 > start else ""
    return bool(last) and set(last) == {token.markup[0]} and len(last) >= len(token.markup)


def markdown_headings(markdown: str) -> tuple[list[tuple[int, str]], list[str]]:
    """The headings ``(level, text)`` of one markdown cell, and the problems that hide a heading.

    Problems: heading marks in the middle of a paragraph (a heading that lost its line) and a
    fence that is never closed (it swallows the rest of the cell, headings included).
    """
    tokens, lines = MYST.parse(markdown), markdown.splitlines()
    headings, problems = [], []
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            headings.append((int(token.tag[1]), _inline_text(tokens[i + 1])))
        elif token.type in ("fence", "colon_fence") and not _fence_is_closed(token, lines):
            problems.append(f"line {token.map[0] + 1}: a fence {token.markup}{token.info} never closed")
        elif token.type == "inline" and tokens[i - 1].type != "heading_open":
            for child in token.children or []:
                for mark in HEADING_MARK.findall(child.content) if child.type == "text" else []:
                    problems.append(f"line {token.map[0] + 1}: a heading inside a paragraph: {mark!r}")
    return headings, problems


def source_headings(md: Path) -> tuple[list[tuple[int, str]], list[str]]:
    """The headings of a page's markdown cells (code cells are not markdown), and their problems."""
    headings, problems = [], []
    for k, cell in enumerate(jupytext.read(md, fmt="md:myst").cells):
        if cell.cell_type == "markdown":
            found, trouble = markdown_headings(cell.source)
            headings += found
            problems += [f"cell {k + 1}, {p}" for p in trouble]
    return headings, problems


class _Headings(html.parser.HTMLParser):
    """The h1-h6 of a page's article, their text without the ``#`` permalink."""

    def __init__(self):
        super().__init__()
        self.headings: list[tuple[int, str]] = []
        self.article = 0  # depth inside <article class="bd-article">
        self.level = None  # the heading being read
        self.skip = 0  # depth inside its permalink
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "article" and (self.article or "bd-article" in classes):
            self.article += 1
        elif self.article and re.fullmatch(r"h[1-6]", tag):
            self.level, self.parts = int(tag[1]), []
        elif self.level and (self.skip or (tag == "a" and "headerlink" in classes)):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag == "article" and self.article:
            self.article -= 1
        elif self.level and re.fullmatch(r"h[1-6]", tag):
            self.headings.append((self.level, _plain("".join(self.parts))))
            self.level = None
        elif self.skip and tag == "a":
            self.skip -= 1

    def handle_data(self, data):
        if self.level and not self.skip:
            self.parts.append(data)


def html_headings(page: str) -> list[tuple[int, str]]:
    parser = _Headings()
    parser.feed(page)
    parser.close()
    return parser.headings


def _same(source: tuple[int, str], built: tuple[int, str]) -> bool:
    pattern = ".+".join(re.escape(part) for part in source[1].split(ROLE))
    return source[0] == built[0] and re.fullmatch(pattern, built[1]) is not None


def _among(wanted: list[tuple[int, str]], built: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The built headings that match the wanted ones in order (generated ones in between left out)."""
    found, rest = [], iter(built)
    for heading in wanted:
        match = next((b for b in rest if _same(heading, b)), None)
        if match is None:
            break
        found.append(match)
    return found


def heading_problems(source: tuple[list[tuple[int, str]], list[str]], page: str,
                     generated: bool = False) -> list[str]:
    """Why the built page's headings are not the source's: its problems, then the differences.

    ``generated``: the page adds headings of its own (docstrings); the source's must be among them.
    """
    wanted, problems = source
    built = html_headings(page)
    if generated and len(_among(wanted, built)) == len(wanted):
        built = wanted
    if len(wanted) != len(built) or not all(map(_same, wanted, built)):
        show = lambda hs: [f"{'#' * level} {text.replace(ROLE, '{role}')}" for level, text in hs]
        diff = difflib.unified_diff(show(wanted), show(built), "source", "built page", lineterm="", n=1)
        problems = problems + ["the headings differ:\n" + "\n".join(diff)]
    return problems


def _article(body: str) -> str:
    return f'<nav><h2>Contents</h2></nav><article class="bd-article">{body}</article>'


def test_the_checker_passes_a_page_whose_headings_all_render():
    md = ("# 9. A chapter\n\nText with `# not a heading` in code.\n\n## The paper's Questions\n\n"
          "### Step 5: $W$ and {glue:text}`k`\n")
    page = _article('<h1>9. A chapter<a class="headerlink">#</a></h1>'
                    '<h2>The paper\u2019s Questions<a class="headerlink" href="#q">#</a></h2>'
                    '<h3>Step 5: <span class="math">\\(W\\)</span> and 10<a class="headerlink">#</a></h3>')
    assert heading_problems(markdown_headings(md), page) == []


def test_the_checker_fails_a_page_with_a_swallowed_heading():
    md = "# 9. A chapter\n\nAfterwards the report r## Questions\n\n1. A question?\n"
    page = _article('<h1>9. A chapter<a class="headerlink">#</a></h1><p>Afterwards the report r## Questions</p>')
    problems = heading_problems(markdown_headings(md), page)
    assert len(problems) == 1 and "a heading inside a paragraph: '## Questions'" in problems[0]


def test_the_checker_fails_a_heading_that_a_fence_swallowed_or_the_page_lost_or_changed():
    swallowed = "# A\n\n```python\nx = 1\n\n## Questions\n"
    problems = heading_problems(markdown_headings(swallowed), _article("<h1>A</h1>"))
    assert len(problems) == 1 and "never closed" in problems[0]
    md = "# A\n\n## Questions\n\n## Key takeaways\n"
    lost = _article("<h1>A</h1><h2>Key takeaways</h2>")
    changed = _article("<h1>A</h1><h2>Questions</h2><h3>Key takeaways</h3>")
    extra = _article("<h1>A</h1><h2>Questions</h2><h3>Datasets</h3><h2>Key takeaways</h2>")
    for page, generated in ((lost, False), (changed, False), (lost, True), (extra, False)):
        problems = heading_problems(markdown_headings(md), page, generated)
        assert len(problems) == 1 and problems[0].startswith("the headings differ")
    assert heading_problems(markdown_headings(md), extra, generated=True) == []


@pytest.mark.parametrize("md", PAGES, ids=lambda p: p.stem)
def test_every_heading_of_the_page_renders_unchanged(md):
    built = SITE / md.relative_to(ROOT).with_suffix(".html")
    if not built.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{built.relative_to(ROOT)} is missing: run `make book` first")
        pytest.skip(f"{built.relative_to(ROOT)} is missing: run `make book` first")
    problems = heading_problems(source_headings(md), built.read_text(), generated=md.stem in GENERATED)
    assert not problems, f"{md.name} (rebuild with `make book` if it changed since):\n" + "\n".join(problems)
