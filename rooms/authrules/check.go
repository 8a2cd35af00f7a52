package authrules

import (
	"errors"
	"fmt"
	"strings"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/tidwall/gjson"
)

// ErrNotAllowed is what every refusal from this package matches with
// errors.Is. The refusal's own message is only the reason, in plain English,
// so the client API can show it as the M_FORBIDDEN error text.
var ErrNotAllowed = errors.New("event not allowed by the room's auth rules")

// refusal is a reason that matches ErrNotAllowed.
type refusal struct{ reason string }

func (r *refusal) Error() string        { return r.reason }
func (r *refusal) Is(target error) bool { return target == ErrNotAllowed }

func deny(format string, args ...any) error {
	return &refusal{reason: fmt.Sprintf(format, args...)}
}

// Check applies the auth rules of roomVersion to ev, given its auth events
// keyed by state key (from SelectAuthEvents, or from a state snapshot: only
// the entries Needed names are consulted). It returns nil when ev is
// allowed. The caller must have verified ev's signatures, including the
// join_authorised_via_users_server server's (Check only sees that such a
// signature is present), and must not pass rejected events.
func Check(roomVersion string, ev *pdu.Event, auth map[StateKey]*pdu.Event) error {
	if !pdu.Supported(roomVersion) {
		return deny("room version %q is not supported", roomVersion)
	}
	if ev == nil {
		return deny("no event to check")
	}
	// Rule 1.
	if ev.Type == "m.room.create" {
		return checkCreate(roomVersion, ev)
	}
	s, err := newState(roomVersion, ev, auth)
	if err != nil {
		return err
	}
	// Rule 3.
	if fed := gjson.GetBytes(s.create.Content, `m\.federate`); fed.Type == gjson.False && pdu.Domain(s.create.Sender) != pdu.Domain(ev.Sender) {
		return deny("this room does not federate, and %s is not on %s", ev.Sender, pdu.Domain(s.create.Sender))
	}
	// Rule 4.
	if ev.Type == "m.room.member" {
		return s.checkMember()
	}
	// Rule 5.
	if m := s.membership(ev.Sender); m != "join" {
		return deny("%s is not in the room (membership is %s)", ev.Sender, m)
	}
	senderLevel := s.pl.UserLevel(ev.Sender)
	// Rule 6.
	if ev.Type == "m.room.third_party_invite" {
		if senderLevel < s.pl.Invite {
			return deny("sender's power level %d is below %d needed to invite", senderLevel, s.pl.Invite)
		}
		return nil
	}
	// Rule 7.
	if need := s.pl.EventLevel(ev.Type, ev.IsState()); senderLevel < need {
		return deny("sender's power level %d is below %d needed to send %s", senderLevel, need, ev.Type)
	}
	// Rule 8.
	if ev.IsState() && strings.HasPrefix(*ev.StateKey, "@") && *ev.StateKey != ev.Sender {
		return deny("state key %s belongs to another user; only they can set it", *ev.StateKey)
	}
	// Rule 9.
	if ev.Type == "m.room.power_levels" {
		return s.checkPowerLevels(senderLevel)
	}
	// Rule 10.
	return nil
}

// checkCreate is rule 1. Beyond the spec, it insists on the empty state key
// that every create event has (a non-state m.room.create is not a room's
// creation) and on content.room_version naming the version being checked,
// since an absent room_version means version 1, which Parley cannot host.
func checkCreate(roomVersion string, ev *pdu.Event) error {
	switch rv := gjson.GetBytes(ev.Content, "room_version"); {
	case ev.StateKeyOr("-") != "":
		return deny("m.room.create must be a state event with an empty state key")
	case len(ev.PrevEvents) > 0:
		return deny("m.room.create must be the first event and cannot have prev_events")
	case pdu.RoomIDFromCreate(roomVersion) && ev.RoomID != pdu.RoomIDOfCreate(ev.ID):
		return deny("m.room.create in room version %s must not have a room_id; its event ID names the room", roomVersion)
	case !pdu.RoomIDFromCreate(roomVersion) && pdu.Domain(ev.RoomID) != pdu.Domain(ev.Sender):
		return deny("room ID %s is not on the creator's server %s", ev.RoomID, pdu.Domain(ev.Sender))
	case !rv.Exists():
		return deny("m.room.create has no room_version, which means version 1; this is a version %s room", roomVersion)
	case rv.Type != gjson.String || rv.Str != roomVersion:
		return deny("m.room.create says room_version %s but the room is being checked as version %s", rv.Raw, roomVersion)
	case roomVersion == "10" && !gjson.GetBytes(ev.Content, "creator").Exists():
		return deny("m.room.create in room version 10 needs a creator")
	case creatorsPrivileged(roomVersion):
		return checkAdditionalCreators(ev.Content)
	}
	return nil
}

// state is the auth events of one event, indexed for the rules.
type state struct {
	version string
	ev      *pdu.Event
	auth    map[StateKey]*pdu.Event
	create  *pdu.Event
	pl      PowerLevels
	plEvent *pdu.Event
}

// newState keeps the auth events Needed names, checks they are what their
// keys say and from the same room (rule 2.5), requires the create event
// (rule 2.4) and parses the power levels.
func newState(roomVersion string, ev *pdu.Event, auth map[StateKey]*pdu.Event) (*state, error) {
	s := &state{version: roomVersion, ev: ev, auth: make(map[StateKey]*pdu.Event, 6)}
	for _, key := range Needed(ev.Type, ev.StateKey, ev.Sender, ev.Content) {
		ae := auth[key]
		if ae == nil {
			continue
		}
		if ae.Type != key.Type || !ae.IsState() || *ae.StateKey != key.StateKey {
			return nil, deny("auth event %s is %s state %q, not %s state %q", ae.ID, ae.Type, ae.StateKeyOr(""), key.Type, key.StateKey)
		}
		if ae.RoomID != ev.RoomID {
			return nil, deny("auth event %s belongs to room %s, not %s", ae.ID, ae.RoomID, ev.RoomID)
		}
		s.auth[key] = ae
	}
	s.create = s.auth[StateKey{"m.room.create", ""}]
	if s.create == nil {
		return nil, deny("the room's m.room.create event is not among the auth events")
	}
	// Rule 2 of version 12: the create event is the one the room ID names.
	if pdu.RoomIDFromCreate(roomVersion) && s.create.ID != pdu.CreateEventIDOf(ev.RoomID) {
		return nil, deny("room %s is not the room of create event %s", ev.RoomID, s.create.ID)
	}
	s.plEvent = s.auth[StateKey{"m.room.power_levels", ""}]
	pl, err := RoomPowerLevels(roomVersion, s.create, s.plEvent)
	if err != nil {
		return nil, deny("the room's power levels are malformed: %v", err)
	}
	s.pl = pl
	return s, nil
}

// creator is the room creator: content.creator in v10, the sender from v11.
func (s *state) creator() string {
	if s.version == "10" {
		return gjson.GetBytes(s.create.Content, "creator").Str
	}
	return s.create.Sender
}

// membership is user's current membership, "leave" when there is none.
func (s *state) membership(user string) string {
	ev := s.auth[StateKey{"m.room.member", user}]
	if ev == nil {
		return "leave"
	}
	if m := gjson.GetBytes(ev.Content, "membership"); m.Type == gjson.String {
		return m.Str
	}
	return "leave"
}

// joinRule is the current join rule; "invite" when the room has none.
// A join rule that is not a string matches nothing and so lets nobody in.
func (s *state) joinRule() string {
	ev := s.auth[StateKey{"m.room.join_rules", ""}]
	if ev == nil {
		return "invite"
	}
	jr := gjson.GetBytes(ev.Content, "join_rule")
	if !jr.Exists() {
		return "invite"
	}
	return jr.Str
}
