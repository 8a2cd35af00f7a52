package stateres

import (
	"context"
	"testing"

	"github.com/parley-im/parley/rooms/pdu"
)

// newRoomV12 makes a real room version 12 room: the room ID comes from
// the create event, alice is its creator (unlisted), mod has 50 and bob
// 100; everyone is joined and the room is public.
func newRoomV12(t testing.TB) *fork {
	d := &dag{t: t, version: "12", events: map[string]*pdu.Event{}, ts: 1_700_000_000_000}
	lastDAG = d
	f := &fork{d: d, state: StateMap{}}
	create := f.send(alice, "m.room.create", "", `{"room_version":"12"}`)
	d.roomID = create.RoomID
	f.send(alice, "m.room.member", alice, `{"membership":"join"}`)
	f.send(alice, "m.room.power_levels", "", `{"users":{"@bob:example.org":100,"@mod:example.org":50}}`)
	f.send(alice, "m.room.join_rules", "", `{"join_rule":"public"}`)
	f.send(mod, "m.room.member", mod, `{"membership":"join"}`)
	f.send(bob, "m.room.member", bob, `{"membership":"join"}`)
	return f
}

// TestResolveV12CreatorDemotes: on one fork bob (100) closes the room; on
// the other, later, alice the creator demotes him. The creator's power
// event sorts first, so bob's change is checked after his demotion and
// loses. In version 11 alice at 100 could not even demote bob at 100.
func TestResolveV12CreatorDemotes(t *testing.T) {
	base := newRoomV12(t)
	a, b := base.clone(), base.clone()
	jr := b.send(bob, "m.room.join_rules", "", `{"join_rule":"invite"}`)
	demote := a.send(alice, "m.room.power_levels", "", `{"users":{"@mod:example.org":50}}`)
	got, err := Resolve(context.Background(), "12", []StateMap{a.state, b.state}, base.d)
	if err != nil {
		t.Fatal(err)
	}
	if g := got[key("m.room.power_levels", "")]; g != demote.ID {
		t.Errorf("power levels = %s, want alice's demotion %s", base.d.describe(g), base.d.describe(demote.ID))
	}
	if g, want := got[key("m.room.join_rules", "")], base.state[key("m.room.join_rules", "")]; g != want || g == jr.ID {
		t.Errorf("join rules = %s, want the original %s", base.d.describe(g), base.d.describe(want))
	}
	if g := got[key("m.room.create", "")]; g != pdu.CreateEventIDOf(base.d.roomID) {
		t.Errorf("create = %s, want the event the room ID names", g)
	}
}
