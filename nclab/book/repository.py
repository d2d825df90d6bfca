"""Where the book lives on the web: its repository URL, the chapters' install URL and where its
published results are served (chapters 2-5, 9).

:data:`REPOSITORY` and :data:`BRANCH` are written by ``make sync`` from ``repository`` in the book's
``_config.yml``, the one place the URL is set by hand; the same command rewrites the chapters'
install cells and the library's default download URL (:data:`nclab.bundle.RESULTS_URL`, which is
:func:`results_url` without ``$NCLAB_RESULTS_URL``), and tests check that they all agree.
"""

from __future__ import annotations

import os

from .. import settings

__all__ = ["REPOSITORY", "BRANCH", "results_url", "install_url"]

# Set by `make sync` from _config.yml (repository.url, repository.branch); do not edit by hand.
REPOSITORY = "https://github.com/nclab-book/nclab"
BRANCH = "main"


def install_url() -> str:
    """What ``pip install`` takes to install nclab from the repository (the chapters' install cell)."""
    return f"git+{REPOSITORY}"


def results_url() -> str:
    """Where the published results (``results/`` of the repository) are served.

    ``$NCLAB_RESULTS_URL`` when set (a mirror, or a ``file://`` URL of a local copy); else the raw
    files of :data:`REPOSITORY` on its branch :data:`BRANCH`.

    Example
    -------
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ):  # the environment is restored afterwards
    ...     _ = os.environ.pop("NCLAB_RESULTS_URL", None)
    ...     print(results_url())
    ...     os.environ["NCLAB_RESULTS_URL"] = "file:///srv/nclab/results"
    ...     print(results_url())
    https://raw.githubusercontent.com/nclab-book/nclab/main/results
    file:///srv/nclab/results
    """
    if REPOSITORY.startswith("https://github.com/"):
        owner_repo = REPOSITORY.removeprefix("https://github.com/").strip("/")
        default = f"https://raw.githubusercontent.com/{owner_repo}/{BRANCH}/results"
    else:
        default = f"{REPOSITORY.rstrip('/')}/raw/{BRANCH}/results"
    return settings.results_url(default)
