// Package synapse holds Parley's interoperability tests against a real
// Synapse (issue 11, "Parley with Synapse"). It has no code of its own:
// the tests start a federating Parley on 127.0.0.2 and talk to the Synapse
// that scripts/synapse-start.sh runs on 127.0.0.10, through both servers'
// client APIs and Parley's federation parts.
//
// Run them with
//
//	eval "$(scripts/synapse-start.sh)"
//	go test -race ./tests/synapse/
//	scripts/synapse-stop.sh
//
// Without PARLEY_TEST_SYNAPSE_URL every test skips and says so.
package synapse
