package edus

import (
	"context"

	"github.com/parley-im/parley/federation/outbound"
)

// Queue is the part of the outbound queue that EDUs use
// (*outbound.Queue).
type Queue interface {
	ServersInRoom(dst []string, roomID string) []string
	EnqueueEDU(ctx context.Context, destination string, edu outbound.EDU) error
}

// Rooms is the in-memory routing table (*inbox.Notifier): a user's joined
// rooms, which of them are above the small tier, and whether a user shares
// a room with a server's users.
type Rooms interface {
	JoinedRooms(user string) (rooms map[string]int64, pos int64)
	QuietRooms(rooms map[string]int64) map[string]bool
	SharesRoomWithSuffix(user, suffix string) bool
}

// serversSharing returns the other servers with a user joined to a room
// that user is joined to. withQuiet false leaves out rooms above the
// small tier (presence does not travel through them).
func serversSharing(rooms Rooms, q Queue, user string, withQuiet bool) []string {
	joined, _ := rooms.JoinedRooms(user)
	if len(joined) == 0 {
		return nil
	}
	var quiet map[string]bool
	if !withQuiet {
		quiet = rooms.QuietRooms(joined)
	}
	seen := map[string]struct{}{}
	var buf, out []string
	for room := range joined {
		if quiet[room] {
			continue
		}
		buf = q.ServersInRoom(buf[:0], room)
		for _, s := range buf {
			if _, dup := seen[s]; !dup {
				seen[s] = struct{}{}
				out = append(out, s)
			}
		}
	}
	return out
}

// SharesWithLocal reports whether user is joined to a room where a user of
// serverName is joined too: the users whose presence and device lists
// this server keeps.
func SharesWithLocal(rooms Rooms, serverName, user string) bool {
	return rooms.SharesRoomWithSuffix(user, ":"+serverName)
}
