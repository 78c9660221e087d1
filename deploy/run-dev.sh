#!/usr/bin/env bash
# `make run`: the service on its embedded defaults — SQLite under ./var, the built-in
# directory, generated keys — plus the demo (users, application, PIM roles, HR operator and
# events), and a worker. Installs only what running needs (`make test` adds the test tools).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
VENV=$VENV deploy/venv.sh run  # the service's dependencies only; `make test` adds the test tools
BIN=$(cd "$VENV/bin" && pwd)
export PATH="$BIN:$PATH"
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-5000}
VAR_DIR=${IAM_VAR_DIR:-var}
mkdir -p "$VAR_DIR"
VAR_DIR=$(cd "$VAR_DIR" && pwd)

# Everything the service, the worker and an operator's `iam …` commands must agree on, in one
# file: `make run` reads it, and `. var/demo.env` in another shell points the CLI at this demo.
ENV_FILE="$VAR_DIR/demo.env"
cat > "$ENV_FILE" <<ENV
# written by \`make run\` (deploy/run-dev.sh): the settings of the running demo
export IAM_DEV_MODE=${IAM_DEV_MODE:-true}
export IAM_VAR_DIR='$VAR_DIR'
export IAM_DATABASE__URL='${IAM_DATABASE__URL:-sqlite:///$VAR_DIR/iam.db}'
export IAM_ISSUER='${IAM_ISSUER:-http://$HOST:$PORT}'
export IAM_PIM__SECURITY_OFFICERS='${IAM_PIM__SECURITY_OFFICERS:-[\"bob\"]}'
export PATH='$BIN':"\$PATH"
ENV
if [ -n "${IAM_CONFIG:-}" ] || [ -f iam.toml ]; then  # a settings file the demo was started with
  echo "export IAM_CONFIG='$(realpath "${IAM_CONFIG:-iam.toml}")'" >> "$ENV_FILE"
fi
# shellcheck source=/dev/null
. "$ENV_FILE"

iam db upgrade
PW_FILE="$VAR_DIR/demo-password.txt"
[ -s "$PW_FILE" ] || python3 -c 'import secrets; print("Demo-" + secrets.token_urlsafe(9))' > "$PW_FILE"
iam demo --password "$(cat "$PW_FILE")"
iam worker > "$VAR_DIR/worker.log" 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT INT TERM
cat <<MSG

  iam is starting at $IAM_ISSUER  (dev mode: plain http, generated secrets in $VAR_DIR/)
  Discovery:  $IAM_ISSUER/.well-known/openid-configuration    Worker log: $VAR_DIR/worker.log

  Administration console:  $IAM_ISSUER/admin/
      IT administrator admin, help desk dragan, security officer bob, HR operator hana, auditor ivana
      (password in $PW_FILE; the console asks for a second factor: set up an authenticator
      app at $IAM_ISSUER/mfa/enroll first)

  The CLI against this demo, in another shell:
      . $ENV_FILE      # sets IAM_DEV_MODE, IAM_VAR_DIR, IAM_DATABASE__URL, IAM_ISSUER, PATH (and IAM_CONFIG)
      iam pim status ; iam hr events ; iam audit list --limit 20 ; iam --help

  Stop with Ctrl-C.

MSG
iam serve --host "$HOST" --port "$PORT" --workers 2 --threads 4
