#!/usr/bin/env bash
# Start (or reuse) a throwaway Synapse for Parley's interop tests (tests/synapse).
#
#   eval "$(scripts/synapse-start.sh)"   # exports PARLEY_TEST_SYNAPSE_*
#   scripts/synapse-stop.sh              # stop it and delete its files
#   scripts/synapse-stop.sh --keep       # stop only; start again on the same data
#
# Installs matrix-synapse $PARLEY_SYNAPSE_VERSION (default 1.163.2) from PyPI
# with pip into a virtualenv in $PARLEY_SYNAPSE_VENV (default:
# ${XDG_CACHE_HOME:-~/.cache}/parley-synapse/venv-<version>), once; later runs
# reuse it. As root, python3-venv is installed from Debian if `python3 -m
# venv` is missing (PARLEY_APT_UPDATED=1 skips the `apt-get update`).
#
# Synapse lives in $PARLEY_SYNAPSE_DIR (default: ${TMPDIR:-/tmp}/parley-synapse-<user>):
# config (homeserver.yaml), signing key, self-signed certificate, SQLite
# database, log (homeserver.log) and pid file. It is one process:
#   - server name $host:$fed_port (default 127.0.0.10:8448);
#   - federation over TLS on $host:$fed_port, self-signed certificate;
#   - client API over plain HTTP on $host:$client_port (default 8008);
# with PARLEY_SYNAPSE_HOST, PARLEY_SYNAPSE_FED_PORT and
# PARLEY_SYNAPSE_CLIENT_PORT to change them. It is set up for loopback tests
# only: federation_verify_certificates off, 127.0.0.0/8 allowed for outbound
# federation (whitelisted and left out of the blocklist), no trusted key servers, registration closed (users are made
# through the shared-secret admin API), rate limits raised, and federation
# retries cut to seconds so an outage test does not wait ten minutes.
# Presence is off unless PARLEY_SYNAPSE_PRESENCE=true (the presence test
# in tests/synapse/presence_test.go skips without it).
#
# Idempotent: a running Synapse is reused; a stopped one is started again on
# the same data. Progress goes to stderr; stdout carries only export lines:
# PARLEY_TEST_SYNAPSE_URL (client API), PARLEY_TEST_SYNAPSE_SERVER_NAME,
# PARLEY_TEST_SYNAPSE_SECRET (registration shared secret) and
# PARLEY_TEST_SYNAPSE_DIR (for a test that stops and restarts it).
set -euo pipefail

log() { printf 'synapse-start: %s\n' "$*" >&2; }
die() { printf 'synapse-start: error: %s\n' "$*" >&2; exit 1; }

for arg in "$@"; do
	case "$arg" in
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
		exit 0
		;;
	*) die "unknown argument $arg" ;;
	esac
done

version=${PARLEY_SYNAPSE_VERSION:-1.163.2}
venv=${PARLEY_SYNAPSE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/parley-synapse/venv-$version}
state=${PARLEY_SYNAPSE_DIR:-${TMPDIR:-/tmp}/parley-synapse-$(id -un)}
[[ $state == /* ]] || state=$PWD/$state
host=${PARLEY_SYNAPSE_HOST:-127.0.0.10}
fed_port=${PARLEY_SYNAPSE_FED_PORT:-8448}
client_port=${PARLEY_SYNAPSE_CLIENT_PORT:-8008}
timeout=${PARLEY_SYNAPSE_TIMEOUT:-120}
server_name=$host:$fed_port
client_url=http://$host:$client_port

# ------------------------------------------------------------ install
py=$venv/bin/python
installed() { [[ -x $py ]] && "$py" -c "import synapse, sys; sys.exit(synapse.__version__ != '$version')" 2>/dev/null; }
if installed; then
	log "matrix-synapse $version already in $venv"
else
	if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
		[[ $(id -u) == 0 ]] || die "python3 -m venv is missing; install python3-venv"
		export DEBIAN_FRONTEND=noninteractive
		apt=(apt-get -q -y -o DPkg::Lock::Timeout=300)
		[[ ${PARLEY_APT_UPDATED:-} == 1 ]] || "${apt[@]}" update >&2
		"${apt[@]}" install --no-install-recommends python3-venv >&2
	fi
	log "installing matrix-synapse $version into $venv (pip)"
	rm -rf "$venv"
	mkdir -p "$(dirname "$venv")"
	python3 -m venv "$venv" >&2
	"$venv/bin/pip" install -q --disable-pip-version-check "matrix-synapse==$version" >&2
	installed || die "matrix-synapse $version did not install into $venv"
fi

# ------------------------------------------------------------ state dir
mkdir -p "$state"
chmod 0700 "$state"
touch "$state/.parley-synapse" # marks the directory as ours, for synapse-stop.sh
cd "$state"

if command -v flock >/dev/null; then
	exec 9>"$state/.lock"
	flock -w 120 9 || die "timed out waiting for another synapse-start.sh on $state"
fi

if [[ ! -f $state/secret ]]; then
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$state/secret"
fi
secret=$(cat "$state/secret")

if [[ ! -f $state/tls.crt ]]; then
	log "making a self-signed certificate for $host"
	if command -v openssl >/dev/null; then
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$host" \
			-addext "subjectAltName=IP:$host" \
			-keyout "$state/tls.key" -out "$state/tls.crt" >/dev/null 2>&1 ||
			die "openssl could not make a certificate"
	else # Synapse depends on the cryptography package, so the venv has it
		"$py" - "$host" "$state/tls.key" "$state/tls.crt" <<'PY' || die "could not make a certificate"
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
host, key_path, crt_path = sys.argv[1:]
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
now = datetime.datetime.now(datetime.timezone.utc)
crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
       .serial_number(x509.random_serial_number()).not_valid_before(now)
       .not_valid_after(now + datetime.timedelta(days=3650))
       .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
       .sign(key, hashes.SHA256()))
open(key_path, "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
open(crt_path, "wb").write(crt.public_bytes(serialization.Encoding.PEM))
PY
	fi
fi

cat >"$state/log.yaml" <<EOF
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
filters:
  context:
    (): synapse.logging.context.LoggingContextFilter
    request: ""
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: $state/homeserver.log
    filters: [context]
root:
  level: ${PARLEY_SYNAPSE_LOG_LEVEL:-INFO}
  handlers: [file]
disable_existing_loggers: false
EOF

# The config is written every time, so a changed script applies to a kept
# data directory too.
cat >"$state/homeserver.yaml" <<EOF
# Written by scripts/synapse-start.sh: loopback tests only, not for production.
server_name: "$server_name"
pid_file: $state/homeserver.pid
report_stats: false
listeners:
  - port: $fed_port
    bind_addresses: ['$host']
    type: http
    tls: true
    resources:
      - names: [federation]
        compress: false
  - port: $client_port
    bind_addresses: ['$host']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
tls_certificate_path: $state/tls.crt
tls_private_key_path: $state/tls.key
database:
  name: sqlite3
  args:
    database: $state/homeserver.db
log_config: $state/log.yaml
media_store_path: $state/media
signing_key_path: $state/signing.key
registration_shared_secret: "$secret"
enable_registration: false
federation_verify_certificates: false
ip_range_whitelist: ['127.0.0.0/8']
# The whitelist alone is not enough: Synapse 1.163 wraps its federation
# agent in a BlocklistingAgentWrapper that checks IP-literal server names
# (Parley's test servers are 127.0.0.2:PORT) against the blocklist without
# the whitelist. So the blocklist leaves loopback out.
ip_range_blacklist: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', '::1/128', 'fe80::/10', 'fc00::/7']
trusted_key_servers: []
suppress_key_server_warning: true
default_room_version: "12"
presence:
  enabled: ${PARLEY_SYNAPSE_PRESENCE:-false}
federation:
  client_timeout: 20s
  max_short_retry_delay: 1s
  max_long_retry_delay: 2s
  destination_min_retry_interval: 1s
  destination_retry_multiplier: 1.5
  destination_max_retry_interval: 5s
rc_message: {per_second: 1000, burst_count: 1000}
rc_joins:
  local: {per_second: 1000, burst_count: 1000}
  remote: {per_second: 1000, burst_count: 1000}
rc_joins_per_room: {per_second: 1000, burst_count: 1000}
rc_invites:
  per_room: {per_second: 1000, burst_count: 1000}
  per_user: {per_second: 1000, burst_count: 1000}
  per_issuer: {per_second: 1000, burst_count: 1000}
rc_login:
  address: {per_second: 1000, burst_count: 1000}
  account: {per_second: 1000, burst_count: 1000}
  failed_attempts: {per_second: 1000, burst_count: 1000}
rc_federation:
  window_size: 1000
  sleep_limit: 1000
  sleep_delay: 0
  reject_limit: 1000
  concurrent: 100
rc_admin_redaction: {per_second: 1000, burst_count: 1000}
rc_key_requests: {per_second: 1000, burst_count: 1000}
rc_3pid_validation: {per_second: 1000, burst_count: 1000}
rc_room_creation: {per_second: 1000, burst_count: 1000}
rc_presence:
  per_user: {per_second: 1000, burst_count: 1000}
rc_delayed_event_mgmt: {per_second: 1000, burst_count: 1000}
EOF

if [[ ! -f $state/signing.key ]]; then
	log "generating Synapse's signing key"
	"$py" -m synapse.app.homeserver -c "$state/homeserver.yaml" --generate-keys >&2 ||
		die "synapse could not generate its keys"
fi

# ------------------------------------------------------------ start
healthy() { "$py" - "$client_url/health" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).read() == b"OK" else 1)
except Exception:
    sys.exit(1)
PY
}

# Synapse's pid, only if that pid is still this Synapse (pids get reused).
our_pid() {
	local pid
	pid=$(cat "$state/homeserver.pid" 2>/dev/null || true)
	[[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$state/homeserver.yaml" && echo "$pid"
}

if pid=$(our_pid) && healthy; then
	log "reusing the running Synapse (pid $pid) in $state"
else
	if [[ -n ${pid:-} ]]; then
		die "Synapse (pid $pid) runs but does not answer on $client_url/health; see $state/homeserver.log"
	fi
	rm -f "$state/homeserver.pid"
	log "starting Synapse $version as $server_name (client API $client_url)"
	"$py" -m synapse.app.homeserver -c "$state/homeserver.yaml" --daemonize 9>&- >>"$state/stdout.log" 2>&1 ||
		{ tail -n 30 "$state/homeserver.log" >&2 || true; die "Synapse did not start (log: $state/homeserver.log)"; }
	up=false
	for _ in $(seq 1 $((timeout * 5))); do
		if healthy; then
			up=true
			break
		fi
		sleep 0.2
	done
	$up || { tail -n 30 "$state/homeserver.log" >&2 || true; die "Synapse did not answer within ${timeout}s (log: $state/homeserver.log)"; }
	log "ready (pid $(our_pid || echo '?'))"
fi

printf "export PARLEY_TEST_SYNAPSE_URL='%s'\n" "$client_url"
printf "export PARLEY_TEST_SYNAPSE_SERVER_NAME='%s'\n" "$server_name"
printf "export PARLEY_TEST_SYNAPSE_SECRET='%s'\n" "$secret"
printf "export PARLEY_TEST_SYNAPSE_DIR='%s'\n" "$state"
