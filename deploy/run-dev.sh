#!/usr/bin/env bash
# `make run`: the service on its embedded defaults — SQLite under ./var, the built-in
# directory, generated keys — plus the demo users and demo application, and a worker.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
VENV=$VENV deploy/venv.sh run  # the service's dependencies only; `make test` adds the test tools
export PATH="$PWD/$VENV/bin:$PATH"
export IAM_DEV_MODE=${IAM_DEV_MODE:-true}
export IAM_VAR_DIR=${IAM_VAR_DIR:-var}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-5000}
export IAM_ISSUER=${IAM_ISSUER:-http://$HOST:$PORT}
mkdir -p "$IAM_VAR_DIR"
iam db upgrade
PW_FILE="$IAM_VAR_DIR/demo-password.txt"
[ -s "$PW_FILE" ] || python3 -c 'import secrets; print("Demo-" + secrets.token_urlsafe(9))' > "$PW_FILE"
iam demo --password "$(cat "$PW_FILE")"
iam worker > "$IAM_VAR_DIR/worker.log" 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT INT TERM
cat <<MSG

  iam is starting at $IAM_ISSUER  (dev mode: plain http, generated secrets in $IAM_VAR_DIR/)
  Try the demo application:  $IAM_ISSUER/demo/
  Sign in as alice, bob or admin with password $(cat "$PW_FILE")
  Discovery:  $IAM_ISSUER/.well-known/openid-configuration
  Stop with Ctrl-C.

MSG
iam serve --host "$HOST" --port "$PORT" --workers 2 --threads 4
