package outbound

import (
	"context"
	"slices"

	"github.com/parley-im/parley/storage"
)

// OpenRoomServers records that servers are in roomID from position pos
// on: this server joined the room through another (send_join), and their
// members came in the join's state, not as events of the room log the
// scanner reads. Their spans open at the join, so they get this server's
// join and everything after it. Idempotent.
func (q *Queue) OpenRoomServers(ctx context.Context, roomID string, servers []string, pos int64) error {
	// A server whose span is still open (this server rejoins a room it
	// never saw the server leave) keeps it: a second open span would send
	// it every event twice.
	open := q.ServersInRoom(nil, roomID)
	changes := make([]storage.FedSpanChange, 0, len(servers))
	var added []string
	for _, s := range servers {
		if !slices.Contains(open, s) {
			changes = append(changes, storage.FedSpanChange{Server: s, RoomID: roomID, Pos: pos, Open: true})
			added = append(added, s)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	// Scan position 0 leaves the stored one as it is (it only grows).
	if err := q.store.FedApplyScan(ctx, changes, 0); err != nil {
		return err
	}
	for _, s := range added {
		q.roomAdd(roomID, s)
		q.wake(s)
	}
	return nil
}
