# Two commands do all the set-up on a fresh machine with Python 3.11: `make demo`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project's metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hokusai demo --scenario seed-outage

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/ack_latency.py
	$(BIN)/python bench/ack_latency.py --burst
	$(BIN)/python bench/diagnose.py
	$(BIN)/python bench/redaction.py
	$(BIN)/python bench/incidents.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/watch.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
