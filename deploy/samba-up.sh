#!/usr/bin/env bash
# A throwaway Samba Active Directory domain controller on the loopback interface, for tests and
# demos. Never for production: it uses a fixed realm, its own short-lived CA and a known password.
#
#   usage: deploy/samba-up.sh [--fresh] DIR    provision (or reuse) and start the DC kept in DIR
#          deploy/samba-up.sh --stop DIR       stop the DC started from DIR (DIR is kept)
#
# Realm EXAMPLE.TEST, NetBIOS domain EXAMPLE, base DN DC=example,DC=test, host dc1. Ports are
# fixed by Samba (LDAP 389, LDAPS 636, GC 3268/3269, Kerberos 88), so this needs root and only
# one DC can run per machine. Clients verify the server with DIR/tls/ca.pem (the server
# certificate names localhost and 127.0.0.1).
#
# Environment:
#   SAMBA_ADMINPASS  password of Administrator (default 'Adm1n-Passw0rd!')
#   SAMBA_FAKETIME=1 run the DC under libfaketime; its clock offset is read from DIR/faketime
#                    ("+0" initially; write e.g. "+2d" to jump the DC two days ahead, at most one
#                    second later it takes effect)
#
# If a DC started from the same DIR already answers an LDAPS bind it is reused (unless --fresh, or
# SAMBA_FAKETIME=1 is asked for and the running DC is not under faketime). Invocations on the same
# DIR are serialised with DIR.lock. Prints one line of connection facts (never the password).
set -euo pipefail

REALM=EXAMPLE.TEST
DOMAIN=EXAMPLE
BASE_DN=DC=example,DC=test
ADMIN_UPN=Administrator@example.test
ADMINPASS=${SAMBA_ADMINPASS:-'Adm1n-Passw0rd!'}
MARKER=.iam-samba-up

die() { echo "samba-up: $*" >&2; exit 1; }

usage() { die "usage: $0 [--fresh] DIR | $0 --stop DIR"; }

action=up
fresh=0
D=""
for arg in "$@"; do
  case "$arg" in
    --stop) action=stop ;;
    --fresh) fresh=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) usage ;;
    *) [ -z "$D" ] || usage; D=$arg ;;
  esac
done
[ -n "$D" ] || usage
case "$D" in /|/etc|/usr|/var|/root|/home|/tmp) die "refusing to use $D as the DC directory" ;; esac
D=$(realpath -m -- "$D")

pid_of() { [ -f "$D/run/samba.pid" ] && cat "$D/run/samba.pid" 2>/dev/null || true; }

running() {
  local pid
  pid=$(pid_of)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

ldaps_ok() {
  LDAPTLS_CACERT="$D/tls/ca.pem" LDAPTLS_REQCERT=demand timeout 10 \
    ldapsearch -x -LLL -o nettimeout=3 -H ldaps://127.0.0.1:636 -D "$ADMIN_UPN" -w "$ADMINPASS" \
    -b "" -s base defaultNamingContext >/dev/null 2>&1
}

stop_dc() {
  local pid
  pid=$(pid_of)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
    # the master's children (ldap, kdc, rpc workers) leave with it; wait for the ports to close
    for _ in $(seq 100); do port_open 636 || port_open 389 || break; sleep 0.1; done
  fi
  rm -f "$D/run/samba.pid"
}

info() {
  local ft=-
  [ -f "$D/faketime.mode" ] && ft="$D/faketime"
  echo "samba AD DC up: pid=$(pid_of) url=ldaps://127.0.0.1:636 ca=$D/tls/ca.pem" \
    "bind_dn=$ADMIN_UPN base_dn=$BASE_DN realm=$REALM faketime=$ft dir=$D"
}

if [ "$action" = stop ]; then
  exec 9>"$D.lock"
  flock -w 600 9 || die "another samba-up.sh holds $D.lock"
  stop_dc
  echo "samba AD DC stopped (dir=$D)"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "needs root (Samba's LDAP ports are below 1024)"

# One invocation at a time per DIR: test sessions running in parallel share the DC.
mkdir -p "$(dirname "$D")"
exec 9>"$D.lock"
flock -w 600 9 || die "another samba-up.sh holds $D.lock"

# 1. packages (samba pulls in samba-ad-provision + samba-dsdb-modules, which provision needs)
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  local apt=(apt-get -o DPkg::Lock::Timeout=300 -y -q)
  "${apt[@]}" install "$@" >/dev/null 2>&1 \
    || { "${apt[@]}" update >/dev/null 2>&1 && "${apt[@]}" install "$@" >/dev/null; } \
    || die "could not install $*"
}
faketime_lib() { ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -1; }
need=()
if ! command -v samba >/dev/null || ! command -v samba-tool >/dev/null \
  || ! dpkg -s samba-ad-provision samba-dsdb-modules >/dev/null 2>&1; then
  need+=(samba samba-common-bin samba-ad-provision samba-dsdb-modules winbind krb5-user)
fi
command -v ldapsearch >/dev/null || need+=(ldap-utils)
command -v openssl >/dev/null || need+=(openssl)
if [ -n "${SAMBA_FAKETIME:-}" ] && [ -z "$(faketime_lib)" ]; then need+=(faketime libfaketime); fi
if [ "${#need[@]}" -gt 0 ]; then apt_install "${need[@]}"; fi

# 2. reuse a running DC from this DIR unless --fresh. A DC under faketime serves callers that did
#    not ask for it too (its clock is at +0 unless a test moves it); the reverse needs a restart.
want_ft=no
[ -n "${SAMBA_FAKETIME:-}" ] && want_ft=yes
have_ft=no
[ -f "$D/faketime.mode" ] && have_ft=yes
if [ "$fresh" = 0 ] && running && { [ "$want_ft" = no ] || [ "$have_ft" = yes ]; } && ldaps_ok; then
  info
  exit 0
fi

# 3. fresh directory (only ever delete a directory this script created)
stop_dc
if [ -e "$D" ] && [ -n "$(ls -A "$D" 2>/dev/null)" ] && [ ! -f "$D/$MARKER" ]; then
  die "$D exists, is not empty and was not made by this script; refusing to delete it"
fi
if port_open 636; then
  die "something else already listens on 127.0.0.1:636 (another DC?); stop it first"
fi
rm -rf "$D"
mkdir -p "$D/tls" "$D/run" "$D/log" "$D/cache"
touch "$D/$MARKER"

# 4. provision (no DNS server; RFC 2307 attributes available)
if ! samba-tool domain provision --realm="$REALM" --domain="$DOMAIN" --server-role=dc \
  --dns-backend=NONE --use-rfc2307 --host-name=dc1 --adminpass="$ADMINPASS" \
  --targetdir="$D" >"$D/log/provision.log" 2>&1; then
  tail -20 "$D/log/provision.log" >&2
  die "provisioning failed (log: $D/log/provision.log)"
fi

# 5. our own CA + server certificate with SAN localhost/127.0.0.1 (Samba's self-made one has no SAN)
(
  umask 077
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=IAM test AD CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$D/tls/ca.key" -out "$D/tls/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=dc1.example.test" \
    -keyout "$D/tls/key.pem" -out "$D/tls/req.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,DNS:dc1.example.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' \
    >"$D/tls/ext.cnf"
  openssl x509 -req -in "$D/tls/req.csr" -CA "$D/tls/ca.pem" -CAkey "$D/tls/ca.key" \
    -CAcreateserial -days 30 -extfile "$D/tls/ext.cnf" -out "$D/tls/cert.pem" 2>/dev/null
)
chmod 644 "$D/tls/ca.pem" "$D/tls/cert.pem"

# 6. loopback only, just the services LDAP(S)/Kerberos need, every file inside DIR. The RPC
#    endpoints' ports are taken outside the kernel's ephemeral range: Samba's default 49152-65535
#    overlaps it, and a client socket (or one in TIME_WAIT after a benchmark) on 49154 made the DC
#    refuse to start ("Failed to listen on 127.0.0.1:49154").
read -r EPH_LO EPH_HI </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || { EPH_LO=32768; EPH_HI=60999; }
if [ "$EPH_HI" -le 65335 ]; then RPC_PORTS="$((EPH_HI + 1))-$((EPH_HI + 200))"
else RPC_PORTS="$((EPH_LO - 200))-$((EPH_LO - 1))"; fi
sed -i '/^\tserver services = /d; /^\tlog file = /d' "$D/etc/smb.conf"
sed -i "0,/^\[global\]/s||[global]\n\
\tinterfaces = lo\n\
\tbind interfaces only = yes\n\
\tserver services = ldap, cldap, kdc, rpc\n\
\trpc server dynamic port range = $RPC_PORTS\n\
\tpid directory = $D/run\n\
\tncalrpc dir = $D/run/ncalrpc\n\
\tlog file = $D/log/samba.log\n\
\ttls enabled = yes\n\
\ttls keyfile = $D/tls/key.pem\n\
\ttls certfile = $D/tls/cert.pem\n\
\ttls cafile = $D/tls/ca.pem|" "$D/etc/smb.conf"
printf '[libdefaults]\n\tdefault_realm = %s\n\tdns_lookup_realm = false\n\tdns_lookup_kdc = false\n[realms]\n\t%s = {\n\t\tkdc = 127.0.0.1\n\t}\n' \
  "$REALM" "$REALM" >"$D/krb5.conf"

# 7. offline tweaks: Administrator never expires (clock-shift tests keep an admin bind); no minimum
#    password age, so a user may change a password an administrator has just set
samba-tool user setexpiry Administrator --noexpiry -s "$D/etc/smb.conf" >/dev/null
samba-tool domain passwordsettings set --min-pwd-age=0 -s "$D/etc/smb.conf" >/dev/null

# 8. start and wait until an LDAPS bind works
if [ "$want_ft" = yes ]; then
  echo "+0" >"$D/faketime"
  touch "$D/faketime.mode"
  LD_PRELOAD=$(faketime_lib) FAKETIME_TIMESTAMP_FILE="$D/faketime" FAKETIME_NO_CACHE=1 \
    DONT_FAKE_MONOTONIC=1 samba -D -s "$D/etc/smb.conf" 9>&-
else
  samba -D -s "$D/etc/smb.conf" 9>&-
fi
for _ in $(seq 300); do port_open 636 && break; sleep 0.1; done
for _ in $(seq 100); do ldaps_ok && break; sleep 0.2; done
ldaps_ok || die "the DC did not answer an LDAPS bind (logs: $D/log)"

# 9. idle LDAP connections are closed after MaxConnIdleTime (AD default 900 s); make it a week so
#    that moving the faketime clock by a few days does not drop every client's connection
LDAPTLS_CACERT="$D/tls/ca.pem" LDAPTLS_REQCERT=demand ldapmodify -x -H ldaps://127.0.0.1:636 \
  -D "$ADMIN_UPN" -w "$ADMINPASS" >/dev/null 2>&1 <<LDIF || echo "samba-up: could not raise MaxConnIdleTime" >&2
dn: CN=Default Query Policy,CN=Query-Policies,CN=Directory Service,CN=Windows NT,CN=Services,CN=Configuration,$BASE_DN
changetype: modify
delete: lDAPAdminLimits
lDAPAdminLimits: MaxConnIdleTime=900
-
add: lDAPAdminLimits
lDAPAdminLimits: MaxConnIdleTime=604800
LDIF
info
