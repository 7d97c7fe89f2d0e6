# The two set-up commands of the README:
#   make book   creates .venv, installs everything (constraints.txt) and builds _build/html
#   make test   does the same, then runs the whole test suite
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

.PHONY: install book test lint release clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

book: install
	$(BIN)/jupyter-book build . -W -n --keep-going

test: book
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check course_lib tests benchmarks

release: install
	$(BIN)/course release

clean:
	rm -rf _build
