#!/usr/bin/env bash
# A few seconds of every cmd/parley-bench scenario against a built Parley:
# proves the tool and the server still work together (CI runs it on each
# store). It measures nothing worth quoting; bench/compare.sh does that.
#
#   bench/smoke.sh PARLEY_BIN PARLEY_BENCH_BIN [DATABASE_URL]
set -euo pipefail

parley=$1 pb=$2 db=${3:-}
dir=$(mktemp -d "${TMPDIR:-/tmp}/parley-smoke.XXXXXX")
port=$((20000 + RANDOM % 10000))
pid=""
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

printf 'rate_limit:\n  enabled: false\npasswords:\n  argon2_memory_kib: 1024\n  argon2_time: 1\n' >"$dir/parley.yaml"
PARLEY_LISTEN=127.0.0.1:$port PARLEY_DATA_DIR=$dir PARLEY_DATABASE_URL=$db PARLEY_REGISTRATION=open \
	"$parley" serve --config "$dir/parley.yaml" >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	kill -0 "$pid" 2>/dev/null || { cat "$dir/server.log"; exit 1; }
	sleep 0.2
done

run() {
	echo "--- parley-bench $*"
	"$pb" "$@" --target "http://127.0.0.1:$port" --duration 3s --setup-timeout 2m --json >"$dir/report.json"
	python3 - "$dir/report.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
c = r.get("counts", {})
print(json.dumps({k: r.get(k) for k in ("scenario", "seconds")} | {"counts": c,
      "rates": r.get("rates_per_second"), "values": r.get("values")}))
useful = sum(v for k, v in c.items() if k in ("acked_sends", "deliveries", "polls_held", "syncs"))
if c.get("errors", 0) or not useful:
    sys.exit(f"smoke: {r['scenario']}: {c.get('errors', 0)} errors, nothing measured")
EOF
}
run send --senders 4 --rooms 2
run latency --users 20 --senders 2 --rooms 2 --rate 50
run fanout --members 20
run idle --conns 100 --pid "$pid"
run initial-sync --rooms 10 --history 10
