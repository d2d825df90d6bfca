"""The built site in a real browser (Chromium through Playwright): every page loads cleanly and its controls work.

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
def test_the_page_loads_without_errors_and_its_math_is_typeset(site, browser, path):
    page, problems = _open(browser, site + path)
    text = page.evaluate("""() => {
        const body = document.querySelector('main') || document.body;
        const copy = body.cloneNode(true);
        copy.querySelectorAll('pre, code, script, style, mjx-container, .highlight, textarea').forEach(e => e.remove());
        return copy.innerText;
    }""")
    page.close()
    assert problems == []
    leftover = UNTYPESET.findall(text)
    assert not leftover, f"untypeset TeX on {path}: {leftover[:5]}"


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
