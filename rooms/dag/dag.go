// Package dag holds the records of a room's event graph: forward
// extremities, state maps and state groups, the per-position changes of
// current state, and the events kept out of every client read. Package
// rooms decides them (it owns the rules: what is accepted, what the state
// is, which position and group each event gets) and package storage
// persists them; this package is the leaf both import, so that neither
// defines the other's vocabulary and no import cycle forms. It has no
// behaviour of its own.
package dag

// StateTuple names one piece of room state.
type StateTuple struct{ Type, StateKey string }

// StateMap is a room state: the event ID holding each piece of state.
type StateMap map[StateTuple]string

// Extremity is a forward extremity of a room.
type Extremity struct {
	EventID string
	Depth   int64
}

// UnlistedKind says why a stored event is kept out of every client read.
type UnlistedKind string

const (
	// Outlier: an event known without its place in the DAG (auth events
	// and state fetched from another server). No position, no state.
	Outlier UnlistedKind = "outlier"
	// Rejected: failed the auth checks; kept with its reason so it is not
	// fetched and checked again, never used for state.
	Rejected UnlistedKind = "rejected"
	// SoftFailed: passed auth against its own DAG but not against current
	// state. Its state group is kept (later events may build on it), but it
	// is neither shown nor an extremity.
	SoftFailed UnlistedKind = "soft_failed"
)

// UnlistedEvent is a stored event users never see.
type UnlistedEvent struct {
	EventID    string
	RoomID     string
	Kind       UnlistedKind
	Reason     string
	Depth      int64
	StateGroup int64 // 0: none (outliers, rejected events)
	PrevIDs    []string
	AuthIDs    []string
	PDU        []byte
	ReceivedTS int64
}

// StateDelta is one changed piece of state; EventID "" removes it.
type StateDelta struct {
	Type, StateKey, EventID string
}

// StateGroupRow is a state group's row. Parent 0 makes it a full snapshot.
type StateGroupRow struct {
	ID     int64
	RoomID string
	Parent int64
	Hops   int
}

// CurrentChange is one change to a room's current state. EventID ""
// removes the key. Membership and Sender are those of the new event when it
// is an m.room.member event.
type CurrentChange struct {
	Type, StateKey, EventID string
	Membership, Sender      string
}

// StoredPDU is an event as the DAG knows it, listed or not.
type StoredPDU struct {
	EventID    string
	RoomID     string
	Kind       UnlistedKind // "" for an accepted (listed) event
	Reason     string
	Pos        int64 // 0 for unlisted events
	Depth      int64
	StateGroup int64
	PDU        []byte
}
