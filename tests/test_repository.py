"""Where the published results are fetched from: the repository's raw files, or ``$NCLAB_RESULTS_URL``."""

import pytest

from nclab import bundle
from nclab.book import repository

DEFAULT = "https://raw.githubusercontent.com/nclab-book/nclab/main/results"


def test_without_the_variable_the_results_are_the_repositorys_raw_files(monkeypatch):
    monkeypatch.delenv("NCLAB_RESULTS_URL", raising=False)
    assert repository.REPOSITORY == "https://github.com/nclab-book/nclab" and repository.BRANCH == "main"
    assert repository.results_url() == DEFAULT


def test_an_empty_variable_counts_as_unset(monkeypatch):
    monkeypatch.setenv("NCLAB_RESULTS_URL", "")
    assert repository.results_url() == DEFAULT


@pytest.mark.parametrize("url", ["file:///srv/nclab/results", "https://mirror.example.org/nclab/results"])
def test_the_variable_replaces_the_default(monkeypatch, url):
    monkeypatch.setenv("NCLAB_RESULTS_URL", url)
    assert repository.results_url() == url


def test_a_repository_outside_github_serves_raw_files_under_its_own_url(monkeypatch):
    monkeypatch.delenv("NCLAB_RESULTS_URL", raising=False)
    monkeypatch.setattr(repository, "REPOSITORY", "https://gitlab.example.org/nclab/nclab/")
    monkeypatch.setattr(repository, "BRANCH", "pages")
    assert repository.results_url() == "https://gitlab.example.org/nclab/nclab/raw/pages/results"
    monkeypatch.setattr(repository, "REPOSITORY", "https://github.com/someone/fork/")
    assert repository.results_url() == "https://raw.githubusercontent.com/someone/fork/pages/results"
    assert repository.install_url() == "git+https://github.com/someone/fork/"


def test_the_librarys_download_url_is_the_books_results_url(monkeypatch):
    monkeypatch.delenv("NCLAB_RESULTS_URL", raising=False)
    assert bundle.RESULTS_URL == bundle.results_url() == repository.results_url() == DEFAULT
    monkeypatch.setenv("NCLAB_RESULTS_URL", "file:///srv/nclab/results")
    assert bundle.results_url() == repository.results_url() == "file:///srv/nclab/results"
