PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PUBLISHED := bench/.cache/published/bin/python

.PHONY: demo test bench lint clean

# The venv is rebuilt only when pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/synth-ai demo

# The published synth-ai 0.2.24 in its own virtualenv (made once): the compatibility tests run
# apps and the check against it.
$(PUBLISHED): | $(STAMP)
	$(BIN)/python -c "from bench.framework_overhead import ensure_published; ensure_published()"

test: $(STAMP) $(PUBLISHED)
	$(BIN)/ruff check synth_ai examples tests bench modal_entry.py
	$(BIN)/mypy synth_ai
	$(BIN)/python -m pytest

# Each script measures ratios in one run and rewrites its section of bench/RESULTS.md.
# wrk (a Debian package) cross-checks the in-repo load generator, and valgrind counts each
# server's instructions per request; both are installed when missing.
bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| echo "wrk could not be installed: the framework bench runs without its cross-check"
	command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind) \
		|| echo "valgrind could not be installed: the framework bench counts no instructions"
	$(BIN)/python -m bench.tracing_overhead
	$(BIN)/python -m bench.trace_fleet
	$(BIN)/python -m bench.durability
	$(BIN)/python -m bench.sse_fanout
	$(BIN)/python -m bench.eval_throughput
	$(BIN)/python -m bench.framework_overhead
	$(BIN)/python -m bench.direct_dispatch
	$(BIN)/python -m bench.late_arming
	$(BIN)/python -m bench.import_cost
	$(BIN)/python -m bench.cold_start
	$(BIN)/python -m bench.optimize_page
	$(BIN)/python -m bench.optimize_interceptor

lint: $(STAMP)
	$(BIN)/ruff check synth_ai examples tests bench modal_entry.py
	$(BIN)/ruff format --check synth_ai examples tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
