// Package dendrite holds Parley's interoperability tests against a real
// Dendrite v0.13.8 (issue 11, "Parley with Dendrite"). It has no code of
// its own: the tests start a federating Parley on 127.0.0.2 and talk to the
// Dendrite that scripts/dendrite-start.sh runs on 127.0.0.60, through both
// servers' client APIs. Room version 11 only: Dendrite predates 12.
//
// Run them with
//
//	scripts/dendrite-interop.sh
//
// or by hand:
//
//	eval "$(scripts/dendrite-start.sh)"
//	go test -race ./tests/dendrite/
//	scripts/dendrite-stop.sh
//
// Without PARLEY_TEST_DENDRITE_URL every test skips and says so.
package dendrite
