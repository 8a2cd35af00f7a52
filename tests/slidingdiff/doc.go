// Package slidingdiff checks Parley's simplified sliding sync (MSC4186)
// against Synapse's: one scripted session runs on both servers, and the
// responses are compared field by field once IDs, timestamps and tokens
// are normalised (issue 14). A second session (filters_test.go) uses
// every list filter Synapse 1.163 implements (a space, an encrypted room,
// m.direct, m.tag, typed rooms), an extension scoped to some lists, the
// pos refusals, required_state wildcards and $LAZY, and timeline_limit 0.
//
// Run it with
//
//	export PARLEY_SYNAPSE_HOST=127.0.0.50 PARLEY_SYNAPSE_DIR=/tmp/parley-synapse-sliding
//	eval "$(scripts/synapse-start.sh)"
//	go test ./tests/slidingdiff/
//	scripts/synapse-stop.sh
//
// Without PARLEY_TEST_SYNAPSE_URL the test skips and says so.
package slidingdiff
