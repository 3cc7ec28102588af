# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   - bootstrap .venv, build a demo workspace from data/sample/ and show its incidents
#   make test   - bootstrap .venv and run the test suite
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_WORKSPACE ?= ./demo-workspace
PYTEST_ARGS ?=

.PHONY: demo test venv bench clean

venv: $(STAMP)

# The stamp depends on what decides the environment, so a second run installs nothing.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/workbench demo --workspace $(DEMO_WORKSPACE) --sample data/sample

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

SHARED ?= ../shared/data
BENCH_OUT ?= benchmarks/out

# Every benchmark, each one command with --data DIR --json OUT (the shared ones need ../shared).
bench: $(STAMP)
	mkdir -p $(BENCH_OUT)
	$(PY) benchmarks/ingest.py --json $(BENCH_OUT)/ingest.json
	$(PY) benchmarks/loghub.py --data $(SHARED)/loghub --json $(BENCH_OUT)/loghub.json
	$(PY) benchmarks/smd.py --data $(SHARED)/smd --json $(BENCH_OUT)/smd.json
	$(PY) benchmarks/smd.py --data $(SHARED)/asd --json $(BENCH_OUT)/asd.json
	$(PY) benchmarks/nezha.py --data $(SHARED)/nezha-trainticket --json $(BENCH_OUT)/nezha.json
	$(PY) benchmarks/speed.py --json $(BENCH_OUT)/speed.json
	$(PY) benchmarks/notebook.py --json $(BENCH_OUT)/notebook.json
	$(PY) benchmarks/prior.py --data $(SHARED)/nezha-trainticket --json $(BENCH_OUT)/prior.json
	$(PY) benchmarks/recheck.py --incidents 1000 --json $(BENCH_OUT)/recheck.json
	$(PY) benchmarks/receivers.py --json $(BENCH_OUT)/receivers.json
	$(PY) benchmarks/review.py --incidents 1000 --json $(BENCH_OUT)/review.json

clean:
	rm -rf $(VENV) $(DEMO_WORKSPACE)
