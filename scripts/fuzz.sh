#!/usr/bin/env bash
# Run every fuzz target for a bounded time each (default 20s; FUZZTIME=5m
# for a long run by hand). A failing input is saved by Go under the
# package's testdata/fuzz/<Target>/ and from then on runs as a regression
# case in plain `go test`: commit it with the fix.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${FUZZTIME:-20s}

targets=(
	"./rooms/pdu FuzzParse"
	"./rooms/pdu FuzzCanonicalJSON"
	"./rooms/pdu FuzzParseV12"
	"./rooms FuzzWithJoinAuthoriser"
	"./rooms FuzzClientEvent"
	"./storage/storetext FuzzCheckJSON"
	"./inbox FuzzParseToken"
	"./inbox FuzzParseFilter"
	"./inbox FuzzParseSlidingBody"
	"./clientapi FuzzReadJSON"
	"./clientapi FuzzParseBackupKeys"
	"./clientapi FuzzParsePageToken"
	"./clientapi FuzzParseSyncQuery"
	"./media FuzzContentDisposition"
	"./media FuzzThumbQuery"
	"./media FuzzWalkJPEG"
	"./accounts/password FuzzParsePHC"
	"./rooms/stateres FuzzResolve"
	"./rooms/inbound FuzzCheck"
	"./federation/inbound FuzzParseTransaction"
	"./federation/inbound FuzzProcess"
	"./federation/serveracl FuzzAllowed"
	"./pushrules FuzzCheckActions"
	"./pushrules FuzzParseDocument"
	"./push FuzzCheckSet"
	"./push FuzzParseRejected"
	"./e2ekeys FuzzKeyJSON"
	"./cmd/parley-bench FuzzParseStatCPU"
	"./federation/transport FuzzAuthenticate"
	"./federation/keys FuzzNotaryQuery"
	"./federation/roomread FuzzParseMissingEvents"
	"./media FuzzParseFederationMedia"
	"./federation/membership FuzzSignTemplate"
	"./federation/membership FuzzCheckAnswer"
	"./clientapi FuzzParseSearch"
	"./search FuzzPrepare"
	"./storage/searchtext FuzzTokens"
)
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	echo "--- fuzz $name ($pkg) for $fuzztime"
	# Go's fuzzer can end a clean run with "context deadline exceeded" and no
	# crasher when the time runs out while a worker is busy (a toolchain
	# flake). Such a run is repeated once; a real failure writes its input
	# under testdata/fuzz and is never retried.
	out=$(mktemp)
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 10s -parallel 2 "$pkg" 2>&1 | tee "$out"; then
		if grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written to' "$out"; then
			echo "--- fuzz $name: deadline flake without a failing input; running it once more"
			go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 10s -parallel 2 "$pkg"
		else
			rm -f "$out"
			exit 1
		fi
	fi
	rm -f "$out"
done
# The cross-check against mautrix needs the jsonv2 build.
echo "--- fuzz FuzzCrossCheckContent (./rooms/pdu, jsonv2) for $fuzztime"
GOEXPERIMENT=jsonv2 go test -run '^$' -fuzz '^FuzzCrossCheckContent$' -fuzztime "$fuzztime" -fuzzminimizetime 10s -parallel 2 ./rooms/pdu
