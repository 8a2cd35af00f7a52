package inbound

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/rooms/stateres"
)

// StateMap is a room state: the event ID holding each piece of state.
type StateMap = stateres.StateMap

// Source is what the checks read about a room. Implementations read one
// consistent snapshot per call; between calls the room may move on, which
// is why the writer re-checks extremities (see Persister).
type Source interface {
	// RoomVersion returns the version of a room this server is in, or an
	// error wrapping ErrUnknownRoom.
	RoomVersion(ctx context.Context, roomID string) (string, error)
	// Events returns what the server holds of each ID, in order: accepted
	// and soft-failed events, outliers marked Outlier, and rejected events
	// marked Rejected. A zero Stored (nil Event) means the event is not
	// held.
	Events(ctx context.Context, ids []string) ([]Stored, error)
	// StatesAfter returns the room state after each event, in order. The
	// state after a rejected event is the state before it (it never takes
	// effect); after a soft-failed one it includes the event. A nil map
	// means the state there is not known (an outlier, or not held), and
	// the checks then ask for it with a MissingError. The maps are only
	// read.
	StatesAfter(ctx context.Context, ids []string) ([]StateMap, error)
	// Current returns the room's current state, restricted to keys (the
	// only entries check 5 reads), and its forward extremities, both from
	// the same snapshot.
	Current(ctx context.Context, roomID string, keys []authrules.StateKey) (state StateMap, extremities []string, err error)
}

// Stored is one event as the server holds it.
type Stored struct {
	Event *pdu.Event
	// Rejected marks an event stored as rejected: it never authorises
	// anything, and an event citing it in auth_events is rejected too.
	Rejected bool
	// Outlier marks an event stored as an outlier: it may still arrive
	// as a regular event and then be checked in full.
	Outlier bool
}

// Keys gives the verify keys of other servers. It is federation's key
// fetcher; it must answer from its cache or fail rather than wait long,
// since checks run on the inbound transaction's time.
type Keys interface {
	// VerifyKey returns server's ed25519 key keyID as valid at atMillis
	// (the event's origin_server_ts) for a room of roomVersion (whose
	// rules cap how long a key stays valid), or an error when it is
	// unknown or expired by then. federation/keys.Keyring has this method.
	VerifyKey(ctx context.Context, server, keyID string, atMillis int64, roomVersion string) (ed25519.PublicKey, error)
}

// Persister stores a verdict. It is the room writer, mapped by the caller
// to the store's PersistInbound(ctx, InboundEvent{Raw, Event, Kind, Reason,
// StateBefore, ExtremitiesSeen}).
type Persister interface {
	// Persist stores v and returns the stream position it got (0 when the
	// kind gets none). For an Accepted (and, if it likes, a SoftFailed)
	// verdict whose ExtremitiesSeen are no longer the room's forward
	// extremities, it stores nothing and returns an error matching
	// ErrExtremitiesMoved, so Accept checks again against the new state.
	// It must not keep v after returning such an error.
	Persist(ctx context.Context, v *Verdict) (pos int64, err error)
}

// Kind is the outcome of the checks.
type Kind int

const (
	// Accepted events pass every check; they join the timeline and state.
	Accepted Kind = iota + 1
	// Rejected events fail check 3 or 4. They are kept with the reason
	// (so the same event is not fetched and checked again), never used
	// for state and never served to clients.
	Rejected
	// SoftFailed events pass checks 1–4 but not check 5: they stay in the
	// DAG (a later event may cite them) but are neither shown to clients
	// nor used as forward extremities.
	SoftFailed
	// Outlier events were fetched only as the auth or state of another
	// event and passed checks 1–3; they have no place in the timeline.
	Outlier
)

func (k Kind) String() string {
	switch k {
	case Accepted:
		return "accepted"
	case Rejected:
		return "rejected"
	case SoftFailed:
		return "soft-failed"
	case Outlier:
		return "outlier"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Verdict is what the checks decided about one event, in the shape the
// writer stores. It is owned by the caller once returned.
type Verdict struct {
	// Raw is the event to store: canonical JSON without "unsigned", the
	// redacted copy when the content hash failed.
	Raw []byte
	// Event is the parsed Raw.
	Event *pdu.Event
	Kind  Kind
	// Reason says why the event was rejected or soft-failed; empty
	// otherwise.
	Reason string
	// Redacted reports that the content hash failed, so Raw and Event are
	// the redacted copy (spec: "redacted before being processed further").
	Redacted bool
	// StateBefore is the state before the event, resolved over its
	// prev_events; for a rejected event it is also the state after it.
	// Nil for outliers. When the event has one prev event it is the very
	// map Source.StatesAfter returned: read it, never change it.
	StateBefore StateMap
	// ExtremitiesSeen are the room's forward extremities when check 5 read
	// the current state. Nil for outliers and rejected events, which the
	// writer stores whatever the room's extremities are now.
	ExtremitiesSeen []string
}

var (
	// ErrDropped marks an event that fails check 1 or 2: it is not stored
	// at all. Storing it as rejected would be wrong: its ID is a hash that
	// leaves out signatures and, for some events, content, so a forged copy
	// would shadow the genuine event.
	ErrDropped = errors.New("inbound: event dropped")
	// ErrKeyUnavailable marks an event dropped at check 2 because Keys
	// had none of the signing keys it names (unknown, expired, or not
	// fetchable now), as opposed to a signature that does not verify.
	ErrKeyUnavailable = errors.New("inbound: signing key unavailable")
	// ErrAlreadyHeld marks an event the server already holds (other than
	// as an outlier, when it arrives as a regular event): nothing to do.
	ErrAlreadyHeld = errors.New("inbound: event already held")
	// ErrUnknownRoom marks an event for a room this server is not in.
	ErrUnknownRoom = errors.New("inbound: unknown room")
	// ErrExtremitiesMoved is what a Persister returns (or wraps) when the
	// room moved on since check 5 read it.
	ErrExtremitiesMoved = errors.New("inbound: room extremities moved")
	// ErrTooManyAttempts marks an Accept that saw the room move on
	// MaxAttempts times in a row; the caller may retry later.
	ErrTooManyAttempts = errors.New("inbound: room kept moving during checks")
	// ErrMissing matches every *MissingError.
	ErrMissing = errors.New("inbound: events missing")
)

// MissingError names the events the checks need but the server does not
// hold: auth events (fetch them, e.g. with /event_auth, and store them as
// outliers) or prev events whose state is unknown (fetch them, or the
// state at the event with /state_ids).
type MissingError struct {
	EventID string
	// Auth lists auth events not held.
	Auth []string
	// Prev lists prev events not held, or held without known state.
	Prev []string
}

func (e *MissingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "inbound: event %s needs", e.EventID)
	if len(e.Auth) > 0 {
		fmt.Fprintf(&b, " auth events %s", strings.Join(e.Auth, ", "))
	}
	if len(e.Prev) > 0 {
		if len(e.Auth) > 0 {
			b.WriteString(" and")
		}
		fmt.Fprintf(&b, " the state after prev events %s", strings.Join(e.Prev, ", "))
	}
	return b.String()
}

// Is makes errors.Is(err, ErrMissing) true.
func (e *MissingError) Is(target error) bool { return target == ErrMissing }
