#!/usr/bin/env bash
# `make test`: install what the tests need (Debian packages, Python venv, Node packages),
# start the services the tests talk to, lint, type-check, then run every test.
# Runs as root on CI (CI=true): a missing real component fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export DEBIAN_FRONTEND=noninteractive

# 1. system packages: Samba AD DC, LDAP tools, Chromium, faketime; nginx and a soft smart card
#    (SoftHSM2 + OpenSC + the OpenSSL PKCS#11 engine) for the card sign-in tests; rsyslog (+ gnutls) as the
#    SIEM collector, poppler-utils to render report PDFs
need_pkgs=()
for cmd_pkg in samba:samba samba-tool:samba ldapsearch:ldap-utils chromium:chromium faketime:faketime node:nodejs \
    nginx:nginx-light softhsm2-util:softhsm2 pkcs11-tool:opensc rsyslogd:rsyslog pdftoppm:poppler-utils; do
  cmd=${cmd_pkg%%:*}; pkg=${cmd_pkg#*:}
  command -v "$cmd" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
compgen -G "/usr/lib/*/engines-3/pkcs11.so" >/dev/null || need_pkgs+=(libengine-pkcs11-openssl)
compgen -G "/usr/lib/*/rsyslog/lmnsd_gtls.so" >/dev/null || need_pkgs+=(rsyslog-gnutls)  # SIEM tests: RFC 5425
if ((${#need_pkgs[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: ${need_pkgs[*]} samba-ad-provision samba-dsdb-modules winbind krb5-user"
    apt-get update -q >/dev/null
    apt-get install -y -q "${need_pkgs[@]}" samba-ad-provision samba-dsdb-modules winbind krb5-user >/dev/null
  else
    echo "missing system packages (run as root to install): ${need_pkgs[*]}" >&2
  fi
fi

# 2. PostgreSQL for the storage tests (already running on our machines; start it if stopped)
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi

# 3. Python environment
VENV=$VENV deploy/venv.sh test

# 4. the independent OIDC client (npm openid-client)
if command -v npm >/dev/null; then
  (cd tests/e2e/node && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; })
fi

# 5. static checks
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"

# 6. tests (the Samba AD DC is provisioned once per session by tests/samba.py)
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
