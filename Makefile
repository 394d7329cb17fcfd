# Every target sets the machine up first (idempotent; seconds when already done). Run as root.
PY := .venv/bin/python

.PHONY: setup demo test test-full matrix matrix-full bench bench-inspect lint

setup:
	bash scripts/setup.sh

demo: setup
	$(PY) -m testapps.demo

test: setup
	$(PY) -m testapps.matrix build
	$(PY) -m pytest -q --durations=25

# Every cell of the test-app matrix (every Go x every variant, grpc-go x every supported Go).
test-full: setup
	$(PY) -m testapps.matrix build --full
	GOTRACE_MATRIX=full $(PY) -m pytest -q

matrix: setup
	$(PY) -m testapps.matrix build

matrix-full: setup
	$(PY) -m testapps.matrix build --full

# Overhead, tracer pipeline and attach figures in one run (about 10 minutes, the first run
# longer: it builds the programs it needs); writes bench/REPORT.md and prints it.
bench: setup
	$(PY) -m bench

# `gotrace inspect` wall time and peak RSS on small, 25 MB and 100 MB-class binaries.
bench-inspect: setup
	$(PY) bench/inspect_bench.py

lint: setup
	.venv/bin/ruff check gotrace tests testapps bench symbols
