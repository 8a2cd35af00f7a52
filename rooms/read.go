package rooms

import (
	"context"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/storage"
)

// Reads go straight to the store: only writes pass through the writer.

// Visibility decides which events of a room one user may read, by the spec's
// history-visibility algorithm over the user's membership history.
type Visibility struct {
	userID  string
	members []storage.Event // the user's member events, in order
	vis     []storage.Event // the room's history_visibility events, in order
}

// VisibilityFor loads what deciding visibility needs: two indexed queries.
func (s *Service) VisibilityFor(ctx context.Context, roomID, userID string) (*Visibility, error) {
	members, vis, err := s.store.MembershipHistory(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	return &Visibility{userID: userID, members: members, vis: vis}, nil
}

// NewVisibility builds a Visibility from already loaded histories (see
// storage.MembershipHistories), for callers that batch many rooms.
func NewVisibility(userID string, members, vis []storage.Event) *Visibility {
	return &Visibility{userID: userID, members: members, vis: vis}
}

// EverMember reports whether the user has had any membership in the room.
func (v *Visibility) EverMember() bool { return len(v.members) > 0 }

// WorldReadable reports whether the room's current history visibility is
// world_readable: then anyone signed in may read it without joining.
func (v *Visibility) WorldReadable() bool {
	return len(v.vis) > 0 && v.historyAt(1<<62) == "world_readable"
}

// MembershipAt returns the user's membership right after position pos.
func (v *Visibility) MembershipAt(pos int64) string {
	m := ""
	for i := range v.members {
		if v.members[i].Pos > pos {
			break
		}
		m = v.members[i].Membership
	}
	return m
}

// Current returns the user's current membership and its position.
func (v *Visibility) Current() (string, int64) {
	if len(v.members) == 0 {
		return "", 0
	}
	last := v.members[len(v.members)-1]
	return last.Membership, last.Pos
}

func (v *Visibility) historyAt(pos int64) string {
	h := "shared"
	for i := range v.vis {
		if v.vis[i].Pos > pos {
			break
		}
		if hv := gjson.GetBytes(v.vis[i].Client, "content.history_visibility").String(); hv != "" {
			h = hv
		}
	}
	return h
}

// CanSee applies the algorithm to the event at pos sent by sender.
func (v *Visibility) CanSee(e *storage.Event) bool {
	if e.Type == "m.room.member" && e.StateKey != nil && *e.StateKey == v.userID {
		return true // a user always sees their own membership changes
	}
	hv := v.historyAt(e.Pos)
	if hv == "world_readable" {
		return true
	}
	// Membership "at the event" is the state before it, so a joining
	// user's own join is handled above and a leaver does not see what follows.
	m := v.MembershipAt(e.Pos - 1)
	if m == "join" {
		return true
	}
	switch hv {
	case "shared":
		for i := range v.members {
			if v.members[i].Pos > e.Pos && v.members[i].Membership == "join" {
				return true
			}
		}
		cur, _ := v.Current()
		return cur == "join"
	case "invited":
		return m == "invite"
	}
	return false
}

// Filter keeps the events the user may see, in place.
func (v *Visibility) Filter(events []storage.Event) []storage.Event {
	out := events[:0]
	for i := range events {
		if v.CanSee(&events[i]) {
			out = append(out, events[i])
		}
	}
	return out
}

// ReadableState returns the room state the user may read: the current state
// while joined (or when the room is world-readable), else the state at the
// moment they left.
func (s *Service) ReadableState(ctx context.Context, roomID, userID string) ([]storage.Event, error) {
	if _, err := s.store.GetRoom(ctx, roomID); errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: you are not in this room", ErrForbidden)
	} else if err != nil {
		return nil, err
	}
	v, err := s.VisibilityFor(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	cur, pos := v.Current()
	switch {
	case cur == "join":
		return s.withTier(s.store.CurrentState(ctx, roomID))
	case cur == "leave" || cur == "ban":
		m, err := s.store.GetMembership(ctx, roomID, userID)
		if err != nil {
			return nil, err
		}
		if v.MembershipAt(pos-1) == "join" && !m.Forgotten {
			return s.store.StateAt(ctx, roomID, pos)
		}
	}
	if v.WorldReadable() {
		return s.store.CurrentState(ctx, roomID)
	}
	return nil, fmt.Errorf("%w: you are not in this room", ErrForbidden)
}
