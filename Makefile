# emailsrc developer commands. Every target creates the virtual environment it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help install test test-quick lint demo bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install emailsrc with its dev tools

test: $(STAMP) ## run the whole test suite, slow crash loops included (what CI runs)
	$(BIN)/pytest

test-quick: $(STAMP) ## the suite without the tests marked slow
	$(BIN)/pytest -m "not slow"

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo: $(STAMP) ## dry-run backfill of the bundled sample exports
	$(BIN)/emailsrc backfill sample_exports/*.jsonl sample_exports/customerio_*.csv --dry-run --id-namespace demo

# Export sizes (records) for `make bench`; RSS_SIZES adds emailsrc-only runs, e.g. 5000000.
SIZES     ?= 100000,1000000
RSS_SIZES ?=

bench: $(STAMP) ## benchmark against the segment-analytics-python baseline (prints a table)
	$(BIN)/python bench/run.py --sizes $(SIZES) $(if $(RSS_SIZES),--rss-sizes $(RSS_SIZES))

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
