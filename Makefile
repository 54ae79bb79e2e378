# Two commands do all the set-up on a fresh machine:
#   make run    install (first time) and process the bundled sample inbox end to end (demo)
#   make test   install (first time) and run the whole test suite, checks included
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run serve check test test-fast eval benchmark clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) sh scripts/install.sh
	touch $@

run: install
	$(BIN)/claims-ocr run --demo --once

serve: install
	$(BIN)/claims-ocr run --demo

# Lint, formatting, architecture contracts (import-linter) and types (mypy).
check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

# The whole suite: checks, unit, integration and end-to-end tests.
test: check
	$(BIN)/pytest

# The edit loop: checks, unit and integration tests (no end-to-end runs).
test-fast: check
	$(BIN)/pytest tests/unit tests/integration

benchmark: install
	$(BIN)/python scripts/benchmark_ocr.py

# Merchant-split cross-validated field accuracy, reliability tables, STP and the
# auto-submit threshold over the 400 shared receipts (OCR cached in data/eval/), then
# invoice-number recall and precision against tests/data/sroie_invoice_numbers.csv, and
# the learned total scorer against the rules (fails if the shipped model is stale).
# After a change to extraction, refit the shipped files first, in this order:
# $(BIN)/python scripts/train_candidate_scorer.py && $(BIN)/python scripts/calibrate_confidence.py
eval: install
	$(BIN)/python scripts/eval_sroie.py
	$(BIN)/python scripts/train_candidate_scorer.py --check
	$(BIN)/python scripts/eval_invoice_numbers.py
	$(BIN)/python scripts/eval_foreign.py

# Build output only: never data/ (the ledger, blobs, audit log and archive live there).
clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -type d -prune -not -path './data/*' -exec rm -rf {} +
