// Package rooms owns the room model: each room is an ordered event log, and
// this package is the only writer of those logs. It builds events (via
// rooms/pdu), checks them against the auth rules (via rooms/authrules) and the
// room's cached current state, and appends them through one writer goroutine
// that commits every pending write in one transaction (group commit).
//
// The writer assigns stream positions in commit order, so a reader that sees
// position N has every position below N committed: sync never shows N+1
// before N. A send is acknowledged only after its transaction commits.
//
// rooms never speaks HTTP and never decides what a user sees in sync; those
// belong to clientapi and inbox.
package rooms

import "errors"

// Sentinel errors. Wrapped errors carry a human-readable reason.
var (
	ErrForbidden      = errors.New("forbidden")
	ErrUnknownRoom    = errors.New("unknown room")
	ErrNotFound       = errors.New("not found")
	ErrInvalid        = errors.New("invalid")
	ErrRoomInUse      = errors.New("room alias in use")
	ErrBadRoomVersion = errors.New("unsupported room version")
	ErrStopped        = errors.New("writer stopped")
	ErrTooLarge       = errors.New("too large")
)
