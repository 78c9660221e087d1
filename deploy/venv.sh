#!/usr/bin/env bash
# The Python environment, in two layers: `deploy/venv.sh run` installs what running the service
# needs (the package and its dependencies); `deploy/venv.sh test` adds the `test` extras
# (pytest, Playwright, ruff, mypy, PostgreSQL driver, …). Each layer has its own marker in the
# venv, renewed when pyproject.toml changes, so `make run` never installs the test tools and a
# `make run` done first never makes `make test` skip them.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
layer=${1:-run}
case "$layer" in
  run) spec='.' ;;
  test) spec='.[test]' ;;
  *) echo "usage: deploy/venv.sh run|test" >&2; exit 2 ;;
esac
marker="$VENV/.installed-$layer"
if [ -x "$VENV/bin/python" ] && [ -f "$marker" ] && [ ! pyproject.toml -nt "$marker" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e "$spec"
touch "$marker"
# the test layer holds everything the run layer does
[ "$layer" = run ] || touch "$VENV/.installed-run"
