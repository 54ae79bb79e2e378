# Two commands do all the set-up on a fresh machine:
#   make run    install (first time) and process the bundled sample inbox end to end
#   make test   install (first time) and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run serve test eval benchmark clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) sh scripts/install.sh
	touch $@

run: install
	$(BIN)/claims-ocr run --once

serve: install
	$(BIN)/claims-ocr run

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

benchmark: install
	$(BIN)/python scripts/benchmark_ocr.py

eval: install
	$(BIN)/python scripts/eval_sroie.py

clean:
	rm -rf $(VENV) data
