#!/usr/bin/env bash
# Synapse-to-Synapse federation figures, beside Parley-to-Parley in
# docs/benchmarks.md ("Federation speed (round 4)").
#
#   bench/synapse-fed.sh                       # pdus 1000, join 1000, join 10000
#   bench/synapse-fed.sh pdus 1000 join 1000   # chosen scenarios
#   bench/synapse-fed.sh catchup 1000 pdus 1000 # B stopped, A sends, B restarted
#
# Starts (or reuses) two Synapses with scripts/synapse-start.sh, on
# $SYN_A_HOST (default 127.0.0.40) and $SYN_B_HOST (default 127.0.0.41),
# data in $SYN_DIR/a and $SYN_DIR/b (default ${TMPDIR:-/tmp}/parley-synfed),
# both on SQLite, federating over loopback with TLS. Then runs
# bench/synapse-fed.py, which prints one JSON line per scenario (see its
# docstring for what each measures). The Synapses keep running for another
# run; stop them with
#   PARLEY_SYNAPSE_DIR=$SYN_DIR/a scripts/synapse-stop.sh   (and .../b)
# Filling a 10,000-member room takes Synapse several minutes.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${SYN_DIR:-${TMPDIR:-/tmp}/parley-synfed}
a_host=${SYN_A_HOST:-127.0.0.40}
b_host=${SYN_B_HOST:-127.0.0.41}
[[ $# -gt 0 ]] || set -- pdus 1000 join 1000 join 10000

start() { # host dir -> "url secret"
	local env
	env=$(PARLEY_SYNAPSE_HOST=$1 PARLEY_SYNAPSE_DIR=$2 "$root/scripts/synapse-start.sh")
	eval "$env"
	echo "$PARLEY_TEST_SYNAPSE_URL $PARLEY_TEST_SYNAPSE_SECRET"
}
a=$(start "$a_host" "$dir/a")
b=$(start "$b_host" "$dir/b")
# catchup stops and restarts B through the same scripts.
export SYN_ROOT=$root SYN_B_DIR=$dir/b SYN_B_HOST=$b_host
# shellcheck disable=SC2086 # two words each: URL and secret
exec python3 "$root/bench/synapse-fed.py" $a $b "$@"
