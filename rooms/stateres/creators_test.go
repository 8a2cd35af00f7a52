package stateres

import (
	"context"
	"github.com/parley-im/parley/rooms/pdu"
	"math"
	"testing"
)

// TestCreatorsOutrankEveryone pins MSC4289's part in the ordering: with
// creators infinite (room version 12), the create event's sender and
// content.additional_creators outrank any integer, so two creators' power
// events are ordered by timestamp instead of by their power levels entry.
// The events are version 11 ones; only the ordering rule is under test
// (TestResolveV12CreatorDemotes resolves real version 12 events).
func TestCreatorsOutrankEveryone(t *testing.T) {
	base := newRoomWith(t, `{"additional_creators":["@mod:example.org"],"room_version":"11"}`)
	a, b := base.clone(), base.clone()
	jrMod := a.send(mod, "m.room.join_rules", "", `{"join_rule":"invite"}`)
	jrAlice := b.send(alice, "m.room.join_rules", "", `{"join_rule":"knock"}`)
	v12 := params{authVersion: "11", v21: true, creatorsInfinite: true}

	r := &resolver{p: v12, loader: base.d, events: map[string]*pdu.Event{}}
	if err := r.findCreate(context.Background(), []StateMap{base.state}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		who  string
		want int64
	}{{jrMod.ID, "mod (additional creator, 50 in power levels)", math.MaxInt64}, {jrAlice.ID, "alice (create sender)", math.MaxInt64}} {
		if err := r.load(context.Background(), []string{tc.id}); err != nil {
			t.Fatal(err)
		}
		if got, err := r.powerOf(context.Background(), r.event(tc.id)); err != nil || got != tc.want {
			t.Errorf("power of %s = %d, %v; want %d", tc.who, got, err, tc.want)
		}
	}

	sets := []StateMap{a.state, b.state}
	for _, tc := range []struct {
		name string
		p    params
		want string
	}{
		// Without creators: alice (100) before mod (50); mod's applies last.
		{"v2.1 without creators", v21, jrMod.ID},
		// With creators both are infinite: mod's is older, alice's last.
		{"v2.1 with creators (v12)", v12, jrAlice.ID},
	} {
		got, err := resolve(context.Background(), tc.p, sets, base.d)
		if err != nil {
			t.Fatal(err)
		}
		if g := got[key("m.room.join_rules", "")]; g != tc.want {
			t.Errorf("%s: join rules = %s, want %s", tc.name, base.d.describe(g), base.d.describe(tc.want))
		}
	}
}
