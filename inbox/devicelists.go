package inbox

import (
	"context"
	"slices"
	"strings"

	"github.com/parley-im/parley/storage"
)

// device_lists.left (issue 16): the users whose device lists a client
// should stop tracking because it no longer shares any room with them. A
// user lands there when, since the token, the viewer left a room they were
// in, or they left (or were kicked or banned from) a room the viewer is in,
// and the viewer and they now share no joined room. Clients then forget
// their devices, so an E2EE session is not shared with a device of someone
// who can no longer read the room.
//
// The work stays off the hot path: a sync when nobody anywhere left since
// its token costs one compare (Notifier.lastLeave); otherwise each joined
// room costs a map read (Notifier.leavePos), and the store is asked only
// for rooms where somebody left.

// deviceListsLeft returns the users for device_lists.left, sorted. changes
// are the viewer's membership changes since the token (nil when it has no
// own news, and then it left no room); joined its joined rooms now.
func (s *Syncer) deviceListsLeft(ctx context.Context, viewer string, since, upto int64, joined map[string]int64, changes []storage.Membership) ([]string, error) {
	var cand map[string]struct{}
	add := func(u string) {
		if u == viewer {
			return
		}
		if cand == nil {
			cand = map[string]struct{}{}
		}
		cand[u] = struct{}{}
	}
	for _, m := range changes {
		if m.Membership != "leave" && m.Membership != "ban" {
			continue
		}
		if _, still := joined[m.RoomID]; still {
			continue
		}
		for _, u := range s.n.RoomMembers(m.RoomID) {
			add(u)
		}
	}
	if rooms := s.n.roomsWithLeavesSince(joined, since); len(rooms) > 0 {
		users, err := s.store.LeftMembersSince(ctx, rooms, since, upto)
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			add(u)
		}
	}
	if len(cand) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(cand))
	for u := range cand {
		if !s.n.SharesRoom(viewer, u) {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out, nil
}

// roomsWithLeavesSince returns which of rooms saw a member leave after
// since.
func (n *Notifier) roomsWithLeavesSince(rooms map[string]int64, since int64) []string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.lastLeave <= since {
		return nil // nobody left anywhere since
	}
	var out []string
	for r := range rooms {
		if n.leavePos[r] > since {
			out = append(out, r)
		}
	}
	return out
}

// SharesRoom reports whether users a and b are both joined to some room,
// from the in-memory routing tables (local and remote users alike).
func (n *Notifier) SharesRoom(a, b string) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	ra, rb := n.userRooms[a], n.userRooms[b]
	if len(rb) < len(ra) {
		ra, rb = rb, ra
	}
	for r := range ra {
		if _, ok := rb[r]; ok {
			return true
		}
	}
	return false
}

// withoutAny returns list without the members of drop (in place).
func withoutAny(list, drop []string) []string {
	if len(drop) == 0 || len(list) == 0 {
		return list
	}
	return slices.DeleteFunc(list, func(u string) bool { return slices.Contains(drop, u) })
}

// SharesRoomWithSuffix reports whether user is joined to a room where a
// user whose ID ends in suffix (":" + a server name) is joined too. It
// copies nothing, so an inbound EDU that names many users costs no
// allocation per user.
func (n *Notifier) SharesRoomWithSuffix(user, suffix string) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	for r := range n.userRooms[user] {
		for m := range n.roomMembers[r] {
			if strings.HasSuffix(m, suffix) {
				return true
			}
		}
	}
	return false
}

// DeviceListsLeft is device_lists.left for GET /keys/changes: the users
// who shared a room with user at from and share none now. (Sharing is
// judged now, not at to: the routing tables hold only the present.)
func (s *Syncer) DeviceListsLeft(ctx context.Context, user string, from, to int64) ([]string, error) {
	joined, _ := s.n.JoinedRooms(user)
	changes, err := s.store.MembershipChanges(ctx, user, from, to)
	if err != nil {
		return nil, err
	}
	return s.deviceListsLeft(ctx, user, from, to, joined, changes)
}
