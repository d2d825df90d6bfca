"""The built site in a real browser (Chromium through Playwright): every page loads cleanly, shows no raw MyST, and its controls work.

Needs the built book (``make book``; CI builds it before the tests) and a Chromium: Debian's
``chromium`` is used through ``executable_path``, no browser is downloaded. The site is served on
127.0.0.1, as a reader's browser would get it.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("[0-9]*.md"))
PAGES = ["index.html", "search.html", "genindex.html",
         *sorted(f"book/{p.name}" for p in (SITE / "book").glob("*.html"))] if SITE.is_dir() else []

pytestmark = pytest.mark.slow

# TeX that MathJax should have turned into math: inline/display delimiters or a bare command.
UNTYPESET = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\(?:frac|mathrm|sum|begin|lambda|delta|mu)\b")
# MyST that did not render, as a reader would see it: a line that starts as a heading, a fence or a
# directive, a cell marker or a target; a heading mark in the middle of a line; a role ({glue:text}...).
RAW_MYST = re.compile(r"^[ \t]*(?:#{1,6}[ \t]|:{3,}|`{3,}|~{3,}|\+{3}|\{[a-z][\w:.-]*\}|\([\w.-]+\)=[ \t]*$"
                      r"|:(?:tags|class|label|name):)"
                      r"|\S#{2,6}[ \t]|\{(?:glue|eq|ref|numref|doc|cite|math|term)\b[\w:.-]*\}", re.M)
# A page's text as a reader sees it (innerText) with every dropdown and hidden cell opened, without
# code, math and scripts: those show MyST-like text on purpose.
VISIBLE_TEXT = """() => {
    document.querySelectorAll('details').forEach(d => { d.open = true; });
    document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
    document.querySelectorAll('pre, code, script, style, mjx-container, .highlight, textarea')
        .forEach(e => { e.style.display = 'none'; });
    return (document.querySelector('main') || document.body).innerText;
}"""


def raw_myst(text: str) -> list[str]:
    """The lines of a page's visible text that show MyST source instead of what it renders to."""
    return [line.strip() for line in text.splitlines() if RAW_MYST.search(line)]


def _need(thing: str, present: bool, how: str):
    if not present:
        if os.environ.get("CI"):
            pytest.fail(f"{thing} is missing: {how}")
        pytest.skip(f"{thing} is missing: {how}")


@pytest.fixture(scope="module")
def site():
    _need("the built book", (SITE / "index.html").exists(), "run `make book` first")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    _need("Chromium", chromium is not None, "apt-get install chromium")
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
    _need("Playwright", sync_api is not None, "pip install -r requirements.txt")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()


def _open(browser, url: str):
    """Load a page and wait for its math; returns (page, problems seen while loading)."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(url, wait_until="networkidle", timeout=120_000)
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    return page, problems


@pytest.mark.parametrize("path", PAGES)
def test_the_page_loads_without_errors_its_math_is_typeset_and_it_shows_no_raw_myst(site, browser, path):
    page, problems = _open(browser, site + path)
    text = page.evaluate("""() => {
        const body = document.querySelector('main') || document.body;
        const copy = body.cloneNode(true);
        copy.querySelectorAll('pre, code, script, style, mjx-container, .highlight, textarea').forEach(e => e.remove());
        return copy.innerText;
    }""")
    visible = page.evaluate(VISIBLE_TEXT)
    page.close()
    assert problems == []
    leftover = UNTYPESET.findall(text)
    assert not leftover, f"untypeset TeX on {path}: {leftover[:5]}"
    raw = raw_myst(visible)
    assert not raw, f"raw MyST shown on {path}: {raw[:5]}"


def test_the_raw_myst_check_finds_unrendered_myst_on_a_page_and_passes_code(browser, tmp_path):
    page_file = tmp_path / "page.html"
    page_file.write_text("""<html><body><main>
        <h2>Many machines</h2><p>Afterwards the report reads the folder r## Questions</p>
        <p>## Key takeaways</p><p>The margin is {glue:text}`m_star` here.</p>
        <details><summary>Solution</summary><p>:::{admonition} Solution</p></details>
        <p>```{code-cell} ipython3</p>
        <pre>## a comment in code\n```{code-cell} ipython3</pre><p>Code: <code>{glue:text}</code>, C#.</p>
        </main></body></html>""")
    page = browser.new_page()
    page.goto(page_file.as_uri(), wait_until="load")
    found = raw_myst(page.evaluate(VISIBLE_TEXT))
    page.close()
    assert found == ["Afterwards the report reads the folder r## Questions", "## Key takeaways",
                     "The margin is {glue:text}`m_star` here.", ":::{admonition} Solution", "```{code-cell} ipython3"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_delta_player_steps_to_another_frame_and_colab_opens_the_chapter(site, browser, chapter):
    page, problems = _open(browser, f"{site}book/{chapter}.html")
    colab = page.locator('a[href*="colab.research.google.com"]')
    assert colab.count() >= 1, "no Colab button"
    assert colab.first.get_attribute("href").endswith(f"/book/{chapter}.ipynb")
    players = page.locator("div.animation")
    for i in range(players.count()):
        player = players.nth(i)
        image, slider = player.locator("img").first, player.locator("input.anim-slider")
        before = image.get_attribute("src")
        last = int(slider.get_attribute("max"))
        assert last >= 1, "a player with a single frame"
        slider.fill(str(last))
        after = image.get_attribute("src")
        assert after and after != before, f"player {i + 1} of {chapter} did not change its frame"
    page.close()
    assert problems == []


def test_the_search_page_finds_a_word_of_chapter_6(site, browser):
    page, problems = _open(browser, site + "search.html?q=unconstrained")
    page.wait_for_selector("#search-results li a", timeout=60_000)
    links = page.locator("#search-results li a").evaluate_all("(as) => as.map(a => a.getAttribute('href'))")
    page.close()
    assert problems == []
    assert any("06_ufm" in link for link in links), links
