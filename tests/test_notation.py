"""The book's notation, checked by machine: one star, one written form of each NC2 measure, one
import path per public name of ``nclab``, every letter declared in book/notation.md, and no second
meaning of a letter that book/notation.md does not declare.

What is read: the Markdown sources of the pages (book/*.md), their prose and their math; code cells
and inline code are code and are left out, except for the import paths, which are read everywhere.
Each check is a function that returns the offending places; one test runs it on the book (it must
find none) and one runs it on a small sample written to break it (it must find that), so that no
check passes because it looks at nothing.

What cannot be checked this way: whether a declared letter is used with its declared meaning in
every place. The checks below recognise a second meaning only by its form (a bare ``\\mu`` is an
eigenvalue, ``H(`` is an entropy, ``\\bar d`` a mean difference, ...); :data:`SECOND_MEANINGS` lists
these forms, and :data:`UNCHECKABLE` the declared reuses that have no recognisable form.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTATION = BOOK / "notation.md"
PLOTS = ROOT / "nclab" / "plots"

GREEK = set("""alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu
nu xi pi varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta
Lambda Xi Pi Sigma Upsilon Phi Psi Omega""".split())
# Commands whose argument is a word or a font, not a symbol: \mathrm{acc}, \mathbb{R}, \mathbf{1}, ...
WORDY = re.compile(r"\\(?:text|mathrm|operatorname|mathbf|mathbb|mathcal|textsf|textbf|textit|mathit)"
                   r"\s*\{[^{}]*\}")


# --- reading a page ---------------------------------------------------------------------------------

def prose(text: str) -> str:
    """The page without its front matter, code cells, fenced blocks and inline code."""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def math_spans(text: str) -> list[str]:
    """The contents of the $$...$$ blocks and $...$ spans of ``text`` (pass it through :func:`prose`)."""
    spans = [m.group(1) for m in re.finditer(r"\$\$(.+?)\$\$", text, flags=re.S)]
    rest = re.sub(r"\$\$.+?\$\$", " ", text, flags=re.S)
    return spans + [m.group(1) for m in re.finditer(r"(?<!\\)\$([^$\n]+?)\$", rest)]


def outside_math(text: str) -> str:
    """``text`` (pass it through :func:`prose`) with its math replaced by spaces."""
    text = re.sub(r"\$\$.+?\$\$", " ", text, flags=re.S)
    return re.sub(r"(?<!\\)\$[^$\n]+?\$", " ", text)


def symbols(span: str) -> set[str]:
    """The letters of a math span: single Latin letters and Greek commands (``\\lambda``), without
    the subscripts (indices and labels) and without words and fonts (``\\mathrm{acc}``, ``\\mathbb{R}``)."""
    s = WORDY.sub(" ", span)
    for _ in range(3):
        s = re.sub(r"_\{[^{}]*\}", " ", s)
    s = re.sub(r"_\\?[A-Za-z0-9]+", " ", s)
    found = set()
    for m in re.finditer(r"\\([A-Za-z]+)|(?<![A-Za-z])([A-Za-z])(?![A-Za-z])", s):
        if m.group(1) is None:
            found.add(m.group(2))
        elif m.group(1) in GREEK:
            found.add("\\" + m.group(1))
    return found


def chapter_of(path: Path) -> str:
    """"6" for book/06_ufm.md; the file's name for a page that is not a numbered chapter."""
    m = re.match(r"(\d\d)_", path.name)
    return str(int(m.group(1))) if m else path.stem


def pages() -> dict[str, str]:
    """Chapter (or page name) -> the page's Markdown, for every page except the notation page."""
    return {chapter_of(p): p.read_text() for p in sorted(BOOK.glob("*.md")) if p != NOTATION}


# --- one star ---------------------------------------------------------------------------------------

def star_violations(text: str) -> list[str]:
    """Stars written otherwise than the notation page's ``^*`` (``\\star``, ``\\ast``, ⋆, ★)."""
    return [m.group(0) for m in re.finditer(r"\\star\b|\\ast\b|[⋆★✱]", text)]


# --- one written form of each NC2 measure -----------------------------------------------------------

def nc_name_violations(text: str) -> list[str]:
    """NC2's forms written otherwise than $\\mathrm{NC2}_H$, $\\mathrm{NC2}_W$, $\\mathrm{NC2}_{WH}$.

    In prose: no NC2-H, NC2_H, NC2$_H$ and no code names (nc2_h) outside code font. In math: NC2
    always as \\mathrm{NC2}, with its subscript in math.
    """
    text = prose(text)
    found = re.findall(r"NC2\$\s*_\{?[A-Za-z]*\}?", text)
    found += re.findall(r"NC2[-_]\{?[A-Za-z]*\}?|\bnc2_[a-z]+", outside_math(text))
    for span in math_spans(text):
        found += [f"${span}$" for m in re.finditer(r"(?<!\\mathrm\{)NC2", span)]
    return found


def docstring_nc_name_violations(source: str) -> list[str]:
    """NC2's forms in the library's text (docstrings, messages, labels): NC2_H, never NC2-H."""
    return re.findall(r"NC2-[A-Za-z]+", source)


# --- one import path per public name ----------------------------------------------------------------

def import_paths(text: str) -> dict[str, set[str]]:
    """Public name of nclab (capitalised: a class or a constant) -> the modules the text reaches it by."""
    paths = defaultdict(set)
    for m in re.finditer(r"\b(?:nc|nclab)((?:\.[a-z_][a-z0-9_]*)+)\.([A-Z][A-Za-z0-9_]*)", text):
        paths[m.group(2)].add("nclab" + m.group(1))
    for m in re.finditer(r"^\s*from\s+nclab((?:\.[a-z_][a-z0-9_]*)*)\s+import\s+([^\n#]+)", text, flags=re.M):
        for name in re.findall(r"\b[A-Z][A-Za-z0-9_]*\b", m.group(2)):
            paths[name].add("nclab" + m.group(1))
    return paths


def import_path_violations(texts: dict[str, str]) -> dict[str, set[str]]:
    """Public names that ``texts`` (all pages together) reach through more than one module."""
    paths = defaultdict(set)
    for text in texts.values():
        for name, modules in import_paths(text).items():
            paths[name] |= modules
    return {name: modules for name, modules in paths.items() if len(modules) > 1}


# --- the notation page ------------------------------------------------------------------------------

def section(notation: str, heading: str) -> str:
    """The text of the section ``## heading`` of the notation page."""
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", notation, flags=re.S | re.M)
    assert m, f"book/notation.md has no section '{heading}'"
    return m.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The cells of the body rows of the Markdown tables in ``text``."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"\|\s*-", line):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] not in ("Symbol", "Letter"):
                rows.append(cells)
    return rows


def declared_reuses(notation: str) -> dict[str, set[str]]:
    """Symbol (as written in the first cell, e.g. "$\\lambda$") -> the chapters of its second meaning.

    The third cell reads "first meaning's chapters; second meaning's chapters", e.g. "6; 2, 7".
    """
    reuses = {}
    for cells in table_rows(section(notation, "Symbols with more than one meaning")):
        second = cells[2].split(";")[1]
        reuses[cells[0]] = {c.strip() for c in second.split(",") if c.strip()}
    return reuses


# --- letters with a second meaning ------------------------------------------------------------------

def _form(pattern: str):
    regex = re.compile(pattern)
    return lambda chapter, span: bool(regex.search(span))


def _letter_outside(letter: str, chapters: set[str]):
    return lambda chapter, span: chapter not in chapters and letter in symbols(span)


# Symbol of the notation page -> (its second meaning, how a math span shows that meaning). A symbol
# not declared under "Symbols with more than one meaning" must show its second meaning nowhere; a
# declared one only in the chapters the notation page names for that meaning.
SECOND_MEANINGS = {
    "$A$": ("a matrix other than WMᵀ (chapter 6)", _letter_outside("A", {"6"})),
    "$b$": ("the index of a bin", _form(r"(?<!\\lambda)_\{?b\}?(?![A-Za-z])")),
    "$e$": ("Euler's number", _form(r"(?<![A-Za-z\\])e\s*\^")),
    "$\\lambda$": ("an eigenvalue (λ without the subscript W, H or b)",
                  _form(r"\\lambda(?!\s*_\s*\{?\s*[WHb]\s*\}?(?![A-Za-z]))")),
    "$p$": ("a p-value", _form(r"(?<![A-Za-z\\])p\s*<\s*0\.\d")),
    "$\\Sigma$": ("the diagonal factor of an SVD (Σ without subscript)", _form(r"\\Sigma(?!\s*_)")),
    "$t$": ("a local time, step count or scale (t other than Student's t and its quantile)",
            lambda chapter, span: span.strip() != "t"
            and bool(re.search(r"(?<![A-Za-z\\])t(?![A-Za-z])(?!\s*_\s*\{\s*0\.975)", span))),
    "$T$": ("the time of a run", _form(r"T\s*_\s*\{\\text\{run\}\}")),
    # Second meanings the book has had and must not have again (none of these is declared):
    "$\\mu$": ("an eigenvalue (μ without a subscript)", _form(r"\\mu(?![_A-Za-z])")),
    "$H$": ("an entropy H(q) or the Hessian",
            _form(r"(?<![A-Za-z\\])H\s*\(|\\mathbf\s*\{H\}|\\mathcal\s*\{H\}")),
    "$B$": ("a half of a split (T_A, T_B, ECE_A)", _form(r"(?<!\\Sigma)_\{?[AB]\}?(?![A-Za-z])")),
    "$n$": ("a number of seeds", _form(r"\\sqrt\s*\{?\s*n\s*\}?(?![A-Za-z\\])|(?<![A-Za-z\\])n\s*-\s*1(?!\d)")),
    "$d$": ("a difference between runs", _form(r"\\bar\s*\{?d\}?(?![A-Za-z])|(?<![A-Za-z\\])d\s*_")),
    "$s$": ("a seed index or a standard deviation", _form(r"(?<![A-Za-z\\])s\s*_|_\{?s\}?(?![A-Za-z])")),
    "$m$": ("a number of comparisons",
            _form(r"0\.\d+\s*(?:\\,)?\s*m(?![A-Za-z^*])|0\.\d+\s*\^\s*\{?m\b|0\.\d+\s*/\s*m(?![A-Za-z])")),
    "$c$": ("a cosine or a scale factor",
            _form(r"\\bar\s*\{?c\}?(?![A-Za-z])|(?<![A-Za-z\\])c\s*\^\s*\{?-?2|(?<![A-Za-z\\])c\s*\\,\s*h")),
    "$R$": ("a matrix (R is the number of seeds, chapter 3)", _letter_outside("R", {"3", "11"})),
    "$\\mathrm{acc}$": ("accuracy written a", _form(r"\(\s*1\s*-\s*a\s*\)|(?<![A-Za-z\\])a\s*=\s*1(?![\d.])")),
}

# Declared reuses whose second meaning has no form a pattern can tell apart, and why.
UNCHECKABLE = {
    "$N$": "the ECE's N (samples scored) is written like the training set's N",
}


def second_meanings(texts: dict[str, str], meanings=None) -> dict[str, set[str]]:
    """Symbol -> the chapters of ``texts`` whose math shows its second meaning."""
    meanings = SECOND_MEANINGS if meanings is None else meanings
    found = defaultdict(set)
    for chapter, text in texts.items():
        for span in math_spans(prose(text)):
            for symbol, (_, shows) in meanings.items():
                if shows(chapter, span):
                    found[symbol].add(chapter)
    return found


def reuse_violations(texts: dict[str, str], notation: str, meanings=None) -> list[str]:
    """Second meanings that the notation page does not declare, or declares for other chapters."""
    meanings = SECOND_MEANINGS if meanings is None else meanings
    declared = declared_reuses(notation)
    problems = []
    for symbol, chapters in sorted(second_meanings(texts, meanings).items()):
        allowed = declared.get(symbol, set())
        if chapters - allowed:
            problems.append(f"{symbol} as {meanings[symbol][0]} in chapter(s) {sorted(chapters - allowed)}; "
                            f"book/notation.md declares {sorted(allowed) or 'no second meaning'}")
    return problems


def stale_reuses(texts: dict[str, str], notation: str) -> dict[str, list[str]]:
    """Declared second meanings (symbol -> chapters) that the chapters no longer show."""
    found = second_meanings(texts)
    return {s: sorted(chapters - found.get(s, set())) for s, chapters in declared_reuses(notation).items()
            if s not in UNCHECKABLE and chapters - found.get(s, set())}


def local_letter_violations(notation: str) -> set[str]:
    """Local letters of the notation page that are also symbols of its tables, without being declared
    as a letter with more than one meaning."""
    tables = re.split(r"^## Symbols with more than one meaning\n", notation, flags=re.M)[0]
    defined = {c for cells in table_rows(tables) for c in re.findall(r"\$[^$]+\$", cells[0])}
    local = {c for cells in table_rows(section(notation, "Local letters")) for c in re.findall(r"\$[^$]+\$", cells[0])}
    return (local & defined) - set(declared_reuses(notation))


def undeclared_letters(texts: dict[str, str], notation: str) -> dict[str, set[str]]:
    """Letter -> chapters that use it in math although the notation page's math never shows it."""
    known = set().union(*(symbols(s) for s in math_spans(prose(notation))))
    missing = defaultdict(set)
    for chapter, text in texts.items():
        for span in math_spans(prose(text)):
            for letter in symbols(span) - known:
                missing[letter].add(chapter)
    return missing


# --- the book ---------------------------------------------------------------------------------------

def test_one_star_in_the_book_and_the_figures():
    found = {name: v for name, text in pages().items() if (v := star_violations(prose(text)))}
    found |= {p.name: v for p in sorted(PLOTS.glob("*.py")) if (v := star_violations(p.read_text()))}
    assert not found, f"write the star ^* (in plain text *), as book/notation.md does: {found}"


def test_the_notation_page_writes_the_star_it_prescribes():
    notation = NOTATION.read_text()
    assert "m^*" in notation and not star_violations(notation)


def test_nc2_forms_have_one_written_form_in_the_book():
    found = {name: v for name, text in pages().items() if (v := nc_name_violations(text))}
    found |= {"notation": v} if (v := nc_name_violations(NOTATION.read_text())) else {}
    assert not found, found


def test_nc2_forms_have_one_written_form_in_the_library():
    found = {str(p.relative_to(ROOT)): v for p in sorted((ROOT / "nclab").rglob("*.py"))
             if (v := docstring_nc_name_violations(p.read_text()))}
    assert not found, f"write NC2_H and NC2_W: {found}"


def test_one_import_path_per_public_name_in_the_book():
    texts = {p.name: p.read_text() for p in sorted(BOOK.glob("*.md"))}
    assert not import_path_violations(texts)


def test_the_book_uses_nclab_names_at_all():
    """The import-path check sees the book's many references (it would pass vacuously on none)."""
    texts = {p.name: p.read_text() for p in sorted(BOOK.glob("*.md"))}
    assert {"FeatureStats", "UFM"} <= set().union(*(import_paths(t) for t in texts.values()))


def test_every_letter_of_the_book_is_on_the_notation_page():
    missing = undeclared_letters(pages(), NOTATION.read_text())
    assert not missing, f"add these letters to book/notation.md (a table or Local letters): {dict(missing)}"


def test_no_letter_has_a_second_meaning_the_notation_page_does_not_declare():
    problems = reuse_violations(pages(), NOTATION.read_text())
    assert not problems, "\n".join(problems)


def test_every_declared_reuse_is_checked_or_said_to_be_uncheckable():
    declared = set(declared_reuses(NOTATION.read_text()))
    assert declared == (declared & set(SECOND_MEANINGS)) | set(UNCHECKABLE)
    assert set(UNCHECKABLE) <= declared


def test_every_declared_second_meaning_occurs():
    """A declared reuse that no chapter shows any more is a stale line of the notation page."""
    stale = stale_reuses(pages(), NOTATION.read_text())
    assert not stale, f"book/notation.md declares second meanings that these chapters no longer show: {stale}"


def test_local_letters_take_no_symbol_of_the_tables_unless_declared():
    notation = NOTATION.read_text()
    assert table_rows(section(notation, "Local letters")), "book/notation.md lists no local letters"
    assert not local_letter_violations(notation)


# --- each check can fail ----------------------------------------------------------------------------

def test_star_check_finds_a_star_written_otherwise():
    assert star_violations(prose("the margin $m^\\star(\\delta)$")) == ["\\star"]
    assert star_violations('ax.plot(x, y, label="p⋆(β)")') == ["⋆"]
    assert star_violations(prose("the margin $m^*(\\delta)$, and `m_star` in code")) == []


def test_nc_name_check_finds_other_written_forms():
    bad = "NC2-H falls; NC2$_W$ too; compare nc2_h with $NC2_{WH}$ and $\\text{NC2}_H$."
    assert len(nc_name_violations(bad)) == 5
    good = "$\\mathrm{NC2}_H$ and NC2 fall (rows `nc2_h` and `nc2_wh`).\n```python\nr.nc2_h\n```\n"
    assert nc_name_violations(good) == []
    assert docstring_nc_name_violations('"""NC2-W, the ETF distance."""') == ["NC2-W"]


def test_import_path_check_finds_a_class_reached_through_two_modules():
    texts = {"a.md": "stats = nc.metrics.FeatureStats(4, 6)",
             "b.md": "```python\nfrom nclab.features import FeatureStats\n```"}
    assert import_path_violations(texts) == {"FeatureStats": {"nclab.metrics", "nclab.features"}}
    assert import_path_violations({"a.md": "nc.ufm.UFM(3, 4, 5)", "b.md": "nclab.ufm.UFM"}) == {}


NOTATION_SAMPLE = """## Symbols with more than one meaning

| Symbol | Meanings | Chapters |
|---|---|---|
| $\\lambda$ | a penalty; an eigenvalue | 6; 7 |

## Local letters

| Symbol | Meaning | Chapters |
|---|---|---|
| $v$ | a vector | 2 |
"""


def test_reuse_check_finds_an_undeclared_second_meaning():
    texts = {"7": "an eigenvalue $\\mu$ and the mean $\\mu_k$; the Hessian $\\mathbf{H}$; $H(q)$",
             "3": "with $n$ seeds, $\\bar d \\pm t_{0.975,\\,n-1}\\, s_d/\\sqrt n$; $1 - 0.95^m$",
             "5": "halves $T_A$ and $T_B$; a share $a$, $\\log(a(K-1)/(1-a))$",
             "8": "accuracy $A$; $\\lambda_{\\max}$ but $\\lambda_W$ is fine"}
    problems = "\n".join(reuse_violations(texts, NOTATION_SAMPLE))
    for symbol in ("$\\mu$", "$H$", "$n$", "$d$", "$s$", "$m$", "$B$", "$\\mathrm{acc}$", "$A$"):
        assert symbol in problems, symbol
    assert "$\\lambda$ as an eigenvalue" in problems and "['8']" in problems    # declared for 7 only
    assert reuse_violations({"7": "$\\lambda_{\\max}/\\lambda$ and $\\lambda_H$"}, NOTATION_SAMPLE) == []


def test_stale_reuse_check_finds_a_second_meaning_no_chapter_shows():
    assert stale_reuses({"7": "$\\lambda_{\\max}$"}, NOTATION_SAMPLE) == {}
    assert stale_reuses({"7": "only $\\lambda_W$"}, NOTATION_SAMPLE) == {"$\\lambda$": ["7"]}


def test_local_letter_check_finds_a_local_letter_that_is_a_symbol_of_the_tables():
    sample = "## Data\n\n| Symbol | Meaning | Chapter |\n|---|---|---|\n| $v$ | a velocity | 1 |\n\n" + NOTATION_SAMPLE
    assert local_letter_violations(sample) == {"$v$"}
    assert local_letter_violations(NOTATION_SAMPLE) == set()


def test_completeness_check_finds_a_letter_the_notation_page_lacks():
    missing = undeclared_letters({"7": "a new letter $\\zeta$ beside $\\lambda_{\\max}$ and $v$"}, NOTATION_SAMPLE)
    assert dict(missing) == {"\\zeta": {"7"}}
