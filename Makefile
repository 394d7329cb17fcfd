# Every target sets the machine up first (idempotent; seconds when already done). Run as root.
PY := .venv/bin/python

.PHONY: setup demo test test-full matrix matrix-full bench lint

setup:
	bash scripts/setup.sh

demo: setup
	$(PY) -m testapps.demo

test: setup
	$(PY) -m testapps.matrix build
	$(PY) -m pytest -q

# Every cell of the test-app matrix (every Go x every variant, grpc-go x every supported Go).
test-full: setup
	$(PY) -m testapps.matrix build --full
	GOTRACE_MATRIX=full $(PY) -m pytest -q

matrix: setup
	$(PY) -m testapps.matrix build

matrix-full: setup
	$(PY) -m testapps.matrix build --full

bench: setup
	$(PY) -m testapps.matrix build
	$(PY) bench/inspect_bench.py
	$(PY) bench/probe_hits.py

lint: setup
	.venv/bin/ruff check gotrace tests testapps bench symbols
