// Package pdu owns Parley's Matrix event format (PDU) for room versions 10
// and 11: building, hashing and signing local events, parsing and
// validating events as stored or received over federation, event IDs
// (reference hashes), the redaction algorithm, signature verification,
// canonical JSON enforcement, identifier grammar and the server signing key.
//
// It must not decide whether an event is allowed (that is package
// rooms/authrules), fetch keys or events, touch storage or the network, or
// import mautrix's federation/pdu or federation/eventauth packages: those
// only build with GOEXPERIMENT=jsonv2 and Parley must build with a plain Go
// 1.26 toolchain. They are used only by the jsonv2-tagged cross-check tests.
package pdu
