#!/usr/bin/env bash
# Run Parley's Dendrite interop tests (tests/dendrite) end to end: install
# Dendrite v0.13.8 if needed, start it on loopback, run the tests, stop it
# and delete its files (also on failure or Ctrl-C).
#
#   scripts/dendrite-interop.sh                 # both stores if PARLEY_TEST_DATABASE_URL is set
#   scripts/dendrite-interop.sh -short -v       # extra arguments go to `go test`
#
# .ci/run calls it last, after installing Dendrite in the background from
# its start (from empty Go caches the install takes about 8 minutes; see
# docs/federation.md, "Interoperability with Dendrite"). With warm caches
# the whole script takes under a minute.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
t0=$SECONDS

export PARLEY_DENDRITE_DIR=${PARLEY_DENDRITE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/parley-dendrite-interop.XXXXXX")}
trap '"$root/scripts/dendrite-stop.sh"' EXIT

eval "$(scripts/dendrite-start.sh)"
export PARLEY_TEST_DENDRITE_URL PARLEY_TEST_DENDRITE_SERVER_NAME PARLEY_TEST_DENDRITE_SECRET PARLEY_TEST_DENDRITE_DIR
echo "dendrite-interop: Dendrite up after $((SECONDS - t0))s at $PARLEY_TEST_DENDRITE_URL ($PARLEY_TEST_DENDRITE_SERVER_NAME)" >&2

go test -race -count=1 "$@" ./tests/dendrite/
echo "dendrite-interop: passed in $((SECONDS - t0))s" >&2
