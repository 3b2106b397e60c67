# Everything a fresh machine needs: `make demo` and `make test` build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test check bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[postgresql,mysql,celery,dev]'
	touch $(STAMP)

demo: install
	mkdir -p demo
	$(BIN)/rowvault demo --records 100000 --db demo/demo.db

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile

check: install
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/restore.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
