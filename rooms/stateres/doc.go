// Package stateres owns Matrix state resolution: given the room states at
// the tips of a room's DAG (one state map per fork), it decides the single
// state the room has where those forks meet.
//
// Room versions 10 and 11 use state resolution v2, as the spec's
// "State resolution v2" algorithm defines it. Room version 12 uses v2.1
// (MSC4297): the full conflicted set also takes the conflicted state
// subgraph, the first iterative auth checks start from an empty state, and
// the room's creators (MSC4289) outrank every integer power level when
// power events are ordered. Version 12 is only reachable once packages pdu
// and authrules support it; until then Resolve refuses it and the package's
// own tests run the v2.1 steps against the version 11 auth rules.
//
// It is a pure function of its inputs: no storage, no network, no
// goroutines. Events come through Loader, which the caller backs with
// whatever it has (the store, a federation response, a test DAG). Whether an
// event is allowed is package authrules' business; stateres only calls
// authrules.Check in the order the algorithm prescribes.
//
// The package is hand-written: mautrix-go v0.32 ships auth rules
// (federation/eventauth, which needs GOEXPERIMENT=jsonv2) but no state
// resolution, and gomatrixserverlib is only used by the test-only module in
// crosscheck/ to compare answers.
package stateres
