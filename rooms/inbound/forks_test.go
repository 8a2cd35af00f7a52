package inbound_test

import (
	"maps"
	"testing"

	"github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/inbound/remotetest"
	"github.com/parley-im/parley/rooms/pdu"
)

// TestForks feeds the classic conflicts through the pipeline, each fork's
// event in both arrival orders, then a merge event citing both tips, and
// checks the state before the merge is the spec's answer.
func TestForks(t *testing.T) {
	type forked struct {
		a, b *remotetest.Fork
		// evA and evB are the forks' events; the one that arrives second
		// gets wantSecond[order], where order 0 is A first.
		evA, evB *pdu.Event
	}
	for _, tc := range []struct {
		name string
		fork func(fx *fixture) forked
		// wantSecond is the kind of the event fed second when A (0) or B
		// (1) goes first.
		wantSecond [2]inbound.Kind
		// check inspects the state before the merge event, then may feed
		// more events.
		check func(t *testing.T, fx *fixture, f forked, merged *remotetest.Fork, before inbound.StateMap)
	}{
		{
			name: "concurrent ban and power-level change",
			fork: func(fx *fixture) forked {
				a, b := fx.base.Clone(), fx.base.Clone()
				return forked{a: a, b: b,
					evA: a.SendState(alice, "m.room.power_levels", "", fx.powerLevels(nil)), // mod demoted to 0
					evB: b.SendState(mod, "m.room.member", bob, `{"membership":"ban"}`),     // mod bans bob
				}
			},
			// The ban arriving after the demotion soft-fails; the other
			// way round both are accepted, and resolution decides.
			wantSecond: [2]inbound.Kind{inbound.SoftFailed, inbound.Accepted},
			check: func(t *testing.T, fx *fixture, f forked, merged *remotetest.Fork, before inbound.StateMap) {
				if got, want := before[key("m.room.power_levels", "")], f.evA.ID; got != want {
					t.Errorf("power levels = %s, want the demotion %s", got, want)
				}
				if got, want := before[key("m.room.member", bob)], fx.ev["bob"].ID; got != want {
					t.Errorf("bob's membership = %s, want his join %s: the demoted mod's ban loses", got, want)
				}
				remotetest.Feed(t, fx.p, inbound.Accepted, merged.SendMessage(bob, "still here"))
			},
		},
		{
			name: "join-rule change against a join",
			fork: func(fx *fixture) forked {
				a, b := fx.base.Clone(), fx.base.Clone()
				return forked{a: a, b: b,
					evA: a.SendState(alice, "m.room.join_rules", "", `{"join_rule":"invite"}`),
					evB: b.SendState(carol, "m.room.member", carol, `{"membership":"join"}`),
				}
			},
			wantSecond: [2]inbound.Kind{inbound.SoftFailed, inbound.Accepted},
			check: func(t *testing.T, fx *fixture, f forked, merged *remotetest.Fork, before inbound.StateMap) {
				if got, want := before[key("m.room.join_rules", "")], f.evA.ID; got != want {
					t.Errorf("join rules = %s, want the change to invite %s", got, want)
				}
				if got, ok := before[key("m.room.member", carol)]; ok {
					t.Errorf("carol's membership = %s, want none: her join loses to the join rule change", got)
				}
				// carol, going by her fork, cites her join: her auth events
				// allow it, the state before it does not.
				p := proto(f.b.BuildMessage(carol, "am I in?"))
				p.PrevEvents, p.Depth = merged.Prev, 0
				if v := fx.accept(merged.Build(p)); v.Kind != inbound.Rejected {
					t.Errorf("Accept(carol's message after the merge) = %s (%s), want rejected", v.Kind, v.Reason)
				}
			},
		},
		{
			name: "user demoted on one fork while acting on the other",
			fork: func(fx *fixture) forked {
				a, b := fx.base.Clone(), fx.base.Clone()
				return forked{a: a, b: b,
					evA: a.SendState(alice, "m.room.power_levels", "", fx.powerLevels(nil)),
					evB: b.SendState(mod, "m.room.topic", "", `{"topic":"mod's topic"}`),
				}
			},
			wantSecond: [2]inbound.Kind{inbound.SoftFailed, inbound.Accepted},
			check: func(t *testing.T, fx *fixture, f forked, merged *remotetest.Fork, before inbound.StateMap) {
				if got, ok := before[key("m.room.topic", "")]; ok {
					t.Errorf("topic = %s, want none: the demoted mod's topic loses", got)
				}
				// mod keeps acting on his fork: the state before allows it,
				// the current state does not.
				if v := fx.accept(f.b.SendState(mod, "m.room.topic", "", `{"topic":"again"}`)); v.Kind != inbound.SoftFailed {
					t.Errorf("Accept(mod's second topic on his fork) = %s (%s), want soft-failed", v.Kind, v.Reason)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachVersion(t, func(t *testing.T, version string) {
				for order, name := range []string{"A first", "B first"} {
					t.Run(name, func(t *testing.T) {
						fx := newFixture(t, version)
						f := tc.fork(fx)
						first, second := f.evA, f.evB
						if order == 1 {
							first, second = second, first
						}
						for i, ev := range []*pdu.Event{first, second} {
							want := inbound.Accepted
							if i == 1 {
								want = tc.wantSecond[order]
							}
							v := fx.accept(ev)
							if v.Kind != want {
								t.Fatalf("Accept(event %d, %s by %s) = %s (%s), want %s", i+1, ev.Type, ev.Sender, v.Kind, v.Reason, want)
							}
							// Each fork's event sees the state where the forks
							// split, whatever arrived in between.
							if !maps.Equal(v.StateBefore, fx.base.State) {
								t.Errorf("state before event %d = %v, want the state at the split %v", i+1, v.StateBefore, fx.base.State)
							}
						}

						merged := remotetest.Merge(f.a, f.b)
						v := fx.accept(merged.SendMessage(alice, "merge"))
						if v.Kind != inbound.Accepted {
							t.Fatalf("Accept(merge) = %s (%s), want accepted", v.Kind, v.Reason)
						}
						if !maps.Equal(v.StateBefore, merged.State) {
							t.Errorf("state before the merge = %v, want %v", v.StateBefore, merged.State)
						}
						if cur := fx.store.CurrentState(); !maps.Equal(cur, merged.State) {
							t.Errorf("current state after the merge = %v, want %v", cur, merged.State)
						}
						tc.check(t, fx, f, merged, v.StateBefore)
					})
				}
			})
		})
	}
}
