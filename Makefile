# Thin wrappers; the logic lives in deploy/*.sh and the code.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench install clean mutants

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed  ## start the service on the embedded defaults (SQLite, built-in directory)
	VENV=$(VENV) deploy/run-dev.sh

test:  ## install what the tests need, lint, type-check, run every test
	VENV=$(VENV) deploy/test.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(VENV)/.installed  ## side-by-side benchmark against npm oidc-provider
	$(PY) bench/run.py

MODULES ?=
JOBS ?= 1
MUTANTS_ARGS ?=
mutants: $(VENV)/.installed  ## mutation testing, by hand: make mutants [MODULES="iam/audit.py"] [JOBS=2] [MUTANTS_ARGS=--postgres]
	$(PY) -m pip install -q -e '.[test,mutants]'
	nice -n 10 $(PY) deploy/mutants.py --jobs $(JOBS) $(MUTANTS_ARGS) $(MODULES)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
