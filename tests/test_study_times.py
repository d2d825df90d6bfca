"""The chapters' study times: the committed data file matches the chapters, the counts and minutes are right."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from nclab.book import study_times as st

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.md"))
STALE = "nclab/book/study_times.json is out of date: run `make study-times`"


def test_the_data_file_holds_every_chapter_and_its_current_counts():
    data = json.loads(st.DATA.read_text())
    assert data["rates"] == st.RATES
    assert sorted(data["chapters"]) == [md.stem for md in CHAPTERS], STALE
    for md in CHAPTERS:
        stored = data["chapters"][md.stem]
        counted = st.count(md)
        assert {key: stored[key] for key in counted} == {**counted, "sections": dict(counted["sections"])}, \
            f"{md.name}: {STALE}"


def test_the_stored_minutes_follow_from_the_stored_counts():
    data = json.loads(st.DATA.read_text())["chapters"]
    for name, chapter in st.load().items():
        assert data[name]["reading_minutes"] == chapter.reading_minutes, STALE
        assert data[name]["study_minutes"] == chapter.study_minutes, STALE
        assert chapter.run_seconds is None or chapter.run_seconds > 0
    # chapters 1-8 have a recorded run time: their openings state it
    assert all(c.run_seconds is not None for c in st.load().values() if c.number <= 8)


SMALL = '''---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# 1. A title of four words

Two $x^2$ words {cite:p}`key`.

```bash
these five words are code
```

## The idea

$$
a + b
$$

One two three.

### Exercise 1.1: a sum (core)

```{code-cell} ipython3
nc.widgets.quick_check("q", ["a", "b"], 0, "e")
```

### Exercise 1.2: a product (challenge)

## Questions

1. **(core)** Why?
   The line after **(open)** does not count.

2. **(open)** How?

(a) **(challenge)** And?

:::{admonition} Solution
:class: dropdown
Because.
:::

## The idea
Last.
'''


def test_counting_by_hand(tmp_path):
    md = tmp_path / "01_small.md"
    md.write_text(SMALL)
    counted = st.count(md)
    # words: "A title of four words" (5, the "1." is no word) + "Two words role" (3); code and math out;
    # "The idea" section: "One two three" (3) + the two exercise headings "Exercise a sum core" and
    # "Exercise a product challenge" (4 + 4) + "Last" (1) from its second occurrence; Questions:
    # "core Why The line after open does not count" (9) + "open How" (2) + "a challenge And" (3)
    # + "Solution" "Because" (2, the option line removed)
    assert counted["sections"] == [("", 8), ("The idea", 12), ("Questions", 16)]
    assert counted["words"] == 36
    assert counted["questions"] == {"core": 1, "challenge": 1, "open": 1}
    assert counted["exercises"] == {"core": 1, "challenge": 1, "open": 0}
    assert counted["quick_checks"] == 1


def _chapter(**changes) -> st.Chapter:
    fields = dict(name="03_x", words=500, sections=(("", 100), ("Core: a", 250), ("Advanced: b", 150)),
                  questions={"core": 2, "challenge": 1, "open": 0}, exercises={"core": 1, "challenge": 0, "open": 0},
                  quick_checks=1, run_seconds=60.0, run_recorded="2026-01-01")
    return st.Chapter(**{**fields, **changes})


def test_minutes_by_hand():
    chapter = _chapter()
    # 500 words / 50 = 10, run 1, one quick check 2: 13 -> 15; + 3 questions x 10 + 1 exercise x 15 = 58 -> 60
    assert chapter.reading_minutes == 15 and chapter.study_minutes == 60
    # core questions only: 13 + 20 + 15 = 48 -> 50; without the advanced section: 350 / 50 = 7, 45 -> 45
    assert st.part_minutes(chapter, questions=("core",)) == 50
    assert st.part_minutes(chapter, questions=("core",), skip_sections="Advanced") == 45
    assert _chapter(run_seconds=None).reading_minutes == 10   # 12 -> 10: no run time recorded adds nothing
    assert st.duration(45) == "45 minutes" and st.duration(60) == "1 hour" and st.duration(130) == "2 hours 10 minutes"


def _cache(folder: Path, rows) -> Path:
    folder.mkdir()
    db = sqlite3.connect(folder / "global.db")
    db.execute("create table nbcache (pk integer primary key, hashkey text, uri text, description text, data json, "
               "created datetime, accessed datetime)")
    db.executemany("insert into nbcache (hashkey, uri, description, data, created, accessed) values (?, ?, '', ?, ?, ?)",
                   [(str(i), uri, data, created, created) for i, (uri, data, created) in enumerate(rows)])
    db.commit()
    db.close()
    return folder


def test_run_times_come_from_the_newest_record_of_each_chapter(tmp_path):
    cache = _cache(tmp_path / "cache", [
        ("/b/01_a.md", '{"execution_seconds": 20.04}', "2026-02-01 10:00:00.0"),
        ("/b/01_a.md", '{"execution_seconds": 15.06}', "2026-03-01 10:00:00.0"),
        ("/b/02_b.md", '{"execution_seconds": 9.0}', "2026-01-15 08:00:00.0"),
        ("/b/03_c.md", "{}", "2026-03-02 10:00:00.0"),
    ])
    assert st.recorded_run_times(cache) == {"01_a": (15.1, "2026-03-01"), "02_b": (9.0, "2026-01-15")}
    assert st.recorded_run_times(tmp_path / "nowhere") == {}


def test_a_chapter_without_a_record_keeps_its_earlier_run_time(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    for name in ("01_a", "02_b", "03_c"):
        (book / f"{name}.md").write_text(SMALL)
    cache = _cache(tmp_path / "cache", [("/x/01_a.md", '{"execution_seconds": 12.0}', "2026-03-01 10:00:00")])
    previous = {"chapters": {"01_a": {"run_seconds": 99.0, "run_recorded": "2025-01-01"},
                             "02_b": {"run_seconds": 7.0, "run_recorded": "2025-01-02"}}}
    chapters = st.measure(book, cache, previous)["chapters"]
    assert [(c["run_seconds"], c["run_recorded"]) for c in chapters.values()] == [
        (12.0, "2026-03-01"), (7.0, "2025-01-02"), (None, None)]
    st.write(st.measure(book, cache, previous), tmp_path / "out.json")
    loaded = st.load(tmp_path / "out.json")
    assert loaded["01_a"].sections == (("", 8), ("The idea", 12), ("Questions", 16))
    assert loaded["01_a"].study_minutes == chapters["01_a"]["study_minutes"]


def test_a_plan_adds_its_parts_per_week():
    chapters = {"01_x": _chapter(name="01_x"), "03_x": _chapter()}
    table = st.plan_table([[st.Part(1), st.Part(3, skip_sections="Advanced", note="core")],
                           [st.Part(3, questions=(), exercises=(), note="reading")]], chapters)
    lines = table.splitlines()
    assert lines[2] == "| 1 | 1, 3 (core) | 50 + 45 | 1.6 |"
    assert lines[3] == "| 2 | 3 (reading) | 15 | 0.2 |"
    assert lines[4] == "| all | | 110 min | 1.8 |"


def test_a_plan_names_only_existing_chapters():
    with pytest.raises(ValueError, match="^chapter must be the number of one chapter of the study times, got 4$"):
        st.Part(4).minutes({"01_x": _chapter(name="01_x")})


def test_the_teaching_texts_add_up_the_data(tmp_path):
    chapters = {"01_x": _chapter(name="01_x", run_seconds=30.0), "02_x": _chapter(name="02_x", run_seconds=90.0),
                "03_x": _chapter(name="03_x", run_seconds=None)}
    data = {"rates": st.RATES, "chapters": {n: st._record(c) for n, c in chapters.items()}}
    st.write(data, tmp_path / "data.json")
    texts = st.teaching_texts({"short": [[st.Part(1)], [st.Part(2)]]}, tmp_path / "data.json")
    assert texts["run_total"] == "2.0 minutes" and texts["run_slowest"] == "90 s"
    assert texts["run_slowest_chapter"] == "chapter 2" and texts["run_unrecorded"] == "chapter 3"
    # reading: 12.5 -> 15 (halves up), 13.5 -> 15, 12 -> 10: 40 minutes; with the three questions and
    # the exercise (45 minutes): 57.5 -> 60, 58.5 -> 60, 57 -> 55
    assert texts["reading_total"] == "40 minutes"
    assert texts["study_table"].splitlines()[-1].endswith("| 40 (40 minutes) | 175 (2 hours 55 minutes) |")
    # core questions and exercises only (35 minutes): 47.5 -> 50, 48.5 -> 50
    assert texts["plan_short"].splitlines()[2:] == ["| 1 | 1 | 50 | 0.8 |", "| 2 | 2 | 50 | 0.8 |",
                                                    "| all | | 100 min | 1.7 |"]
