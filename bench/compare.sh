#!/usr/bin/env bash
# Parley against Synapse and Dendrite, side by side on one machine, in one run.
#
#   bench/compare.sh                 # every server, every scenario
#   SERVERS="parley-postgres synapse" SCENARIOS="send latency" bench/compare.sh
#
# What it does, over loopback only:
#   1. installs the peers by name from their registries, once, outside the
#      repository ($PARLEY_PEERS_DIR, default ~/.cache/parley-peers):
#      Synapse 1.163.x with pip into a virtualenv, Dendrite v0.13.8 with
#      `go install`; nothing of theirs is committed here;
#   2. starts one throwaway PostgreSQL (scripts/pg-start.sh: fsync=on,
#      synchronous_commit=on) that every PostgreSQL-backed server shares,
#      with a fresh database per server;
#   3. for each server in turn: starts it pinned to CPU 0 with rate limits off
#      and open registration, runs each scenario of cmd/parley-bench pinned
#      to CPU 1, stops it;
#   4. prints one table with Parley/Synapse and Parley/Dendrite ratios, and
#      keeps every JSON report in $PARLEY_COMPARE_DIR (default
#      ${TMPDIR:-/tmp}/parley-compare).
#
# Sizes (environment): DURATION (20s), SEND_SENDERS (16), SEND_ROOMS (8),
# LAT_USERS (2000), LAT_ROOMS (1000: two long-polling users per room, as in
# one-to-one chat; every sender is in every room), LAT_RATE (500),
# FANOUT_MEMBERS (1000), FANOUT_RATE (2), IDLE_CONNS (4000),
# INIT_ROOMS (1000), INIT_HISTORY (20).
# Every scenario is bounded by DURATION plus its setup bound (SETUP_TIMEOUT,
# 15m), so the run ends by itself.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
peers=${PARLEY_PEERS_DIR:-$HOME/.cache/parley-peers}
out=${PARLEY_COMPARE_DIR:-${TMPDIR:-/tmp}/parley-compare}
SERVERS=${SERVERS:-"parley-sqlite parley-postgres dendrite synapse"}
SCENARIOS=${SCENARIOS:-"send latency fanout idle initial-sync"}
DURATION=${DURATION:-20s}
SETUP_TIMEOUT=${SETUP_TIMEOUT:-15m}
SEND_SENDERS=${SEND_SENDERS:-16} SEND_ROOMS=${SEND_ROOMS:-8}
LAT_USERS=${LAT_USERS:-2000} LAT_ROOMS=${LAT_ROOMS:-1000} LAT_RATE=${LAT_RATE:-500}
FANOUT_MEMBERS=${FANOUT_MEMBERS:-1000} FANOUT_RATE=${FANOUT_RATE:-2}
IDLE_CONNS=${IDLE_CONNS:-4000}
INIT_ROOMS=${INIT_ROOMS:-1000} INIT_HISTORY=${INIT_HISTORY:-20}
port=18448
secret=parley-compare-secret

log() { printf 'compare: %s\n' "$*" >&2; }
die() { printf 'compare: error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$out/results" "$peers"
run_dir=$(mktemp -d "$out/run.XXXXXX")
server_pid=""
pg_started=false
cleanup() {
	set +e
	[[ -n $server_pid ]] && stop_server
	$pg_started && PARLEY_PG_DIR=$out/pg "$root/scripts/pg-stop.sh" >/dev/null 2>&1
	rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pin() { # pin CPU command...: taskset when there are two CPUs or more
	local cpu=$1
	shift
	if command -v taskset >/dev/null && (($(nproc) > 1)); then
		taskset -c "$cpu" "$@"
	else
		"$@"
	fi
}

# ----------------------------------------------------------------- installs
install_peers() {
	if [[ $SERVERS == *synapse* && ! -x $peers/synapse-venv/bin/synctl ]]; then
		log "installing Synapse 1.163.x into $peers/synapse-venv (pip)"
		python3 -m venv "$peers/synapse-venv"
		"$peers/synapse-venv/bin/pip" install -q "matrix-synapse[postgres]==1.163.*"
	fi
	if [[ $SERVERS == *dendrite* && ! -x $peers/bin/dendrite ]]; then
		log "installing Dendrite v0.13.8 into $peers/bin (go install)"
		GOBIN=$peers/bin go install github.com/matrix-org/dendrite/cmd/dendrite@v0.13.8 \
			github.com/matrix-org/dendrite/cmd/generate-config@v0.13.8 \
			github.com/matrix-org/dendrite/cmd/generate-keys@v0.13.8
	fi
}

# ------------------------------------------------------------------ servers
fresh_db() { # name [synapse]: drop and create a database in the shared cluster
	local name=$1 opts=""
	[[ ${2:-} == synapse ]] && opts="TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C' ENCODING 'UTF8'"
	PGOPTIONS='--client-min-messages=warning' psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name $opts" >/dev/null
	printf '%s' "${pg_admin%/*}/$name?sslmode=disable"
}

start_server() { # name
	local name=$1 dir=$run_dir/$1
	mkdir -p "$dir"
	case $name in
	parley-sqlite | parley-postgres)
		local db=""
		[[ $name == parley-postgres ]] && db=$(fresh_db parley_bench)
		# Rate limits off; password hashing made cheap, as for the peers,
		# because setup registers thousands of users and no scenario times it.
		printf 'rate_limit:\n  enabled: false\npasswords:\n  argon2_memory_kib: 1024\n  argon2_time: 1\n' >"$dir/parley.yaml"
		PARLEY_SERVER_NAME=localhost PARLEY_LISTEN=127.0.0.1:$port PARLEY_DATA_DIR=$dir \
			PARLEY_DATABASE_URL=$db PARLEY_REGISTRATION=open \
			pin 0 "$run_dir/parley" serve --config "$dir/parley.yaml" >"$dir/server.log" 2>&1 &
		server_pid=$!
		;;
	dendrite)
		local db
		db=$(fresh_db dendrite_bench)
		(cd "$dir" && "$peers/bin/generate-keys" --private-key matrix_key.pem >/dev/null &&
			"$peers/bin/generate-config" -dir "$dir" -db "$db" -server localhost >dendrite.yaml)
		python3 - "$dir/dendrite.yaml" <<'EOF'
import re, sys
p = sys.argv[1]
s = open(p).read()
# Rate limits off, registration open: the fairness settings every peer gets.
s = re.sub(r"(rate_limiting:\n\s+enabled:) true", r"\1 false", s)
s = re.sub(r"registration_disabled: true", "registration_disabled: false", s)
s = re.sub(r"registration_shared_secret: \"\"", 'registration_shared_secret: "parley-compare-secret"', s)
open(p, "w").write(s)
EOF
		(cd "$dir" && pin 0 "$peers/bin/dendrite" -config dendrite.yaml -really-enable-open-registration \
			-http-bind-address 127.0.0.1:$port >"$dir/server.log" 2>&1) &
		server_pid=$!
		;;
	synapse)
		local db
		db=$(fresh_db synapse_bench synapse)
		(cd "$dir" && "$peers/synapse-venv/bin/python" -m synapse.app.homeserver --server-name localhost \
			--config-path "$dir/homeserver.yaml" --data-directory "$dir" --generate-config --report-stats=no >/dev/null)
		"$peers/synapse-venv/bin/python" - "$dir/homeserver.yaml" "$db" "$port" "$secret" <<'EOF'
import sys, urllib.parse, yaml
path, db, port, secret = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = yaml.safe_load(open(path))
u = urllib.parse.urlparse(db)
c["database"] = {"name": "psycopg2", "args": {"user": u.username, "password": u.password, "host": u.hostname,
    "port": u.port, "database": u.path.lstrip("/"), "cp_min": 5, "cp_max": 10}}
c["listeners"] = [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
    "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}]
c["enable_registration"] = True
c["enable_registration_without_verification"] = True
c["registration_shared_secret"] = secret
c["report_stats"] = False
c["bcrypt_rounds"] = 4  # setup registers thousands of users; no scenario times it
# Synapse keeps finished /sync responses for two minutes and answers an
# identical request from them; every request here must be computed, as on
# the other servers.
c.setdefault("caches", {})["sync_response_cache_duration"] = 0
c["presence"] = {"enabled": True}
# Rate limits off: every limiter Synapse has, set beyond reach.
big = {"per_second": 1000000, "burst_count": 1000000}
for k in ["rc_message", "rc_registration", "rc_joins_per_room", "rc_3pid_validation", "rc_invites",
          "rc_admin_redaction", "rc_media_create", "rc_room_creation", "rc_presence", "rc_delayed_event_mgmt",
          "rc_reports", "rc_registration_token_validity", "rc_key_requests"]:
    c[k] = big
c["rc_login"] = {"address": big, "account": big, "failed_attempts": big}
c["rc_joins"] = {"local": big, "remote": big}
c["rc_invites"] = {"per_room": big, "per_user": big, "per_issuer": big}
c["rc_presence"] = {"per_user": big}
yaml.safe_dump(c, open(path, "w"))
EOF
		(cd "$dir" && pin 0 "$peers/synapse-venv/bin/python" -m synapse.app.homeserver \
			--config-path homeserver.yaml >"$dir/server.log" 2>&1) &
		server_pid=$!
		;;
	*) die "unknown server $name" ;;
	esac
	for _ in $(seq 1 240); do
		if curl -fsS "http://127.0.0.1:$port/_matrix/client/versions" >/dev/null 2>&1; then
			log "$name is up (pid $server_pid)"
			return 0
		fi
		kill -0 "$server_pid" 2>/dev/null || { tail -n 30 "$dir/server.log" >&2; die "$name exited while starting"; }
		sleep 0.5
	done
	tail -n 30 "$dir/server.log" >&2
	die "$name did not answer within 120 s"
}

stop_server() {
	[[ -z $server_pid ]] && return 0
	pkill -TERM -P "$server_pid" 2>/dev/null || true
	kill -TERM "$server_pid" 2>/dev/null || true
	for _ in $(seq 1 60); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.5
	done
	pkill -KILL -P "$server_pid" 2>/dev/null || true
	kill -KILL "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
}

# The process whose RSS the idle scenario reads: the server itself, not the
# taskset or subshell wrapper.
server_process() {
	local pid=$server_pid child
	for _ in 1 2 3; do
		child=$(pgrep -P "$pid" | head -n 1) || break
		pid=$child
	done
	printf '%s' "$pid"
}

run_scenario() { # server scenario
	local server=$1 sc=$2 args=()
	case $sc in
	send) args=(--senders "$SEND_SENDERS" --rooms "$SEND_ROOMS") ;;
	latency) args=(--users "$LAT_USERS" --rooms "$LAT_ROOMS" --rate "$LAT_RATE") ;;
	fanout) args=(--members "$FANOUT_MEMBERS" --rate "$FANOUT_RATE") ;;
	idle) args=(--conns "$IDLE_CONNS" --pid "$(server_process)") ;;
	initial-sync) args=(--rooms "$INIT_ROOMS" --history "$INIT_HISTORY") ;;
	esac
	log "$server: $sc ${args[*]}"
	local res=$out/results/$server-$sc.json
	if ! pin 1 "$run_dir/parley-bench" "$sc" --target "http://127.0.0.1:$port" --duration "$DURATION" \
		--setup-timeout "$SETUP_TIMEOUT" "${args[@]}" --json >"$res.tmp" 2>"$out/results/$server-$sc.log"; then
		log "$server: $sc failed (see $out/results/$server-$sc.log)"
	fi
	mv "$res.tmp" "$res"
}

# --------------------------------------------------------------------- main
command -v psql >/dev/null || die "psql missing (Debian: postgresql-client)"
install_peers
log "building parley and parley-bench"
(cd "$root" && go build -o "$run_dir/parley" ./cmd/parley && go build -o "$run_dir/parley-bench" ./cmd/parley-bench)
pg_started=true
pg_admin=$(PARLEY_PG_DIR=$out/pg "$root/scripts/pg-start.sh" --url)
pg_admin=${pg_admin%%\?*}
for server in $SERVERS; do
	for sc in $SCENARIOS; do
		rm -f "$out/results/$server-$sc.json" "$out/results/$server-$sc.log"
	done
done
for server in $SERVERS; do
	start_server "$server"
	for sc in $SCENARIOS; do
		run_scenario "$server" "$sc"
	done
	stop_server
done
# The table covers every report in the results directory, so a rerun of
# one scenario joins the earlier ones.
python3 "$root/bench/table.py" "$out/results" "${TABLE_SERVERS:-parley-sqlite parley-postgres dendrite synapse}" \
	"${TABLE_SCENARIOS:-send latency fanout idle initial-sync}"
