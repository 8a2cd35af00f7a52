package stateres

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// fuzzOps are the events a fuzzed fork can add. They are built without
// checking them against the fork's state, so forks hold events their own
// branch would refuse too: resolution must cope with anything.
var fuzzOps = []struct{ sender, typ, stateKey, content string }{
	{alice, "m.room.topic", "", `{"topic":"a"}`},
	{mod, "m.room.topic", "", `{"topic":"m"}`},
	{bob, "m.room.topic", "", `{"topic":"b"}`},
	{alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100}}`},
	{mod, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@mod:example.org":50,"@bob:example.org":50}}`},
	{mod, "m.room.member", bob, `{"membership":"ban"}`},
	{alice, "m.room.member", mod, `{"membership":"leave"}`},
	{bob, "m.room.member", bob, `{"membership":"leave"}`},
	{carol, "m.room.member", carol, `{"membership":"join"}`},
	{alice, "m.room.join_rules", "", `{"join_rule":"invite"}`},
	{mod, "m.room.join_rules", "", `{"join_rule":"public"}`},
	{bob, "m.room.member", bob, `{"membership":"join"}`},
}

// FuzzResolve builds up to three forks of a small room from the input,
// each op an event on one fork (some with equal timestamps), optionally
// hides some events from the loader, and checks that both algorithms
// answer without error or panic, whatever the order of the state sets.
func FuzzResolve(f *testing.F) {
	f.Add([]byte{0x00, 0x13, 0x25, 0x07})
	f.Add([]byte{0x03, 0x15, 0x28, 0x19, 0x0a, 0x80})
	f.Add([]byte{0x04, 0x11, 0x05, 0x16, 0x29, 0x2b, 0x90, 0x01})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 24 {
			in = in[:24]
		}
		base := newRoom(t)
		d := base.d
		forks := []*fork{base.clone(), base.clone(), base.clone()}
		var hide []string
		for _, b := range in {
			if b&0x80 != 0 {
				// Hide the newest event of a fork from the loader.
				if fk := forks[int(b)%3]; len(fk.prev) > 0 {
					hide = append(hide, fk.prev[0])
				}
				continue
			}
			fk := forks[int(b>>4)%3]
			op := fuzzOps[int(b&0x0f)%len(fuzzOps)]
			if b&0x40 != 0 {
				d.ts-- // repeat a timestamp
			}
			fk.apply(fk.build(op.sender, op.typ, op.stateKey, op.content))
		}
		for _, id := range hide {
			delete(d.events, id)
		}
		sets := []StateMap{forks[0].state, forks[1].state, forks[2].state}
		for _, p := range []params{v2, v21, {authVersion: "11", v21: true, creatorsInfinite: true}} {
			got, err := resolve(context.Background(), p, sets, d)
			if err != nil {
				t.Fatalf("%+v: resolve = %v", p, err)
			}
			for _, perm := range [][]int{{2, 1, 0}, {1, 2, 0}} {
				other := make([]StateMap, 0, 3)
				for _, i := range perm {
					other = append(other, sets[i])
				}
				again, err := resolve(context.Background(), p, other, d)
				if err != nil {
					t.Fatalf("%+v: resolve %v = %v", p, perm, err)
				}
				if !mapsEqual(got, again) {
					t.Fatalf("%+v: order %v gives\n%s\nwant\n%s", p, perm, dump(again), dump(got))
				}
			}
		}
	})
}

func dump(s StateMap) string {
	lines := make([]string, 0, len(s))
	for k, v := range s {
		lines = append(lines, fmt.Sprintf("%s/%s=%s", k.Type, k.StateKey, v))
	}
	slices.Sort(lines)
	return fmt.Sprint(lines)
}
