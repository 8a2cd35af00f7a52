package authrules

import (
	"encoding/json"
	"slices"

	"github.com/parley-im/parley/rooms/pdu"
	"github.com/tidwall/gjson"
)

// StateKey identifies a piece of room state.
type StateKey struct{ Type, StateKey string }

// Needed returns the state keys whose current events are the auth events of
// an event (the spec's auth events selection): the create event, power
// levels and the sender's membership, and for m.room.member also the
// target's membership, the join rules when joining, inviting or knocking,
// the third-party invite a 3PID invite redeems, and the membership of the
// user who authorised a restricted join. m.room.create has none.
func Needed(eventType string, stateKey *string, sender string, content json.RawMessage) []StateKey {
	if eventType == "m.room.create" {
		return nil
	}
	keys := make([]StateKey, 0, 6)
	add := func(k StateKey) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	add(StateKey{"m.room.create", ""})
	add(StateKey{"m.room.power_levels", ""})
	add(StateKey{"m.room.member", sender})
	if eventType != "m.room.member" || stateKey == nil {
		return keys
	}
	add(StateKey{"m.room.member", *stateKey})
	membership := gjson.GetBytes(content, "membership").Str
	switch membership {
	case "join", "invite", "knock":
		add(StateKey{"m.room.join_rules", ""})
	}
	if token := gjson.GetBytes(content, "third_party_invite.signed.token"); membership == "invite" && token.Type == gjson.String {
		add(StateKey{"m.room.third_party_invite", token.Str})
	}
	if via := gjson.GetBytes(content, "join_authorised_via_users_server"); membership == "join" && via.Type == gjson.String {
		add(StateKey{"m.room.member", via.Str})
	}
	return keys
}

// SelectAuthEventsIn is SelectAuthEvents for roomVersion. From room version
// 12 (MSC4291) an event's auth_events must not list the create event: the
// room ID names it, so the caller looks it up by pdu.CreateEventIDOf and
// passes it as create (nil when it is unknown or was rejected, and then
// Check refuses the event). Before version 12 create is ignored.
func SelectAuthEventsIn(roomVersion string, ev *pdu.Event, authEvents []*pdu.Event, create *pdu.Event) (map[StateKey]*pdu.Event, error) {
	if !pdu.RoomIDFromCreate(roomVersion) {
		return SelectAuthEvents(ev, authEvents)
	}
	for _, ae := range authEvents {
		if ae != nil && ae.Type == "m.room.create" {
			return nil, deny("auth_events of %s list the create event %s, which the room ID already names", ev.ID, ae.ID)
		}
	}
	out, err := SelectAuthEvents(ev, authEvents)
	if err != nil {
		return nil, err
	}
	if create != nil {
		out[StateKey{"m.room.create", ""}] = create
	}
	return out, nil
}

// SelectAuthEvents turns the events listed in ev.AuthEvents into the map
// Check takes, for room versions 10 and 11 (see SelectAuthEventsIn), applying the auth-events rules that only make sense for that
// list: no duplicate type/state key pairs, nothing the auth events
// selection would not pick, nothing from another room. Checking that none
// of them was itself rejected is the caller's job.
func SelectAuthEvents(ev *pdu.Event, authEvents []*pdu.Event) (map[StateKey]*pdu.Event, error) {
	needed := Needed(ev.Type, ev.StateKey, ev.Sender, ev.Content)
	out := make(map[StateKey]*pdu.Event, len(authEvents))
	for _, ae := range authEvents {
		switch {
		case ae == nil:
			return nil, deny("an auth event of %s is missing", ev.ID)
		case !slices.Contains(ev.AuthEvents, ae.ID):
			return nil, deny("%s is not listed in the auth_events of %s", ae.ID, ev.ID)
		case !ae.IsState():
			return nil, deny("auth event %s is not a state event", ae.ID)
		case ae.RoomID != ev.RoomID:
			return nil, deny("auth event %s belongs to room %s, not %s", ae.ID, ae.RoomID, ev.RoomID)
		}
		key := StateKey{ae.Type, *ae.StateKey}
		if prev, dup := out[key]; dup {
			return nil, deny("auth events %s and %s are both %s state %q", prev.ID, ae.ID, key.Type, key.StateKey)
		}
		if !slices.Contains(needed, key) {
			return nil, deny("auth event %s (%s state %q) does not authorise %s", ae.ID, key.Type, key.StateKey, ev.Type)
		}
		out[key] = ae
	}
	return out, nil
}
