package rooms

import (
	"context"

	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/storage"
)

// Store is what the room service reads and writes in the database: the
// methods of *storage.Store it calls, and no others, so this signature says
// what the room core touches. *storage.Store implements it; homeserver
// passes the one store, as before.
//
// The writer's transaction stays the concrete *storage.WriteTx: it is the
// one place positions, events and state groups are written, and the writer
// tests run it on both real engines (with statement faults) rather than on
// a fake that could drift from them.
type Store interface {
	// The writer: its transactions, and what it loads when it starts, when
	// a room enters its cache, and after a commit of unknown outcome.
	BeginWrite(ctx context.Context) (*storage.WriteTx, error)
	MaxPosition(ctx context.Context) (int64, error)
	MinPosition(ctx context.Context) (int64, error)
	MaxStateGroup(ctx context.Context) (int64, error)
	SearchIndexedPos(ctx context.Context) (int64, error)
	LoadRoomHead(ctx context.Context, roomID string) (storage.RoomHead, error)
	TxnEvent(ctx context.Context, userID, deviceID, txnID string) (string, error)

	// Blocked rooms (blocked.go).
	BlockedRooms(ctx context.Context) ([]string, error)
	SetRoomBlocked(ctx context.Context, roomID string, blocked bool, by string, ts int64) error

	// Reads: rooms, events, memberships and state for the read API and
	// the access rules (read.go).
	GetRoom(ctx context.Context, roomID string) (storage.Room, error)
	GetEvent(ctx context.Context, eventID string) (storage.Event, error)
	EventPositions(ctx context.Context, eventIDs []string) (map[string]storage.Event, error)
	ThreadOf(ctx context.Context, eventID string) (string, error)
	GetMembership(ctx context.Context, roomID, userID string) (storage.Membership, error)
	UserMemberships(ctx context.Context, userID, membership string) ([]storage.Membership, error)
	MembershipHistory(ctx context.Context, roomID, userID string) (members, visibility []storage.Event, err error)
	MembershipHistories(ctx context.Context, userID string, roomIDs []string) (members, visibility map[string][]storage.Event, err error)
	MemberEvents(ctx context.Context, pairs []storage.RoomUser) ([]storage.Event, error)
	MemberEventsAt(ctx context.Context, roomID string, userIDs []string, pos int64) ([]storage.Event, error)
	CurrentState(ctx context.Context, roomID string) ([]storage.Event, error)
	// CurrentStateKeys is the current state under keys only (the inbound
	// checks' few auth keys).
	CurrentStateKeys(ctx context.Context, roomID string, keys []dag.StateTuple) (dag.StateMap, error)
	StateAt(ctx context.Context, roomID string, pos int64) ([]storage.Event, error)

	// The DAG: events listed or not, extremities and state groups, for the
	// inbound pipeline's Source (inboundsource.go, persist_inbound.go).
	EventsByID(ctx context.Context, ids []string) ([]dag.StoredPDU, error)
	Extremities(ctx context.Context, roomID string) ([]dag.Extremity, error)
	StateGroupState(ctx context.Context, group int64) (dag.StateMap, int, error)
	StateMapAtPos(ctx context.Context, roomID string, pos int64) (dag.StateMap, error)

	// Federation: who is in a room, for joins through another server
	// (remote_join.go) and other servers' reads (serverread.go).
	RoomMemberships(ctx context.Context, roomID string) ([]storage.Membership, error)
	ServerInRoom(ctx context.Context, roomID, server string) (bool, error)

	// Server notices: a user may not leave their notices room (notices.go).
	IsServerNoticeRoom(ctx context.Context, roomID string) (bool, error)
}

var _ Store = (*storage.Store)(nil)
