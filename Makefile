# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint run check clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)  ## everything on embedded defaults: SQS server, traffic, intake, live view
	$(PY) bot.py demo

test: $(STAMP)  ## the whole suite, on up to 4 processes (tests sharing a build run in one)
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadgroup

bench: $(STAMP)  ## benchmarks, printed as tables (about 10 minutes)
	$(PY) bench/bench_intake.py
	$(PY) bench/bench_alerts.py
	$(PY) bench/bench_queries.py
	$(PY) bench/bench_drain.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

run: $(STAMP)  ## the worker, with ./config.toml
	$(PY) bot.py run

check: $(STAMP)
	$(PY) bot.py check

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
