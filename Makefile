# The two set-up commands of the README:
#   make book   creates .venv, installs everything (constraints.txt) and builds _build/html
#   make test   does the same, then runs the whole test suite
#   make pdf    the whole book as one PDF, _build/pdf/book.pdf (Chromium), and the site's button to it
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The MNIST t10k files, when a shared data folder sits next to the repository.
COURSE_DATA_DIR ?= $(wildcard $(abspath ../shared/data))
export COURSE_DATA_DIR
# nbgrader shells out to alembic: the venv's bin comes first.
export PATH := $(abspath $(BIN)):$(PATH)
PYTEST_ARGS ?=
# npm packages of the tests (axe-core, the accessibility checker run in the browser), kept in the venv.
NODE_DIR := $(VENV)/node
AXE_CORE := axe-core@4.14.1

.PHONY: install book pdf test lint release clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

book: install
	$(BIN)/jupyter-book build . -W -n --keep-going

# The book as one HTML page printed by Chromium (book/pdf.py), then the site again: every page gets
# the "Download the book (PDF)" button and _build/html/book.pdf. Not part of `make book` (it adds two to
# three minutes on two cores); `make test` makes it when Chromium is there (always under CI), so that the
# PDF tests run.
pdf: book
	$(BIN)/python book/pdf.py
	$(BIN)/jupyter-book build . -W -n --keep-going

$(NODE_DIR)/.installed: Makefile
	@if command -v npm >/dev/null; then \
	  mkdir -p $(NODE_DIR) && { npm install --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error $(AXE_CORE) \
	  && touch $@ || echo "npm install $(AXE_CORE) failed: the accessibility test cannot run"; }; \
	else echo "npm not found: the accessibility test (axe-core) cannot run"; fi

test: book $(NODE_DIR)/.installed
	@if command -v chromium >/dev/null || [ -n "$$CI" ]; then $(MAKE) --no-print-directory pdf; \
	else echo "chromium not found: no PDF, its tests are skipped"; fi
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check course_lib tests benchmarks

release: install
	$(BIN)/course release

clean:
	rm -rf _build
