package inbox

import (
	"context"

	"github.com/parley-im/parley/storage"
)

// The store's methods inbox calls, and no others, so these signatures say
// what sync touches. *storage.Store implements both; homeserver passes the
// one store, as before.

// NotifierStore is what NewNotifier reads once, to build its routing
// tables: the stream position, every joined membership and each room's
// newest position.
type NotifierStore interface {
	MaxPosition(ctx context.Context) (int64, error)
	AllJoined(ctx context.Context) ([]storage.Membership, error)
	RoomPositions(ctx context.Context) (map[string]int64, error)
}

// SyncStore is what a Syncer reads to answer /sync.
type SyncStore interface {
	// Rooms: which ones changed for the user, and what to show of each
	// (rooms.go, tiers.go, invitestate.go).
	MembershipChanges(ctx context.Context, userID string, since, upto int64) ([]storage.Membership, error)
	MembershipHistories(ctx context.Context, userID string, roomIDs []string) (members, visibility map[string][]storage.Event, err error)
	GetRoom(ctx context.Context, roomID string) (storage.Room, error)
	RoomTimelines(ctx context.Context, bounds []storage.RoomBound, limit int) ([]storage.Event, error)
	StateEventsIn(ctx context.Context, bounds []storage.RoomBound) ([]storage.Event, error)
	CurrentStateOf(ctx context.Context, roomIDs []string) ([]storage.Event, error)
	CurrentStateWithoutMembers(ctx context.Context, roomIDs []string, member string) ([]storage.Event, error)
	StateOfTypes(ctx context.Context, roomIDs, types []string) ([]storage.Event, error) // sliding sync's list filters
	EventPositions(ctx context.Context, eventIDs []string) (map[string]storage.Event, error)
	RoomSummaries(ctx context.Context, viewer string, roomIDs []string) (map[string]*storage.Summary, error)
	UnreadCountsByThread(ctx context.Context, userID string, roomIDs []string, upto int64) (map[string]storage.RoomUnread, error)
	ReceiptsSinceOwnIn(ctx context.Context, viewer string, roomIDs []string, since, upto int64, ownOnly []string) ([]storage.Receipt, error)

	// Lazy-loaded members (membercache.go).
	MemberEvents(ctx context.Context, pairs []storage.RoomUser) ([]storage.Event, error)
	MemberEventsAt(ctx context.Context, roomID string, userIDs []string, pos int64) ([]storage.Event, error)

	// The user's other streams (sync.go).
	AccountDataSince(ctx context.Context, userID string, since, upto int64) ([]storage.AccountData, error)
	ToDeviceFor(ctx context.Context, userID, deviceID string, acked, upto int64, limit int) ([]storage.ToDevice, error)
	DeviceListChangesSince(ctx context.Context, viewer string, since, upto int64) ([]string, error)
	LeftMembersSince(ctx context.Context, roomIDs []string, since, upto int64) ([]string, error)
	OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, []string, error)
	PresenceSinceExcept(ctx context.Context, viewer string, since, upto int64, also, exceptRooms []string) ([]storage.Presence, error)
	UserNoticesSince(ctx context.Context, userID string, since, upto int64, limit int) ([]storage.UserNotice, error)
}

var (
	_ NotifierStore = (*storage.Store)(nil)
	_ SyncStore     = (*storage.Store)(nil)
)
