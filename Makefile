PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

# The venv is rebuilt only when pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/synth-ai demo

test: $(STAMP)
	$(BIN)/ruff check synth_ai examples tests
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check synth_ai examples tests
	$(BIN)/ruff format --check synth_ai examples tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
