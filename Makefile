# Thin wrappers; the logic lives in deploy/*.sh and the code.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench bench-all bench-reviews install clean mutants translations translations-missing

install:  ## the full development environment: the service and the test tools
	VENV=$(VENV) deploy/venv.sh test

run:  ## start the service on the embedded defaults (SQLite, built-in directory); installs only what running needs
	VENV=$(VENV) deploy/run-dev.sh

test:  ## install what the tests need, lint, type-check, run every test
	VENV=$(VENV) deploy/test.sh

translations: install  ## extract marked strings, update every catalogue, regenerate sr_Cyrl, list what is missing
	VENV=$(VENV) deploy/translations.sh update

translations-missing:  ## the untranslated and fuzzy entries of each language (for the merger)
	VENV=$(VENV) deploy/translations.sh missing

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: install  ## side-by-side benchmark against npm oidc-provider
	$(PY) bench/run.py

BENCH_ARGS ?=
bench-all: install  ## every benchmark of issue 18, one table (token endpoint, joiners vs the DC's limit, sign-ins): make bench-all [BENCH_ARGS="--duration 10 --people 300"]
	$(PY) bench/all.py $(BENCH_ARGS)

bench-reviews: install  ## access reviews at size: 1M-item campaign, inbox, remediation into Samba
	$(PY) bench/reviews_bench.py

MODULES ?=
JOBS ?= 1
MUTANTS_ARGS ?=
mutants: install  ## mutation testing, by hand: make mutants [MODULES="iam/audit.py"] [JOBS=2] [MUTANTS_ARGS=--postgres]
	$(PY) -m pip install -q -e '.[test,mutants]'
	nice -n 10 $(PY) deploy/mutants.py --jobs $(JOBS) $(MUTANTS_ARGS) $(MODULES)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
