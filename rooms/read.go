package rooms

import (
	"context"
	"fmt"
	"math"

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
	hv := v.historyOf(e) // backfill.go: by depth for history stored out of order
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

// Access is what one user may read in one room. Every read route (the
// timeline, events, context, members, state) asks ReadAccess and applies
// what it answers, so the rules live here and nowhere else.
//
// Events follow history visibility (CanSee, on the embedded Visibility).
// State follows membership, because state is the room as a member saw it:
//   - joined now, or the room is world_readable: the current state (the
//     spec lets anyone read a world_readable room);
//   - joined once and no longer (left, kicked, banned): the state as of the
//     event that ended their last join, never later, even when more
//     membership changes follow (a ban after a leave shows nothing new);
//   - never joined (invited, knocking, banned without joining): no state;
//     the stripped invite_state that sync gives is all they get.
type Access struct {
	*Visibility
	// Static after ReadAccess.
	svc      *Service
	store    Store
	roomID   string
	stateEnd int64 // last position whose state is readable: StateCurrent, or 0 for none
}

// StateCurrent is the StateEnd of a user who may read the current state.
const StateCurrent = math.MaxInt64

var (
	errNoReadAccess = fmt.Errorf("%w: you are not in this room", ErrForbidden)
	errForgotten    = fmt.Errorf("%w: you have forgotten this room", ErrForbidden)
)

// ReadAccess decides what userID may read in roomID. It refuses with
// ErrForbidden a user who never had a membership (unless the room is
// world_readable) and one who left and forgot the room. An unknown room
// answers like a room one was never in, so room IDs cannot be probed.
func (s *Service) ReadAccess(ctx context.Context, roomID, userID string) (*Access, error) {
	v, err := s.VisibilityFor(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	return s.accessFrom(roomID, v, func() (bool, error) {
		m, err := s.store.GetMembership(ctx, roomID, userID)
		return m.Forgotten, err
	})
}

// accessFrom is the rule of ReadAccess over a loaded Visibility; forgotten
// is asked only for a user who left. ReadAccesses shares it.
func (s *Service) accessFrom(roomID string, v *Visibility, forgotten func() (bool, error)) (*Access, error) {
	a := &Access{Visibility: v, svc: s, store: s.store, roomID: roomID, stateEnd: v.StateEnd()}
	if v.WorldReadable() {
		return a, nil // anyone may read it, forgotten or not
	}
	if !v.EverMember() {
		return nil, errNoReadAccess
	}
	if _, gone := v.Departed(); gone {
		f, err := forgotten()
		if err != nil {
			return nil, err
		}
		if f {
			return nil, errForgotten
		}
	}
	return a, nil
}

// StateEnd is where the user's view of the room's state ends (see Access):
// StateCurrent for the current state (joined now, or world_readable), the
// position of the event that ended their last join, or 0 if they never
// joined. Sync uses it for rooms the user left.
func (v *Visibility) StateEnd() int64 {
	if cur, _ := v.Current(); cur == "join" || v.WorldReadable() {
		return StateCurrent
	}
	for i := len(v.members) - 1; i > 0; i-- {
		if v.members[i-1].Membership == "join" && v.members[i].Membership != "join" {
			return v.members[i].Pos
		}
	}
	return 0
}

// Joined reports whether the user is joined to the room now.
func (a *Access) Joined() bool {
	cur, _ := a.Current()
	return cur == "join"
}

// State returns the latest room state the user may read.
func (a *Access) State(ctx context.Context) ([]storage.Event, error) {
	return a.StateAt(ctx, StateCurrent)
}

// StateAt returns the room state as of position pos, clipped to what the
// user may read; ErrForbidden if they may read none.
func (a *Access) StateAt(ctx context.Context, pos int64) ([]storage.Event, error) {
	switch end := min(pos, a.stateEnd); {
	case a.stateEnd == 0:
		return nil, errNoReadAccess
	case end == StateCurrent:
		return a.svc.withTier(a.store.CurrentState(ctx, a.roomID))
	default:
		return a.store.StateAt(ctx, a.roomID, end)
	}
}

// MemberEvents returns the member events of userIDs the user may read, for
// lazy-loading members next to events: current ones while joined (or
// world_readable), those as of the end of their last join after leaving,
// and none for a user who never joined.
func (a *Access) MemberEvents(ctx context.Context, userIDs []string) ([]storage.Event, error) {
	switch {
	case len(userIDs) == 0 || a.stateEnd == 0:
		return nil, nil
	case a.stateEnd == StateCurrent:
		pairs := make([]storage.RoomUser, len(userIDs))
		for i, u := range userIDs {
			pairs[i] = storage.RoomUser{RoomID: a.roomID, UserID: u}
		}
		return a.store.MemberEvents(ctx, pairs)
	}
	return a.store.MemberEventsAt(ctx, a.roomID, userIDs, a.stateEnd)
}

// ReadableState returns the room state userID may read (see Access).
func (s *Service) ReadableState(ctx context.Context, roomID, userID string) ([]storage.Event, error) {
	a, err := s.ReadAccess(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	return a.State(ctx)
}
