// Package inbound owns the checks a homeserver runs on a PDU that another
// server sent, in the order the Matrix server-server spec gives them
// ("Checks performed on receipt of a PDU"):
//
//  1. format: the event is valid for the room version (package pdu parses
//     it, with strict canonical JSON; "unsigned" is ignored, "origin" may
//     or may not be there). Failing this drops the event.
//  2. signatures and content hash: every server that must sign (the
//     sender's, and for a restricted join the authorising user's) has a
//     signature that verifies with a key Keys knows. A bad signature drops
//     the event; a bad content hash does not: the event goes on as its
//     redacted copy, which is what gets checked and stored.
//  3. auth against the event's own auth_events (they must be the right
//     selection, known, and not rejected). Failing this rejects it.
//  4. auth against the state before the event, resolved over its
//     prev_events with package stateres. Failing this rejects it.
//  5. auth against the room's current state. Failing this soft-fails it:
//     it is kept in the DAG but never shown nor used as an extremity.
//
// Room versions are those package pdu supports (10, 11 and 12); an event
// of a room of any other version is dropped at check 1.
//
// Check runs the checks and returns a Verdict: Accepted, Rejected (with
// the reason), SoftFailed, or Outlier (CheckOutlier, for an event fetched
// only as auth or state of another: checks 1–3 only). The verdict carries
// the resolved state before the event and the forward extremities that
// check 5 read. A dropped event is an error wrapping ErrDropped; an event
// whose auth or prev events are not held is a *MissingError naming them,
// so the caller (federation) can fetch them and try again.
//
// Accept checks and then persists. The writer that persists stays the only
// thing that assigns stream positions and never waits for the network; it
// only refuses with ErrExtremitiesMoved when the room's forward
// extremities are no longer those check 5 saw, and Accept then re-runs
// check 5 (checks 1–4 depend only on the event and its ancestors, which do
// not change) and tries again, at most MaxAttempts times.
//
// # Who owns what
//
// The package is pure logic: no HTTP, no SQL, no goroutines, no network.
// It reaches the room through three small interfaces, defined here where
// they are used:
//
//   - Source: the room's version, events by ID (outliers and rejected
//     events too, marked), the state after events, and the current state
//     with the forward extremities. The store backs it.
//   - Keys: the verify key of a server's key ID at a time. Federation's key
//     fetcher backs it; tests give keys directly.
//   - Persister: stores a Verdict (the writer). Its shape mirrors the
//     store's PersistInbound: Raw, Event, Kind, Reason, StateBefore,
//     ExtremitiesSeen.
//
// Whether an event is allowed is package authrules' business, and which
// state wins a fork is package stateres'. This package only decides which
// state each check runs against, and what the outcome means.
package inbound
