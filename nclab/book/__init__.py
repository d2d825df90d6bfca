"""The book's machinery: what turns the library into the chapters of *Label Smoothing through Neural
Collapse*, and nothing a class needs to use the library.

It is built on the library and imports it; the library never imports this subpackage (a test
checks the import graph).

- :mod:`nclab.book.tables` the tables the chapters print: per-seed tables of the sweep (chapters
  2-5) and the solver table of chapter 6
- :mod:`nclab.book.evidence` the numbers and claims that the prose of chapters 2-5 quotes, glued
  into the pages
- :mod:`nclab.book.scales` the paper's claims at several scales (quick sweep, bundles) in one table
- :mod:`nclab.book.calibration_link` chapters 5 and 10 at every scale: whether a tuned δ makes
  temperature scaling unnecessary, and whether collapse goes with calibration
- :mod:`nclab.book.study` the pre-registered real-image study, analysed as its pre-registration fixes
- :mod:`nclab.book.conditioning` chapter 7's tables of condition numbers and step counts, and the
  claims its prose makes
- :mod:`nclab.book.study_times` how long each chapter takes to study: words, questions, exercises
  and run time, measured into ``study_times.json``, glued into the chapters and the teachers' page
- :mod:`nclab.book.repository` where the book lives on the web: its repository, install and
  published-results URLs (written by ``make sync``)

Submodules are imported on first use: ``nc.book.evidence.chapter2(...)`` works after
``import nclab as nc``.
"""

from __future__ import annotations

from .. import _imported_on_first_use

_SUBMODULES = ("tables", "evidence", "scales", "calibration_link", "study", "conditioning", "study_times", "repository")

__all__ = list(_SUBMODULES)


__getattr__ = _imported_on_first_use(__name__, dict.fromkeys(_SUBMODULES))


def __dir__():
    return sorted(__all__)
