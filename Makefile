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

bench: $(STAMP)
	$(PY) benchmarks/ingest.py --data data/sample

clean:
	rm -rf $(VENV) $(DEMO_WORKSPACE)
