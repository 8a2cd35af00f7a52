package authrules

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/parley-im/parley/rooms/pdu"
)

// TestV12Creators covers MSC4289 in room version 12: alice (the sender of
// the create event) and, where the table says so, carol (in
// additional_creators) have unlimited power and cannot be listed in the
// power levels. newRoom gives mod 50 and bob 0; the setups change that.
func TestV12Creators(t *testing.T) {
	for _, tt := range v12Cases() {
		t.Run(tt.name, func(t *testing.T) {
			r, ev := tt.prepare(t)
			err := Check("12", ev, r.authFor(ev))
			if (err == nil) != tt.allow {
				t.Errorf("Check = %v, want allowed %v", err, tt.allow)
			}
			if err != nil && (!errors.Is(err, ErrNotAllowed) || strings.Contains(err.Error(), "%!")) {
				t.Errorf("Check = %q, want a clean ErrNotAllowed reason", err)
			}
		})
	}
}

// v12Case is one auth decision in a version 12 room; the table also
// drives the cross-check against mautrix.
type v12Case struct {
	name                  string
	create                string // create content; "" is the plain v12 one
	setup                 func(r *room)
	sender, typ, stateKey string
	content               string
	allow                 bool
}

// prepare makes the room and builds the event to check.
func (tt v12Case) prepare(t testing.TB) (*room, *pdu.Event) {
	r := newRoom(t, "12")
	if tt.create != "" {
		r = newRoomWith(t, "12", tt.create)
	}
	if tt.setup != nil {
		tt.setup(r)
	}
	return r, r.build(r.proto(tt.sender, tt.typ, stateKeyFor(tt.typ, tt.stateKey), tt.content))
}

func v12Cases() []v12Case {
	const withCarol = `{"room_version":"12","additional_creators":["@carol:example.org"]}`
	bob100 := pl(`{"users":{"@bob:example.org":100,"@mod:example.org":50}}`)
	return []v12Case{
		{name: "creator kicks a PL-100 user", setup: bob100, sender: alice, typ: "m.room.member", stateKey: bob, content: leave, allow: true},
		{name: "creator bans a PL-100 user", setup: bob100, sender: alice, typ: "m.room.member", stateKey: bob, content: ban, allow: true},
		{name: "PL-100 user cannot kick the creator", setup: bob100, sender: bob, typ: "m.room.member", stateKey: alice, content: leave},
		{name: "PL-100 user cannot ban the creator", setup: bob100, sender: bob, typ: "m.room.member", stateKey: alice, content: ban},
		{name: "creator leaves", sender: alice, typ: "m.room.member", stateKey: alice, content: leave, allow: true},
		{name: "creator sets the highest level", sender: alice, typ: "m.room.power_levels", content: `{"users":{"@bob:example.org":9007199254740991}}`, allow: true},
		{name: "creator demotes a PL-100 user", setup: bob100, sender: alice, typ: "m.room.power_levels", content: `{"users":{"@mod:example.org":50}}`, allow: true},
		{name: "creator sends state needing the highest level", setup: pl(`{"events":{"m.room.name":9007199254740991},"users":{"@mod:example.org":50}}`),
			sender: alice, typ: "m.room.name", content: `{"name":"x"}`, allow: true},
		{name: "PL-100 user cannot send state needing more", setup: pl(`{"events":{"m.room.name":101},"users":{"@bob:example.org":100}}`),
			sender: bob, typ: "m.room.name", content: `{"name":"x"}`},
		{name: "power levels listing the creator", sender: alice, typ: "m.room.power_levels", content: `{"users":{"@alice:example.org":100}}`},
		{name: "power levels listing the creator at 0", setup: bob100, sender: bob, typ: "m.room.power_levels", content: `{"users":{"@alice:example.org":0,"@bob:example.org":100}}`},
		{name: "power levels listing an additional creator", create: withCarol, sender: alice, typ: "m.room.power_levels", content: `{"users":{"@carol:example.org":50}}`},
		{name: "additional creator raises a user", create: withCarol, setup: member(carol, carol, "join"),
			sender: carol, typ: "m.room.power_levels", content: `{"users":{"@bob:example.org":100}}`, allow: true},
		{name: "additional creator kicks a PL-100 user", create: withCarol, setup: steps(member(carol, carol, "join"), bob100),
			sender: carol, typ: "m.room.member", stateKey: bob, content: leave, allow: true},
		{name: "additional creator cannot kick the other creator", create: withCarol, setup: member(carol, carol, "join"),
			sender: carol, typ: "m.room.member", stateKey: alice, content: leave},
		{name: "additional creator must still be joined", create: withCarol, sender: carol, typ: "m.room.name", content: `{"name":"x"}`},
		{name: "PL-100 user still acts within their level", setup: bob100, sender: bob, typ: "m.room.name", content: `{"name":"x"}`, allow: true},
	}
}

// TestV11CreatorIsOrdinary pins the difference: in version 11 the creator
// at 100 cannot kick another user at 100, and may be listed.
func TestV11CreatorIsOrdinary(t *testing.T) {
	r := newRoom(t, "11")
	r.send(alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@bob:example.org":100}}`)
	ev := r.build(r.proto(alice, "m.room.member", stateKeyFor("m.room.member", bob), leave))
	if err := Check("11", ev, r.authFor(ev)); err == nil {
		t.Errorf("Check(v11 creator kicks PL-100 bob) = nil, want refused")
	}
}

func TestV12CreateRules(t *testing.T) {
	build := func(sender, content string, prev []string) *pdu.Event {
		t.Helper()
		p := pdu.Proto{Sender: sender, Type: "m.room.create", StateKey: new(string), Content: json.RawMessage(content),
			PrevEvents: prev, AuthEvents: []string{}, Depth: 1, OriginServerTS: 1700000000000}
		ev, err := pdu.Build(p, "12", testKey(pdu.Domain(sender)))
		if err != nil {
			t.Fatalf("Build(%s) = %v", content, err)
		}
		return ev
	}
	withRoomID := *build(alice, `{"room_version":"12"}`, nil)
	withRoomID.RoomID = "!" + strings.Repeat("A", 43) // as Parse leaves a create that has a room_id
	tests := []struct {
		name  string
		ev    *pdu.Event
		allow bool
	}{
		{"plain", build(alice, `{"room_version":"12"}`, nil), true},
		{"no room domain to match the sender", build(dave, `{"room_version":"12"}`, nil), true},
		{"additional_creators", build(alice, `{"room_version":"12","additional_creators":["@bob:example.org","@dave:other.org"]}`, nil), true},
		{"empty additional_creators", build(alice, `{"room_version":"12","additional_creators":[]}`, nil), true},
		{"additional_creators not an array", build(alice, `{"room_version":"12","additional_creators":"@bob:example.org"}`, nil), false},
		{"additional_creators with a number", build(alice, `{"room_version":"12","additional_creators":[1]}`, nil), false},
		{"additional_creators with a bad user ID", build(alice, `{"room_version":"12","additional_creators":["bob"]}`, nil), false},
		{"additional_creators with a bad server", build(alice, `{"room_version":"12","additional_creators":["@bob:exa mple.org"]}`, nil), false},
		{"with prev_events", build(alice, `{"room_version":"12"}`, []string{"$" + strings.Repeat("a", 43)}), false},
		{"room_version 11", build(alice, `{"room_version":"11"}`, nil), false},
		{"with a room_id", &withRoomID, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Check("12", tt.ev, nil); (err == nil) != tt.allow {
				t.Errorf("Check(create %s) = %v, want allowed %v", tt.ev.Content, err, tt.allow)
			}
		})
	}
}

// TestV12AuthEvents covers MSC4291: the create event comes from the room
// ID, is never listed in auth_events, and must be the one the ID names.
func TestV12AuthEvents(t *testing.T) {
	r := newRoom(t, "12")
	other := newRoom(t, "12")
	if r.id == other.id {
		// Same content and timestamp give the same room; make them differ.
		other = newRoomWith(t, "12", `{"room_version":"12","m.federate":true}`)
	}
	msg := r.build(r.proto(bob, "m.room.message", nil, `{"body":"hi"}`))
	for _, id := range msg.AuthEvents {
		if id == r.create.ID {
			t.Fatalf("auth_events of a v12 event list the create event")
		}
	}
	var listed []*pdu.Event
	for _, id := range msg.AuthEvents {
		for _, ev := range r.log {
			if ev.ID == id {
				listed = append(listed, ev)
			}
		}
	}
	auth, err := SelectAuthEventsIn("12", msg, listed, r.create)
	if err != nil || auth[StateKey{"m.room.create", ""}] != r.create {
		t.Fatalf("SelectAuthEventsIn = %v, %v; want the map with the create event", auth, err)
	}
	if err := Check("12", msg, auth); err != nil {
		t.Errorf("Check(message with selected auth events) = %v, want nil", err)
	}

	// An event that lists the create event anyway is refused.
	p := r.proto(bob, "m.room.message", nil, `{"body":"hi"}`)
	p.AuthEvents = append(p.AuthEvents, r.create.ID)
	listing := r.build(p)
	if _, err := SelectAuthEventsIn("12", listing, append(listed, r.create), r.create); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("SelectAuthEventsIn(auth_events listing the create event) = %v, want ErrNotAllowed", err)
	}

	// Another room's create event does not authorise this room's events.
	wrong := r.authFor(msg)
	wrong[StateKey{"m.room.create", ""}] = other.create
	if err := Check("12", msg, wrong); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Check(with another room's create event) = %v, want ErrNotAllowed", err)
	}
	delete(wrong, StateKey{"m.room.create", ""})
	if err := Check("12", msg, wrong); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Check(without a create event) = %v, want ErrNotAllowed", err)
	}

	// Before version 12 the create is still listed, and create is ignored.
	v11 := newRoom(t, "11")
	m11 := v11.build(v11.proto(bob, "m.room.message", nil, `{"body":"hi"}`))
	var l11 []*pdu.Event
	for _, id := range m11.AuthEvents {
		for _, ev := range v11.log {
			if ev.ID == id {
				l11 = append(l11, ev)
			}
		}
	}
	if auth, err := SelectAuthEventsIn("11", m11, l11, nil); err != nil || auth[StateKey{"m.room.create", ""}] != v11.create {
		t.Errorf("SelectAuthEventsIn(v11) = %v, %v; want the listed create event", auth, err)
	}
}

func TestRoomPowerLevels(t *testing.T) {
	r := newRoomWith(t, "12", `{"room_version":"12","additional_creators":["@carol:example.org","@alice:example.org"]}`)
	pl, err := RoomPowerLevels("12", r.create, r.state[StateKey{"m.room.power_levels", ""}])
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(pl.Creators, ","); got != alice+","+carol {
		t.Errorf("Creators = %s, want alice,carol once each", got)
	}
	for user, want := range map[string]int64{alice: CreatorLevel, carol: CreatorLevel, mod: 50, bob: 0} {
		if got := pl.UserLevel(user); got != want {
			t.Errorf("UserLevel(%s) = %d, want %d", user, got, want)
		}
	}
	v11 := newRoom(t, "11")
	pl11, _ := RoomPowerLevels("11", v11.create, nil)
	if pl11.Creators != nil || pl11.UserLevel(alice) != 100 {
		t.Errorf("v11 without power levels: Creators %v, alice %d; want nil, 100", pl11.Creators, pl11.UserLevel(alice))
	}
}
