"""How long each chapter takes to study: one measurement, stored in ``study_times.json``, read by the book.

For every chapter ``book/NN_*.md`` the file holds what was counted in its source and how long its
code ran:

- ``words``: the words of its markdown cells (worked solutions and folded answers included), with
  code blocks, math, directive names and options, and roles (a glued number, a citation) left out or counted
  as one word; ``sections`` gives the same count for each ``##`` section, the text before the first
  one under ``""`` (a heading that occurs twice adds up under it);
- ``questions``: the questions of the chapter, by kind (**(core)**, **(challenge)**, **(open)**):
  the paragraphs that start with the kind in bold, after an optional ``1.`` or ``(a)``;
- ``exercises``: the coding exercises by kind, the ``### Exercise ...`` headings, whose title ends
  with the kind in parentheses;
- ``quick_checks``: the code cells that call ``quick_check(`` (:func:`nclab.widgets.quick_check`);
- ``run_seconds``: the execution time of the chapter notebook that the book build's execution
  cache recorded (``_build/.jupyter_cache/global.db``, table ``nbcache``, field
  ``execution_seconds``; the newest record of the chapter), and ``run_recorded``, the day of that
  record. A chapter that the cache holds no record of keeps the time the file held before.

From these counts the file's ``reading_minutes`` and ``study_minutes`` follow by assumed rates
(:data:`RATES`): reading and running take the words at 50 words per minute, plus the run time,
plus 2 minutes per quick check; the study time adds 10 minutes per question and 15 per exercise.
Both are rounded to 5 minutes. :func:`part_minutes` computes the same for a part of a chapter
(its core sections, its core questions), which the course plans of the teachers' page add up.

Regenerate the file after editing a chapter, and after ``make book`` to record its run times::

    python -m nclab.book.study_times          # or: make study-times

The chapters glue their own study time from the file (:func:`glue`); the teachers' page shows the
table of every chapter (:func:`chapter_table`) and course plans (:func:`plan_table`).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DATA", "RATES", "KINDS", "Chapter", "Part", "count", "recorded_run_times", "measure", "write",
           "load", "part_minutes", "duration", "glue", "chapter_table", "plan_table", "teaching_texts",
           "glue_texts", "main"]

#: The committed data file (shipped with the package, so that a notebook can read it anywhere).
DATA = Path(__file__).with_name("study_times.json")
#: The assumed conversion of the counts into minutes.
RATES = {"words_per_minute": 50, "minutes_per_quick_check": 2, "minutes_per_question": 10,
         "minutes_per_exercise": 15}
#: The kinds of questions and exercises, as the chapters mark them.
KINDS = ("core", "challenge", "open")

_QUESTION = re.compile(r"^(?:\d+\.\s+|\([a-z]\)\s+)?\*\*\((core|challenge|open)\)\*\*")
_EXERCISE = re.compile(r"^### Exercise .*\((core|challenge|open)\)\s*$", flags=re.M)
_WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")


def _round5(minutes: float) -> int:
    """To the nearest multiple of 5, halves up (12.5 -> 15)."""
    return int(5 * math.floor(minutes / 5 + 0.5))


def _words(text: str) -> int:
    """The words of markdown text: code blocks, math and directive options removed, a role one word."""
    text = re.sub(r"^```.*?^```", " ", text, flags=re.S | re.M)      # code shown as text, glue blocks
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)               # display math
    text = re.sub(r"\$[^$\n]*\$", " ", text)                           # inline math
    text = re.sub(r"^:[a-z-]+:.*$", " ", text, flags=re.M)             # directive options
    text = re.sub(r"^:{3,}\{[a-z:-]+\}", " ", text, flags=re.M)         # a directive's name (its title stays)
    text = re.sub(r"\{[a-z:-]+\}`[^`]*`", " role ", text)              # {glue:text}`name`, {cite:p}`key`
    return len(_WORD.findall(text))


def _sections(text: str) -> list[tuple[str, int]]:
    parts = re.split(r"^## (.*)$", text, flags=re.M)
    found = {"": _words(parts[0])}
    for i in range(1, len(parts), 2):
        heading = parts[i].strip()
        found[heading] = found.get(heading, 0) + _words(parts[i + 1])
    return list(found.items())


def count(md: str | Path) -> dict:
    """What :func:`measure` counts in one chapter source (a MyST notebook): words, sections,
    questions, exercises and quick checks, as the module's docstring defines them."""
    import jupytext

    notebook = jupytext.read(Path(md), fmt="md:myst")
    markdown = "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    paragraphs = re.split(r"\n\s*\n", markdown)
    questions = dict.fromkeys(KINDS, 0)
    for paragraph in paragraphs:
        match = _QUESTION.match(paragraph.strip())
        if match:
            questions[match.group(1)] += 1
    exercises = dict.fromkeys(KINDS, 0)
    for kind in _EXERCISE.findall(markdown):
        exercises[kind] += 1
    sections = _sections(markdown)
    quick_checks = sum("quick_check(" in c.source for c in notebook.cells if c.cell_type == "code")
    return {"words": sum(w for _, w in sections), "sections": sections, "questions": questions,
            "exercises": exercises, "quick_checks": quick_checks}


def recorded_run_times(cache: str | Path) -> dict[str, tuple[float, str]]:
    """Chapter name -> (seconds, day) of its newest execution in a jupyter-cache folder ({} if there is none)."""
    db = Path(cache) / "global.db"
    if not db.is_file():
        return {}
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = connection.execute("select uri, data, created from nbcache order by created").fetchall()
    finally:
        connection.close()
    found = {}
    for uri, data, created in rows:   # oldest first: a newer record of the same chapter replaces it
        seconds = json.loads(data or "{}").get("execution_seconds")
        if seconds is not None:
            found[Path(uri).stem] = (round(float(seconds), 1), str(created)[:10])
    return found


@dataclass(frozen=True)
class Chapter:
    """The measurement of one chapter, as stored in the data file.

    Attributes
    ----------
    name : the chapter's file name without ``.md``, e.g. "01_label_smoothing"
    words, sections, questions, exercises, quick_checks : the counts of :func:`count`
    run_seconds : the recorded run time of its notebook (None when no build recorded one)
    run_recorded : the day of that record, "YYYY-MM-DD" (None likewise)
    """

    name: str
    words: int
    sections: tuple[tuple[str, int], ...]
    questions: dict
    exercises: dict
    quick_checks: int
    run_seconds: float | None
    run_recorded: str | None

    @property
    def number(self) -> int:
        return int(self.name[:2])

    @property
    def reading_minutes(self) -> int:
        """Words at the assumed pace, plus the run time and the quick checks, rounded to 5 minutes."""
        return part_minutes(self, questions=(), exercises=())

    @property
    def study_minutes(self) -> int:
        """Reading and running, every question and every exercise, rounded to 5 minutes."""
        return part_minutes(self)


def part_minutes(chapter: Chapter, *, questions: Sequence[str] = KINDS, exercises: Sequence[str] = KINDS,
                 skip_sections: str | None = None) -> int:
    """The study time of a part of a chapter, in minutes rounded to 5.

    Parameters
    ----------
    chapter : the chapter's measurement
    questions, exercises : the kinds included (default all; ``()`` for none)
    skip_sections : leave out the words of every ``##`` section whose heading starts with this
        text (e.g. "Advanced"); the run time is always the whole chapter's
    """
    words = sum(w for heading, w in chapter.sections
                if not (skip_sections and heading.startswith(skip_sections)))
    minutes = (words / RATES["words_per_minute"] + (chapter.run_seconds or 0.0) / 60
               + RATES["minutes_per_quick_check"] * chapter.quick_checks
               + RATES["minutes_per_question"] * sum(chapter.questions[k] for k in questions)
               + RATES["minutes_per_exercise"] * sum(chapter.exercises[k] for k in exercises))
    return _round5(minutes)


def _record(chapter: Chapter) -> dict:
    return {"words": chapter.words, "sections": dict(chapter.sections),
            "questions": chapter.questions, "exercises": chapter.exercises,
            "quick_checks": chapter.quick_checks, "run_seconds": chapter.run_seconds,
            "run_recorded": chapter.run_recorded, "reading_minutes": chapter.reading_minutes,
            "study_minutes": chapter.study_minutes}


def measure(book: str | Path, cache: str | Path | None = None, previous: dict | None = None) -> dict:
    """The data file's content for every chapter ``NN_*.md`` of the folder ``book``.

    ``cache`` is the book build's jupyter-cache folder; a chapter it holds no record of keeps the
    run time of ``previous`` (the file's earlier content), else has none.
    """
    recorded = recorded_run_times(cache) if cache is not None else {}
    before = (previous or {}).get("chapters", {})
    chapters = {}
    for md in sorted(Path(book).glob("[0-9][0-9]_*.md")):
        seconds, day = recorded.get(md.stem, (None, None))
        if seconds is None and md.stem in before:
            seconds, day = before[md.stem].get("run_seconds"), before[md.stem].get("run_recorded")
        counts = count(md)
        chapter = Chapter(md.stem, counts["words"], tuple(map(tuple, counts["sections"])), counts["questions"],
                          counts["exercises"], counts["quick_checks"], seconds, day)
        chapters[md.stem] = _record(chapter)
    return {"rates": dict(RATES), "chapters": chapters}


def write(data: dict, path: str | Path = DATA) -> None:
    """Write the data file: JSON with one line per chapter, so that a change shows as that chapter's line."""
    chapters = ",\n".join(f"  {json.dumps(name)}: {json.dumps(record, ensure_ascii=False)}"
                          for name, record in data["chapters"].items())
    Path(path).write_text(f'{{\n "rates": {json.dumps(data["rates"])},\n "chapters": {{\n{chapters}\n }}\n}}\n')


def load(path: str | Path = DATA) -> dict[str, Chapter]:
    """Chapter name -> :class:`Chapter`, from the data file."""
    data = json.loads(Path(path).read_text())
    return {name: Chapter(name, c["words"], tuple(c["sections"].items()), c["questions"],
                          c["exercises"], c["quick_checks"], c["run_seconds"], c["run_recorded"])
            for name, c in data["chapters"].items()}


def duration(minutes: int) -> str:
    """Minutes as text: "35 minutes", "1 hour", "2 hours 10 minutes"."""
    hours, rest = divmod(int(minutes), 60)
    parts = ([f"{hours} hour" + ("s" if hours > 1 else "")] if hours else []) + \
            ([f"{rest} minutes"] if rest or not hours else [])
    return " ".join(parts)


def _seconds(chapter: Chapter) -> str:
    return "not recorded" if chapter.run_seconds is None else f"{chapter.run_seconds:.0f} s"


def glue(name: str, path: str | Path = DATA) -> None:
    """Glue one chapter's study time for its page (no-op outside myst-nb, e.g. in Colab).

    Names: ``study_reading`` (reading and running), ``study_total`` (with every question and
    exercise), ``study_run`` (the recorded run time, e.g. "15 s") and ``study_recorded`` (its day).
    """
    chapter = load(path)[name]
    try:
        from myst_nb import glue as myst_glue
    except ImportError:   # the roles are not rendered outside the book anyway
        return
    from .evidence import Text
    texts = {"study_reading": duration(chapter.reading_minutes), "study_total": duration(chapter.study_minutes),
             "study_run": _seconds(chapter), "study_recorded": chapter.run_recorded or "never"}
    for key, text in texts.items():
        myst_glue(key, Text(text), display=False)


def chapter_table(chapters: dict[str, Chapter]) -> str:
    """A markdown table of every chapter: the counts, the run time and both study times."""
    rows = ["| Chapter | Prose (words) | Questions (core) | Exercises | Quick checks | Run time (s) "
            "| Reading and running (min) | With questions and exercises (min) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in chapters.values():
        run = "not recorded" if c.run_seconds is None else f"{c.run_seconds:.0f}"
        rows.append(f"| {c.name} | {c.words} | {sum(c.questions.values())} ({c.questions['core']}) "
                    f"| {sum(c.exercises.values())} | {c.quick_checks} | {run} | {c.reading_minutes} "
                    f"| {c.study_minutes} |")
    total_reading = sum(c.reading_minutes for c in chapters.values())
    total = sum(c.study_minutes for c in chapters.values())
    rows.append(f"| all | | | | | | {total_reading} ({duration(total_reading)}) | {total} ({duration(total)}) |")
    return "\n".join(rows)


@dataclass(frozen=True)
class Part:
    """What a course plan takes of one chapter.

    Attributes
    ----------
    chapter : the chapter's number, 1 to 10
    questions, exercises : the kinds of questions and exercises assigned (default: core only)
    skip_sections : leave out the ``##`` sections whose heading starts with this text
    note : a few words on what is left out, shown in the plan
    """

    chapter: int
    questions: tuple[str, ...] = ("core",)
    exercises: tuple[str, ...] = ("core",)
    skip_sections: str | None = None
    note: str = ""

    def minutes(self, chapters: dict[str, Chapter]) -> int:
        found = [c for c in chapters.values() if c.number == self.chapter]
        if len(found) != 1:
            raise ValueError(f"chapter must be the number of one chapter of the study times, got {self.chapter!r}")
        (chapter,) = found
        return part_minutes(chapter, questions=self.questions, exercises=self.exercises,
                            skip_sections=self.skip_sections)

    def label(self) -> str:
        return f"{self.chapter}" + (f" ({self.note})" if self.note else "")


def plan_table(weeks: Sequence[Sequence[Part]], chapters: dict[str, Chapter]) -> str:
    """A markdown table of a course plan: per week the parts, their minutes and the week's hours.

    A week's time is the sum of its parts' minutes (each rounded to 5, as the chapter table);
    the last row is the whole plan.
    """
    rows = ["| Week | Chapters | Minutes per chapter | Hours that week |", "|---|---|---|---:|"]
    total = 0
    for number, week in enumerate(weeks, start=1):
        minutes = [part.minutes(chapters) for part in week]
        total += sum(minutes)
        rows.append(f"| {number} | {', '.join(p.label() for p in week)} | "
                    f"{' + '.join(str(m) for m in minutes)} | {sum(minutes) / 60:.1f} |")
    rows.append(f"| all | | {total} min | {total / 60:.1f} |")
    return "\n".join(rows)


def teaching_texts(plans: dict[str, Sequence[Sequence[Part]]], path: str | Path = DATA) -> dict[str, str]:
    """What the teachers' page glues: the chapter table, one table per course plan, the run times.

    Names: ``study_table``; ``plan_<name>`` for each plan; ``run_total`` (all recorded run times
    together), ``run_slowest`` and ``run_slowest_chapter``, ``run_unrecorded`` (the chapters with
    no recorded run time, or "none"), ``reading_total`` and ``study_total_all`` (the sums of the
    two study-time columns).
    """
    chapters = load(path)
    texts = {"study_table": chapter_table(chapters)}
    texts.update({f"plan_{name}": plan_table(weeks, chapters) for name, weeks in plans.items()})
    recorded = [c for c in chapters.values() if c.run_seconds is not None]
    slowest = max(recorded, key=lambda c: c.run_seconds)
    texts.update({
        "run_total": f"{sum(c.run_seconds for c in recorded) / 60:.1f} minutes",
        "run_slowest": f"{slowest.run_seconds:.0f} s", "run_slowest_chapter": f"chapter {slowest.number}",
        "run_unrecorded": ", ".join(f"chapter {c.number}" for c in chapters.values() if c.run_seconds is None)
        or "none",
        "reading_total": duration(sum(c.reading_minutes for c in chapters.values())),
        "study_total_all": duration(sum(c.study_minutes for c in chapters.values())),
    })
    return texts


def glue_texts(texts: dict[str, str]) -> None:
    """Glue texts for a page (no-op outside myst-nb): a table as markdown (``{glue:md}``), the rest as text."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    from IPython.display import Markdown

    from .evidence import Text
    for name, text in texts.items():
        myst_glue(name, Markdown(text) if text.startswith("|") else Text(text), display=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Recount every chapter and write the data file (``python -m nclab.book.study_times``)."""
    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", default=str(root / "book"), help="the folder of the chapter sources")
    parser.add_argument("--cache", default=str(root / "_build" / ".jupyter_cache"),
                        help="the book build's execution cache (run times)")
    parser.add_argument("--out", default=str(DATA), help="the data file to write")
    args = parser.parse_args(argv)
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else None
    write(measure(args.book, args.cache, previous), out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
