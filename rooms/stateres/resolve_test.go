package stateres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// scenario is a room forked into state sets, with the answer expected of
// each algorithm for the keys that matter ("" = key absent).
type scenario struct {
	name  string
	build func(t *testing.T) (sets []StateMap, wantV2, wantV21 map[authrules.StateKey]string)
}

var scenarios = []scenario{
	{
		// A mod bans bob while alice, concurrently, demotes the mod. Alice's
		// power levels change sorts first (higher power), so the ban is
		// checked against it and fails; bob stays joined.
		name: "ban against power level change",
		build: func(t *testing.T) ([]StateMap, map[authrules.StateKey]string, map[authrules.StateKey]string) {
			base := newRoom(t)
			bobJoin := base.state[key("m.room.member", bob)]
			a, b := base.clone(), base.clone()
			a.send(mod, "m.room.member", bob, `{"membership":"ban"}`)
			pl := b.send(alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100}}`)
			want := map[authrules.StateKey]string{key("m.room.member", bob): bobJoin, plKey: pl.ID}
			return []StateMap{a.state, b.state}, want, want
		},
	},
	{
		// Alice makes the room invite-only while carol joins on the
		// public rules: the join rule is a power event and applies first;
		// carol's join then fails against it and she is not in the room.
		name: "join rule change against a join",
		build: func(t *testing.T) ([]StateMap, map[authrules.StateKey]string, map[authrules.StateKey]string) {
			base := newRoom(t)
			a, b := base.clone(), base.clone()
			jr := a.send(alice, "m.room.join_rules", "", `{"join_rule":"invite"}`)
			b.send(carol, "m.room.member", carol, `{"membership":"join"}`)
			want := map[authrules.StateKey]string{key("m.room.join_rules", ""): jr.ID, key("m.room.member", carol): ""}
			return []StateMap{a.state, b.state}, want, want
		},
	},
	{
		// Two topics on two forks under the same power levels: mainline
		// positions tie, so the later origin_server_ts wins.
		name: "topic race",
		build: func(t *testing.T) ([]StateMap, map[authrules.StateKey]string, map[authrules.StateKey]string) {
			base := newRoom(t)
			a, b := base.clone(), base.clone()
			b.send(mod, "m.room.topic", "", `{"topic":"from mod, sent first"}`)
			later := a.send(alice, "m.room.topic", "", `{"topic":"from alice, sent later"}`)
			want := map[authrules.StateKey]string{key("m.room.topic", ""): later.ID}
			return []StateMap{a.state, b.state}, want, want
		},
	},
	{
		// Equal timestamps: the smaller event ID is applied first, so the
		// larger one wins.
		name: "topic race with equal timestamps",
		build: func(t *testing.T) ([]StateMap, map[authrules.StateKey]string, map[authrules.StateKey]string) {
			base := newRoom(t)
			a, b := base.clone(), base.clone()
			ts := base.d.ts
			t1 := a.send(alice, "m.room.topic", "", `{"topic":"one"}`)
			base.d.ts = ts
			t2 := b.send(mod, "m.room.topic", "", `{"topic":"two"}`)
			winner := max(t1.ID, t2.ID)
			want := map[authrules.StateKey]string{key("m.room.topic", ""): winner}
			return []StateMap{a.state, b.state}, want, want
		},
	},
	{
		// The mod sets a topic on one fork while alice demotes the mod on
		// the other. The topic is checked against the resolved power
		// levels and fails; the older topic stays.
		name: "demoted on one fork while acting on the other",
		build: func(t *testing.T) ([]StateMap, map[authrules.StateKey]string, map[authrules.StateKey]string) {
			base := newRoom(t)
			old := base.send(alice, "m.room.topic", "", `{"topic":"old"}`)
			a, b := base.clone(), base.clone()
			pl := a.send(alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100}}`)
			b.send(mod, "m.room.topic", "", `{"topic":"by the mod"}`)
			want := map[authrules.StateKey]string{key("m.room.topic", ""): old.ID, plKey: pl.ID}
			return []StateMap{a.state, b.state}, want, want
		},
	},
	{
		// The mod bans bob on one fork while bob changes his display name
		// on the other: the ban (a power event) applies first, then bob's
		// profile change fails since he is banned.
		name: "ban against the banned user's own change",
		build: func(t *testing.T) ([]StateMap, map[authrules.StateKey]string, map[authrules.StateKey]string) {
			base := newRoom(t)
			a, b := base.clone(), base.clone()
			kick := a.send(mod, "m.room.member", bob, `{"membership":"ban"}`)
			b.send(bob, "m.room.member", bob, `{"membership":"join","displayname":"Bob"}`)
			want := map[authrules.StateKey]string{key("m.room.member", bob): kick.ID}
			return []StateMap{a.state, b.state}, want, want
		},
	},
	{
		// Mainline order beats timestamps: alice's topic was sent under
		// newer power levels than the mod's (a later mainline position),
		// so it is applied last and wins although its timestamp is older.
		name: "mainline position before timestamp",
		build: func(t *testing.T) ([]StateMap, map[authrules.StateKey]string, map[authrules.StateKey]string) {
			base := newRoom(t)
			a, b := base.clone(), base.clone()
			a.send(alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@mod:example.org":50},"events":{"m.room.name":60}}`)
			ts := base.d.ts
			base.d.ts += 1000
			b.send(mod, "m.room.topic", "", `{"topic":"newer timestamp, older power levels"}`)
			base.d.ts = ts
			top := a.send(alice, "m.room.topic", "", `{"topic":"older timestamp, newer power levels"}`)
			want := map[authrules.StateKey]string{key("m.room.topic", ""): top.ID}
			return []StateMap{a.state, b.state}, want, want
		},
	},
	{
		// Alice raises bob to 50; then, concurrently, bob raises carol's
		// user entry and alice demotes bob. Alice's demotion sorts first
		// (higher power), so bob's change is checked as a level-0 user and
		// refused.
		name: "power levels change by a user demoted concurrently",
		build: func(t *testing.T) ([]StateMap, map[authrules.StateKey]string, map[authrules.StateKey]string) {
			base := newRoom(t)
			base.send(alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@mod:example.org":50,"@bob:example.org":50},"events":{"m.room.power_levels":50}}`)
			a, b := base.clone(), base.clone()
			b.send(bob, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@mod:example.org":50,"@bob:example.org":50,"@carol:other.org":50},"events":{"m.room.power_levels":50}}`)
			demote := a.send(alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@mod:example.org":50},"events":{"m.room.power_levels":50}}`)
			want := map[authrules.StateKey]string{plKey: demote.ID}
			return []StateMap{a.state, b.state}, want, want
		},
	},
	{
		// The unconflicted state map is applied last and always wins:
		// here it holds a name no fork disagrees on.
		name: "unconflicted state survives",
		build: func(t *testing.T) ([]StateMap, map[authrules.StateKey]string, map[authrules.StateKey]string) {
			base := newRoom(t)
			name := base.send(alice, "m.room.name", "", `{"name":"Room"}`)
			a, b := base.clone(), base.clone()
			a.send(alice, "m.room.topic", "", `{"topic":"a"}`)
			top := b.send(alice, "m.room.topic", "", `{"topic":"b"}`)
			want := map[authrules.StateKey]string{key("m.room.name", ""): name.ID, key("m.room.topic", ""): top.ID}
			return []StateMap{a.state, b.state}, want, want
		},
	},
	{
		// A key only one fork has is conflicted (the spec's definition),
		// not unconflicted: carol's join goes through the auth checks and,
		// with the room public, passes.
		name: "key present in one set only",
		build: func(t *testing.T) ([]StateMap, map[authrules.StateKey]string, map[authrules.StateKey]string) {
			base := newRoom(t)
			a, b := base.clone(), base.clone()
			a.send(alice, "m.room.topic", "", `{"topic":"a"}`)
			join := b.send(carol, "m.room.member", carol, `{"membership":"join"}`)
			want := map[authrules.StateKey]string{key("m.room.member", carol): join.ID}
			return []StateMap{a.state, b.state}, want, want
		},
	},
	{
		// MSC4297's state reset: the mod changes the power levels on one
		// branch and leaves on another; a later merge holds the new power
		// levels, a fork from before holds the old ones, and both hold the
		// leave. v2 checks the mod's change against the unconflicted
		// state, where the mod has left, refuses it and resets the power
		// levels. v2.1 keeps the change, for two reasons each enough alone:
		// it starts from empty state, and the mod's join, on the auth path
		// between the two power levels events, is in its full conflicted
		// set (TestConflictedSubgraph).
		name: "state reset from unconflicted state (MSC4297)",
		build: func(t *testing.T) ([]StateMap, map[authrules.StateKey]string, map[authrules.StateKey]string) {
			base := newRoom(t)
			oldPL := base.state[plKey]
			a, b := base.clone(), base.clone()
			pl := a.send(mod, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@mod:example.org":50,"@bob:example.org":10}}`)
			leave := b.send(mod, "m.room.member", mod, `{"membership":"leave"}`)
			a.state[key("m.room.member", mod)] = leave.ID
			return []StateMap{a.state, b.state},
				map[authrules.StateKey]string{plKey: oldPL},
				map[authrules.StateKey]string{plKey: pl.ID}
		},
	},
	{
		// The mod changes the join rules and later leaves; alice, after
		// that, changes them again without listing the mod's change. v2
		// refuses the mod's older change (the mod has left in the
		// unconflicted state); v2.1 applies alice's change first (higher
		// power) and then the mod's, checked as of its own auth events.
		name: "join rules by a user who left since (v2 and v2.1 differ)",
		build: func(t *testing.T) ([]StateMap, map[authrules.StateKey]string, map[authrules.StateKey]string) {
			base := newRoom(t)
			base.send(alice, "m.room.power_levels", "", `{"users":{"@alice:example.org":100,"@mod:example.org":50},"events":{"m.room.join_rules":50}}`)
			a := base.clone()
			jr2 := a.send(mod, "m.room.join_rules", "", `{"join_rule":"invite"}`)
			b := a.clone()
			b.send(mod, "m.room.member", mod, `{"membership":"leave"}`)
			jr3 := b.send(alice, "m.room.join_rules", "", `{"join_rule":"knock"}`)
			a.state[key("m.room.member", mod)] = b.state[key("m.room.member", mod)]
			return []StateMap{a.state, b.state},
				map[authrules.StateKey]string{key("m.room.join_rules", ""): jr3.ID},
				map[authrules.StateKey]string{key("m.room.join_rules", ""): jr2.ID}
		},
	},
}

func TestResolveScenarios(t *testing.T) {
	for _, sc := range scenarios {
		for _, alg := range []struct {
			name string
			p    params
		}{{"v2", v2}, {"v2.1", v21}} {
			t.Run(sc.name+"/"+alg.name, func(t *testing.T) {
				sets, wantV2, wantV21 := sc.build(t)
				want := wantV2
				if alg.p.v21 {
					want = wantV21
				}
				d := dagOf(t, sets)
				got, err := resolve(context.Background(), alg.p, sets, d)
				if err != nil {
					t.Fatalf("resolve = %v", err)
				}
				for k, w := range want {
					if g := got[k]; g != w {
						t.Errorf("%v = %s, want %s", k, d.describe(g), d.describe(w))
					}
				}
				// Every answer holds the unconflicted state.
				unconflicted, _ := separate(sets)
				for k, id := range unconflicted {
					if got[k] != id {
						t.Errorf("unconflicted %v = %s, want %s", k, got[k], id)
					}
				}
				// And the same answer whatever the order of the sets.
				rev := slices.Clone(sets)
				slices.Reverse(rev)
				again, err := resolve(context.Background(), alg.p, rev, d)
				if err != nil {
					t.Fatalf("resolve reversed = %v", err)
				}
				if !mapsEqual(got, again) {
					t.Errorf("reversed sets give another answer:\n%v\nwant\n%v", again, got)
				}
			})
		}
	}
}

// dagOf finds the dag the scenario's events live in (the forks share it).
var lastDAG *dag

func dagOf(t *testing.T, sets []StateMap) *dag {
	t.Helper()
	if lastDAG == nil {
		t.Fatal("no dag built")
	}
	return lastDAG
}

func (d *dag) describe(id string) string {
	if id == "" {
		return "(absent)"
	}
	ev := d.events[id]
	if ev == nil {
		return id + " (unknown)"
	}
	return fmt.Sprintf("%s %s by %s %s", id[:8], ev.Type, ev.Sender, ev.Content)
}

func mapsEqual(a, b StateMap) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestResolveTrivialInputs(t *testing.T) {
	f := newRoom(t)
	ctx := context.Background()
	if got, err := Resolve(ctx, "11", nil, f.d); err != nil || len(got) != 0 {
		t.Errorf("Resolve(no sets) = %v, %v; want empty, nil", got, err)
	}
	got, err := Resolve(ctx, "11", []StateMap{f.state, f.clone().state}, f.d)
	if err != nil || !mapsEqual(got, f.state) {
		t.Errorf("Resolve(equal sets) = %v, %v; want the set", got, err)
	}
	if f.d.calls != 0 {
		t.Errorf("loader called %d times for sets without conflicts, want 0", f.d.calls)
	}
	for _, rv := range []string{"1", "9", "13", ""} {
		if _, err := Resolve(ctx, rv, []StateMap{f.state}, f.d); !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("Resolve(version %q) = %v, want ErrUnsupportedVersion", rv, err)
		}
	}
}

type failingLoader struct{}

var errLoad = errors.New("disk on fire")

func (failingLoader) Events(context.Context, []string) ([]*pdu.Event, error) { return nil, errLoad }

func TestResolveLoaderError(t *testing.T) {
	f := newRoom(t)
	a, b := f.clone(), f.clone()
	a.send(alice, "m.room.topic", "", `{"topic":"a"}`)
	b.send(alice, "m.room.topic", "", `{"topic":"b"}`)
	if _, err := Resolve(context.Background(), "11", []StateMap{a.state, b.state}, failingLoader{}); !errors.Is(err, errLoad) {
		t.Errorf("Resolve with a failing loader = %v, want it wrapped", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Resolve(ctx, "11", []StateMap{a.state, b.state}, f.d); !errors.Is(err, context.Canceled) {
		t.Errorf("Resolve with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestConflictedSubgraph pins MSC4297's second change: v2.1's full
// conflicted set holds the events on auth paths between conflicted events
// (here the mod's join, between the old and the new power levels), which
// v2's does not, since every fork's auth chain holds that join.
func TestConflictedSubgraph(t *testing.T) {
	var sc scenario
	for _, s := range scenarios {
		if s.name == "state reset from unconflicted state (MSC4297)" {
			sc = s
		}
	}
	sets, _, _ := sc.build(t)
	d := lastDAG
	var modJoin string
	for id, ev := range d.events {
		if ev.Type == "m.room.member" && ev.Sender == mod && *ev.StateKey == mod && strings.Contains(string(ev.Content), `"join"`) {
			modJoin = id
		}
	}
	for _, tc := range []struct {
		name string
		p    params
		want bool
	}{{"v2", v2, false}, {"v2.1", v21, true}} {
		r := &resolver{p: tc.p, loader: d, events: map[string]*pdu.Event{}}
		unconflicted, conflicted := separate(sets)
		full, err := r.fullConflictedSet(context.Background(), sets, unconflicted, conflicted)
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(full, modJoin); got != tc.want {
			t.Errorf("%s: mod's join in the full conflicted set = %v, want %v (set has %d events)", tc.name, got, tc.want, len(full))
		}
	}
}

// TestResolveMissingAndRejected: an event the loader does not return (not
// held, or rejected) is absent from resolution: it never enters the state,
// even as the only candidate for its key.
func TestResolveMissingAndRejected(t *testing.T) {
	base := newRoom(t)
	a, b := base.clone(), base.clone()
	hidden := a.send(alice, "m.room.topic", "", `{"topic":"rejected"}`)
	name := b.send(alice, "m.room.name", "", `{"name":"kept"}`)
	delete(base.d.events, hidden.ID)
	for _, p := range []params{v2, v21} {
		got, err := resolve(context.Background(), p, []StateMap{a.state, b.state}, base.d)
		if err != nil {
			t.Fatal(err)
		}
		if g := got[key("m.room.topic", "")]; g != "" {
			t.Errorf("%+v: topic = %s, want absent (its only event is not loadable)", p, g)
		}
		if g := got[key("m.room.name", "")]; g != name.ID {
			t.Errorf("%+v: name = %s, want %s", p, g, name.ID)
		}
	}
}

type shortLoader struct{ *dag }

func (l shortLoader) Events(ctx context.Context, ids []string) ([]*pdu.Event, error) {
	evs, err := l.dag.Events(ctx, ids)
	return evs[:len(evs)-1], err
}

func TestResolveLoaderMiscount(t *testing.T) {
	base := newRoom(t)
	a, b := base.clone(), base.clone()
	a.send(alice, "m.room.topic", "", `{"topic":"a"}`)
	b.send(alice, "m.room.topic", "", `{"topic":"b"}`)
	if _, err := Resolve(context.Background(), "11", []StateMap{a.state, b.state}, shortLoader{base.d}); err == nil {
		t.Error("Resolve with a loader returning too few events = nil error, want one")
	}
}
