#!/usr/bin/env bash
# One fan-out measurement against a fresh server: the server starts with
# bench/smoke.sh's settings (rate limits off, cheap password hashing), then
# `parley-bench fanout` runs with --pid, so the report carries the server's
# CPU time per delivery next to the latencies. The JSON report goes to stdout.
#
#   bench/fanout.sh PARLEY_BIN PARLEY_BENCH_BIN MEMBERS RATE [DATABASE_URL]
#
# DATABASE_URL empty means SQLite in a temporary data directory. For
# PostgreSQL give a fresh, empty database. DURATION (20s) sets the window.
# PROFILE=FILE saves a CPU profile of the server over the measured window
# (parley serve --pprof on a loopback port; see `go tool pprof`), and
# BENCH_PROFILE=FILE one of the load tool.
# SCENARIO=channel-fanout measures a broadcast channel instead: MEMBERS
# follow one channel and each message is a post to it.
# PAUSE (e.g. 300ms) has each sender wait that long after a message reached
# every member, so that the next one wakes members parked in long-polls.
# SERVER_CPUS and BENCH_CPUS (taskset CPU lists, e.g. 0 and 1) pin the
# server and the load tool to CPUs. SERVER_GOGC sets GOGC for the server
# only (GOGC itself applies to both).
set -euo pipefail

parley=$1 pb=$2 members=$3 rate=$4 db=${5:-}
dir=$(mktemp -d "${TMPDIR:-/tmp}/parley-fanout.XXXXXX")
port=$((20000 + RANDOM % 10000))
pport=$((port + 1))
pid=""
cleanup() {
	if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
		echo "fanout.sh: the server exited during the run; the end of its log:" >&2
		tail -n 40 "$dir/server.log" >&2
	fi
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

printf 'rate_limit:\n  enabled: false\npasswords:\n  argon2_memory_kib: 1024\n  argon2_time: 1\nchannels:\n  posts_per_minute: 1000000000\n' >"$dir/parley.yaml"
GOGC=${SERVER_GOGC:-${GOGC:-}} PARLEY_LISTEN=127.0.0.1:$port PARLEY_DATA_DIR=$dir PARLEY_DATABASE_URL=$db PARLEY_REGISTRATION=open \
	${SERVER_CPUS:+taskset -c "$SERVER_CPUS"} "$parley" serve --config "$dir/parley.yaml" \
	${PROFILE:+--pprof "127.0.0.1:$pport"} >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	kill -0 "$pid" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
	sleep 0.2
done
${BENCH_CPUS:+taskset -c "$BENCH_CPUS"} "$pb" "${SCENARIO:-fanout}" --target "http://127.0.0.1:$port" --members "$members" --rate "$rate" \
	--duration "${DURATION:-20s}" --pause "${PAUSE:-0s}" --setup-timeout 10m --pid "$pid" --json \
	${PROFILE:+--server-pprof "http://127.0.0.1:$pport" --server-profile "$PROFILE"} \
	${BENCH_PROFILE:+--cpuprofile "$BENCH_PROFILE"}
