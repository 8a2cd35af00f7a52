#!/usr/bin/env bash
# Start (or reuse) a throwaway Dendrite for Parley's interop tests (tests/dendrite).
#
#   eval "$(scripts/dendrite-start.sh)"   # exports PARLEY_TEST_DENDRITE_*
#   scripts/dendrite-stop.sh              # stop it and delete its files
#   scripts/dendrite-stop.sh --keep       # stop only; start again on the same data
#
# Installs Dendrite $PARLEY_DENDRITE_VERSION (default v0.13.8) with
# `go install github.com/matrix-org/dendrite/cmd/{dendrite,generate-config,generate-keys}`
# into $PARLEY_DENDRITE_BIN (default: ${XDG_CACHE_HOME:-~/.cache}/parley-dendrite/<version>),
# once; later runs reuse it. From an empty Go module and build cache the
# install takes minutes (8 min on the 2-core CI machine); with warm caches,
# seconds.
#
# Dendrite lives in $PARLEY_DENDRITE_DIR (default: ${TMPDIR:-/tmp}/parley-dendrite-<user>):
# config (dendrite.yaml), signing key, self-signed certificate, SQLite
# databases, log and pid file. It is one process:
#   - server name $host:$fed_port (default 127.0.0.60:8448);
#   - federation (and client API) over TLS on $host:$fed_port, self-signed;
#   - client API over plain HTTP on $host:$client_port (default 8008);
# with PARLEY_DENDRITE_HOST, PARLEY_DENDRITE_FED_PORT and
# PARLEY_DENDRITE_CLIENT_PORT to change them. It is set up for loopback
# tests only: TLS checks off for outbound federation, no trusted key servers
# (keys fetched directly), rate limits off, default room version 11, and a
# registration shared secret (users are made through
# /_synapse/admin/v1/register, which Dendrite serves too).
#
# Idempotent: a running Dendrite is reused; a stopped one is started again
# on the same data. Progress goes to stderr; stdout carries only export
# lines: PARLEY_TEST_DENDRITE_URL (client API), PARLEY_TEST_DENDRITE_SERVER_NAME,
# PARLEY_TEST_DENDRITE_SECRET and PARLEY_TEST_DENDRITE_DIR.
set -euo pipefail

log() { printf 'dendrite-start: %s\n' "$*" >&2; }
die() { printf 'dendrite-start: error: %s\n' "$*" >&2; exit 1; }

install_only=false
for arg in "$@"; do
	case "$arg" in
	--install-only) install_only=true ;; # install and exit (to start the slow part early)
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
		exit 0
		;;
	*) die "unknown argument $arg" ;;
	esac
done

version=${PARLEY_DENDRITE_VERSION:-v0.13.8}
bin=${PARLEY_DENDRITE_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/parley-dendrite/$version}
state=${PARLEY_DENDRITE_DIR:-${TMPDIR:-/tmp}/parley-dendrite-$(id -un)}
[[ $state == /* ]] || state=$PWD/$state
host=${PARLEY_DENDRITE_HOST:-127.0.0.60}
fed_port=${PARLEY_DENDRITE_FED_PORT:-8448}
client_port=${PARLEY_DENDRITE_CLIENT_PORT:-8008}
timeout=${PARLEY_DENDRITE_TIMEOUT:-120}
server_name=$host:$fed_port
client_url=http://$host:$client_port

# ------------------------------------------------------------ install
installed() {
	[[ -x $bin/dendrite && -x $bin/generate-config && -x $bin/generate-keys ]] &&
		"$bin/dendrite" -version 2>/dev/null | grep -qF -- "${version#v}"
}
if installed; then
	log "Dendrite $version already in $bin"
else
	command -v go >/dev/null || die "go is not on PATH"
	log "installing Dendrite $version into $bin (go install)"
	mkdir -p "$bin"
	# GOFLAGS from the caller (e.g. -timeout for go test) must not reach go install.
	GOFLAGS= GOBIN=$bin go install \
		"github.com/matrix-org/dendrite/cmd/dendrite@$version" \
		"github.com/matrix-org/dendrite/cmd/generate-config@$version" \
		"github.com/matrix-org/dendrite/cmd/generate-keys@$version" >&2 ||
		die "go install of Dendrite $version failed"
	installed || die "Dendrite $version did not install into $bin"
fi
$install_only && exit 0

# ------------------------------------------------------------ state dir
mkdir -p "$state"
chmod 0700 "$state"
touch "$state/.parley-dendrite" # marks the directory as ours, for dendrite-stop.sh
cd "$state"

if command -v flock >/dev/null; then
	exec 9>"$state/.lock"
	flock -w 120 9 || die "timed out waiting for another dendrite-start.sh on $state"
fi

if [[ ! -f $state/secret ]]; then
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$state/secret"
fi
secret=$(cat "$state/secret")

if [[ ! -f $state/matrix_key.pem ]]; then
	log "generating Dendrite's signing key"
	"$bin/generate-keys" --private-key "$state/matrix_key.pem" >&2 || die "generate-keys failed"
fi
if [[ ! -f $state/tls.crt ]]; then
	log "making a self-signed certificate for $host"
	"$bin/generate-keys" --tls-cert "$state/tls.crt" --tls-key "$state/tls.key" --keysize 2048 >&2 ||
		die "generate-keys could not make a certificate"
fi

# The config is written every time (generate-config's CI defaults, then the
# few keys changed for loopback tests), so a changed script applies to a
# kept data directory too.
"$bin/generate-config" -ci -server "$server_name" -dir "$state" >"$state/dendrite.yaml.new" ||
	die "generate-config failed"
sed -i \
	-e "s|^  private_key: .*|  private_key: $state/matrix_key.pem|" \
	-e "s|^  registration_shared_secret: .*|  registration_shared_secret: \"$secret\"|" \
	-e 's|^  registration_disabled: false|  registration_disabled: true|' \
	-e '/^federation_api:/,/^[a-z]/ s|^  disable_tls_validation: false|  disable_tls_validation: true|' \
	-e '/^federation_api:/,/^[a-z]/ s|^  send_max_retries: .*|  send_max_retries: 100|' \
	-e '/^  server_notices:/,/^  [a-z]/ s|^    enabled: true|    enabled: false|' \
	-e 's|^  default_room_version: .*|  default_room_version: "11"|' \
	-e "s|^  level: trace|  level: ${PARLEY_DENDRITE_LOG_LEVEL:-info}|" \
	"$state/dendrite.yaml.new"
grep -q '^  key_perspectives: \[\]' "$state/dendrite.yaml.new" || die "generated config has trusted key servers"
grep -q '^  disable_tls_validation: true' <(sed -n '/^federation_api:/,/^[a-z]/p' "$state/dendrite.yaml.new") ||
	die "could not turn off TLS checks for federation in the generated config"
mv "$state/dendrite.yaml.new" "$state/dendrite.yaml"

# ------------------------------------------------------------ start
healthy() { curl -fsS -m 2 "$client_url/_matrix/client/versions" >/dev/null 2>&1; }

# Dendrite's pid, only if that pid is still this Dendrite (pids get reused).
our_pid() {
	local pid
	pid=$(cat "$state/dendrite.pid" 2>/dev/null || true)
	[[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$state/dendrite.yaml" && echo "$pid"
}

command -v curl >/dev/null || die "curl is not on PATH"
if pid=$(our_pid) && healthy; then
	log "reusing the running Dendrite (pid $pid) in $state"
else
	if [[ -n ${pid:-} ]]; then
		die "Dendrite (pid $pid) runs but does not answer on $client_url; see $state/dendrite.out"
	fi
	rm -f "$state/dendrite.pid"
	log "starting Dendrite $version as $server_name (client API $client_url)"
	setsid "$bin/dendrite" -config "$state/dendrite.yaml" \
		-http-bind-address "$host:$client_port" -https-bind-address "$host:$fed_port" \
		-tls-cert "$state/tls.crt" -tls-key "$state/tls.key" \
		9>&- </dev/null >>"$state/dendrite.out" 2>&1 &
	echo $! >"$state/dendrite.pid"
	up=false
	for _ in $(seq 1 $((timeout * 5))); do
		if healthy; then
			up=true
			break
		fi
		our_pid >/dev/null || break
		sleep 0.2
	done
	$up || { tail -n 30 "$state/dendrite.out" >&2 || true; die "Dendrite did not answer within ${timeout}s (log: $state/dendrite.out)"; }
	log "ready (pid $(our_pid || echo '?'))"
fi

printf "export PARLEY_TEST_DENDRITE_URL='%s'\n" "$client_url"
printf "export PARLEY_TEST_DENDRITE_SERVER_NAME='%s'\n" "$server_name"
printf "export PARLEY_TEST_DENDRITE_SECRET='%s'\n" "$secret"
printf "export PARLEY_TEST_DENDRITE_DIR='%s'\n" "$state"
