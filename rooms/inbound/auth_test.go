package inbound_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/inbound/remotetest"
	"github.com/parley-im/parley/rooms/pdu"
)

// TestCheck3AuthEvents: an event its own auth_events do not allow, or
// whose auth_events are the wrong selection or were rejected, is rejected;
// one whose auth events are not held asks for them.
func TestCheck3AuthEvents(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		fx := newFixture(t, version)
		f := fx.base.Clone()
		withAuth := func(ev *pdu.Event, auth ...string) *pdu.Event {
			p := proto(ev)
			p.AuthEvents = append([]string{}, auth...)
			return f.Build(p)
		}
		create := []string{fx.ev["create"].ID}
		if version == "12" {
			create = nil // the room ID names it
		}

		// bob raising himself to 100 is rejected and stored as such; an
		// event citing it as an auth event is rejected in turn.
		selfPromote := f.BuildState(bob, "m.room.power_levels", "", fx.powerLevels(map[string]int{mod: 50, bob: 100}))
		if v := fx.accept(selfPromote); v.Kind != inbound.Rejected || !strings.HasPrefix(v.Reason, "auth events:") {
			t.Fatalf("Accept(bob promotes himself) = %s (%s), want rejected by its auth events", v.Kind, v.Reason)
		}
		citesRejected := withAuth(f.BuildMessage(bob, "hi"), append(slices.Clone(create), selfPromote.ID, fx.ev["bob"].ID)...)

		cases := []struct {
			name string
			ev   *pdu.Event
		}{
			{"sender's power too low", f.BuildState(bob, "m.room.name", "", `{"name":"bob's room"}`)},
			{"sender's membership not cited", withAuth(f.BuildMessage(bob, "hi"), append(slices.Clone(create), fx.ev["pl"].ID)...)},
			{"an auth event the selection would not pick", withAuth(f.BuildMessage(bob, "hi"), append(slices.Clone(create), fx.ev["pl"].ID, fx.ev["bob"].ID, fx.ev["jr"].ID)...)},
			{"an auth event that was rejected", citesRejected},
			{"sender not in the room", f.BuildMessage(carol, "hi")},
		}
		if version == "12" {
			cases = append(cases, struct {
				name string
				ev   *pdu.Event
			}{"v12 auth_events list the create event", withAuth(f.BuildMessage(bob, "hi"), fx.ev["create"].ID, fx.ev["pl"].ID, fx.ev["bob"].ID)})
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				v := fx.accept(tc.ev)
				if v.Kind != inbound.Rejected || !strings.HasPrefix(v.Reason, "auth events:") {
					t.Fatalf("Accept = %s (%s), want rejected by its auth events", v.Kind, v.Reason)
				}
				if got := fx.store.Kind(tc.ev.ID); got != inbound.Rejected {
					t.Errorf("stored as %s, want rejected", got)
				}
				if slices.Contains(fx.store.Extremities(), tc.ev.ID) {
					t.Errorf("extremities %v hold a rejected event", fx.store.Extremities())
				}
			})
		}

		t.Run("missing auth and prev events", func(t *testing.T) {
			unknownAuth, unknownPrev := fakeID("auth"), fakeID("prev")
			p := proto(f.BuildMessage(bob, "hi"))
			p.AuthEvents = append(slices.Clone(create), fx.ev["pl"].ID, unknownAuth)
			p.PrevEvents = []string{f.Prev[0], unknownPrev}
			ev := f.Build(p)
			_, err := fx.p.Check(context.Background(), ev.Raw)
			var missing *inbound.MissingError
			if !errors.As(err, &missing) || !errors.Is(err, inbound.ErrMissing) {
				t.Fatalf("Check = %v, want a *MissingError", err)
			}
			if !slices.Equal(missing.Auth, []string{unknownAuth}) || !slices.Equal(missing.Prev, []string{unknownPrev}) {
				t.Errorf("missing auth %v, prev %v; want %v, %v", missing.Auth, missing.Prev, []string{unknownAuth}, []string{unknownPrev})
			}
		})

		t.Run("outlier", func(t *testing.T) {
			// An event fetched as another's auth event only gets checks
			// 1-3, and no state.
			topic := f.BuildState(mod, "m.room.topic", "", `{"topic":"outlier"}`)
			v, _, err := fx.p.AcceptOutlier(context.Background(), fx.room.ID, topic.Raw)
			if err != nil || v.Kind != inbound.Outlier || v.StateBefore != nil || v.ExtremitiesSeen != nil {
				t.Fatalf("AcceptOutlier = %+v, %v; want an outlier without state", v, err)
			}
			bad := f.BuildState(bob, "m.room.topic", "", `{"topic":"not allowed"}`)
			if v, _, err := fx.p.AcceptOutlier(context.Background(), fx.room.ID, bad.Raw); err != nil || v.Kind != inbound.Rejected {
				t.Fatalf("AcceptOutlier(bob's topic) = %+v, %v; want rejected", v, err)
			}
			if slices.Contains(fx.store.Extremities(), topic.ID) {
				t.Errorf("extremities %v hold an outlier", fx.store.Extremities())
			}
		})
	})
}

// TestCheck4StateBefore: an event its auth_events allow but the state
// before it (resolved over its prev_events) does not is rejected.
func TestCheck4StateBefore(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		fx := newFixture(t, version)
		f := fx.base.Clone()
		joined := f.Clone() // bob's state before the ban
		ban := fx.send(f.SendState(alice, "m.room.member", bob, `{"membership":"ban"}`))

		// bob cites his old join as auth event but builds on the ban.
		p := proto(joined.BuildMessage(bob, "still here"))
		p.PrevEvents = []string{ban.ID}
		ev := f.Build(p)
		v := fx.accept(ev)
		if v.Kind != inbound.Rejected || !strings.HasPrefix(v.Reason, "state before the event:") {
			t.Fatalf("Accept = %s (%s), want rejected by the state before it", v.Kind, v.Reason)
		}
		if got := v.StateBefore[key("m.room.member", bob)]; got != ban.ID {
			t.Errorf("state before: bob's membership = %s, want the ban %s", got, ban.ID)
		}
		if got := fx.store.Kind(ev.ID); got != inbound.Rejected {
			t.Errorf("stored as %s, want rejected", got)
		}
	})
}

// TestCheck5CurrentState: an event the state before it allows but the
// current state does not is soft-failed: stored, not an extremity.
func TestCheck5CurrentState(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		fx := newFixture(t, version)
		f := fx.base.Clone()
		stale := f.Clone()
		fx.send(f.SendState(alice, "m.room.member", bob, `{"membership":"ban"}`))

		ev := stale.BuildMessage(bob, "I did not see the ban")
		v := fx.accept(ev)
		if v.Kind != inbound.SoftFailed || !strings.HasPrefix(v.Reason, "current state:") {
			t.Fatalf("Accept = %s (%s), want soft-failed by the current state", v.Kind, v.Reason)
		}
		if got := fx.store.Kind(ev.ID); got != inbound.SoftFailed {
			t.Errorf("stored as %s, want soft-failed", got)
		}
		if slices.Contains(fx.store.Extremities(), ev.ID) {
			t.Errorf("extremities %v hold a soft-failed event", fx.store.Extremities())
		}
		if !slices.Equal(v.ExtremitiesSeen, f.Prev) {
			t.Errorf("ExtremitiesSeen = %v, want %v", v.ExtremitiesSeen, f.Prev)
		}

		// The same stale fork's message by mod, who is still in, passes.
		if v := fx.accept(stale.BuildMessage(mod, "fine")); v.Kind != inbound.Accepted {
			t.Errorf("Accept(mod on the stale fork) = %s (%s), want accepted", v.Kind, v.Reason)
		}
	})
}

// TestAcceptRechecksWhenExtremitiesMoved: when the room moves on between
// the checks and the write, the writer refuses and Accept checks again
// against the new current state.
func TestAcceptRechecksWhenExtremitiesMoved(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		fx := newFixture(t, version)
		f := fx.base.Clone()
		msg := f.Clone().BuildMessage(bob, "racing the ban")
		ban := f.SendState(alice, "m.room.member", bob, `{"membership":"ban"}`)
		raced := false
		fx.store.BeforePersist = func(_ int, v *inbound.Verdict) {
			if v.Event.ID == msg.ID && !raced {
				raced = true
				fx.send(ban) // the ban lands while msg is being checked
			}
		}
		v, _, err := fx.p.Accept(context.Background(), msg.Raw)
		if err != nil {
			t.Fatalf("Accept = %v", err)
		}
		if v.Kind != inbound.SoftFailed {
			t.Errorf("Accept = %s (%s), want soft-failed after the re-check", v.Kind, v.Reason)
		}
		if !slices.Equal(v.ExtremitiesSeen, []string{ban.ID}) {
			t.Errorf("ExtremitiesSeen = %v, want [%s]", v.ExtremitiesSeen, ban.ID)
		}
		if got := fx.store.Kind(msg.ID); got != inbound.SoftFailed {
			t.Errorf("stored as %s, want soft-failed", got)
		}
	})
}

// movingPersister always finds the room moved.
type movingPersister struct{ calls int }

func (m *movingPersister) Persist(context.Context, *inbound.Verdict) (int64, error) {
	m.calls++
	return 0, inbound.ErrExtremitiesMoved
}

func TestAcceptGivesUpOnARoomThatKeepsMoving(t *testing.T) {
	fx := newFixture(t, "11")
	mp := &movingPersister{}
	p := inbound.New(fx.store, remotetestKeys(), mp)
	_, _, err := p.Accept(context.Background(), fx.base.Clone().BuildMessage(bob, "hi").Raw)
	if !errors.Is(err, inbound.ErrTooManyAttempts) || !errors.Is(err, inbound.ErrExtremitiesMoved) {
		t.Fatalf("Accept = %v, want ErrTooManyAttempts wrapping ErrExtremitiesMoved", err)
	}
	if mp.calls != inbound.MaxAttempts {
		t.Errorf("Persist calls = %d, want %d", mp.calls, inbound.MaxAttempts)
	}
}

// A failure of the writer other than moved extremities is returned as is.
type failingPersister struct{ calls int }

func (f *failingPersister) Persist(context.Context, *inbound.Verdict) (int64, error) {
	f.calls++
	return 0, errors.New("disk full")
}

func TestAcceptReturnsWriterFailures(t *testing.T) {
	fx := newFixture(t, "11")
	fp := &failingPersister{}
	p := inbound.New(fx.store, remotetestKeys(), fp)
	_, _, err := p.Accept(context.Background(), fx.base.Clone().BuildMessage(bob, "hi").Raw)
	if err == nil || !strings.Contains(err.Error(), "disk full") || fp.calls != 1 {
		t.Fatalf("Accept = %v after %d calls, want the writer's error after 1", err, fp.calls)
	}
}

// TestAcceptHeldEvents: an event held already is not checked or stored
// again, unless it was an outlier and now arrives as a regular event; a
// second create event in a room the server holds is rejected.
func TestAcceptHeldEvents(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		fx := newFixture(t, version)
		f := fx.base.Clone()
		ctx := context.Background()

		if _, _, err := fx.p.Accept(ctx, fx.ev["bob"].Raw); !errors.Is(err, inbound.ErrAlreadyHeld) {
			t.Errorf("Accept(an accepted event again) = %v, want ErrAlreadyHeld", err)
		}
		topic := f.BuildState(mod, "m.room.topic", "", `{"topic":"first an outlier"}`)
		if _, _, err := fx.p.AcceptOutlier(ctx, fx.room.ID, topic.Raw); err != nil {
			t.Fatalf("AcceptOutlier = %v", err)
		}
		if _, _, err := fx.p.AcceptOutlier(ctx, fx.room.ID, topic.Raw); !errors.Is(err, inbound.ErrAlreadyHeld) {
			t.Errorf("AcceptOutlier(the outlier again) = %v, want ErrAlreadyHeld", err)
		}
		if v := fx.accept(topic); v.Kind != inbound.Accepted {
			t.Errorf("Accept(the outlier as a regular event) = %s (%s), want accepted", v.Kind, v.Reason)
		}

		if version == "12" {
			return // a version 12 room ID names its one create event
		}
		content := `{"room_version":"` + version + `","creator":"` + alice + `","other":"create"}`
		second := remotetest.NewRoom(t, version, remote).Create(alice, content)
		ev := second.Room.ByID[second.Prev[0]]
		if ev.RoomID != fx.room.ID {
			t.Fatalf("second create is in %s, want %s", ev.RoomID, fx.room.ID)
		}
		if v := fx.accept(ev); v.Kind != inbound.Rejected {
			t.Errorf("Accept(a second create event) = %s (%s), want rejected", v.Kind, v.Reason)
		}
	})
}

// TestAcceptConcurrent: events of one room accepted at the same time all
// land; those that lose the race to the writer re-check and try again.
func TestAcceptConcurrent(t *testing.T) {
	fx := newFixture(t, "11")
	f := fx.base.Clone()
	const n = 3 // under MaxAttempts: each round, at least one event lands
	raws := make([][]byte, n)
	for i := range raws {
		raws[i] = f.BuildMessage(bob, strings.Repeat("x", i+1)).Raw
	}
	errs := make(chan error, n)
	for _, raw := range raws {
		go func() {
			v, _, err := fx.p.Accept(context.Background(), raw)
			if err == nil && v.Kind != inbound.Accepted {
				err = errors.New(v.Kind.String() + ": " + v.Reason)
			}
			errs <- err
		}()
	}
	for range raws {
		if err := <-errs; err != nil {
			t.Errorf("Accept = %v, want accepted", err)
		}
	}
	if got := len(fx.store.Extremities()); got != n {
		t.Errorf("extremities = %d, want %d (one per concurrent event)", got, n)
	}
}

// TestPrevEventsOfAnotherRoom: an event citing another room's event as a
// prev event is rejected; that room's state must not become its state.
func TestPrevEventsOfAnotherRoom(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		fx := newFixture(t, version)
		elsewhere := remotetest.NewRoom(t, version, other)
		ef := elsewhere.Create(carol, `{"creator":"`+carol+`","room_version":"`+version+`"}`)
		foreign := elsewhere.ByID[ef.Prev[0]]
		// The store holds it with a state that would let bob in.
		if _, err := fx.store.Persist(context.Background(), &inbound.Verdict{Raw: foreign.Raw, Event: foreign, Kind: inbound.Rejected, Reason: "test", StateBefore: fx.base.State}); err != nil {
			t.Fatal(err)
		}
		f := fx.base.Clone()
		p := proto(f.BuildMessage(bob, "from elsewhere"))
		p.PrevEvents = []string{foreign.ID}
		v := fx.accept(f.Build(p))
		if v.Kind != inbound.Rejected || !strings.Contains(v.Reason, "is in room") {
			t.Errorf("Accept = %s (%s), want rejected for a prev event in another room", v.Kind, v.Reason)
		}
	})
}
