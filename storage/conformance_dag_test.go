package storage_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Conformance of the room DAG: edges, extremities, state groups, the
// current-state deltas, unlisted events and topological order.
func TestConformanceDAG(t *testing.T) {
	runStreamCases(t, []streamCase{
		{"edges and extremities", confEdgesExtremities},
		{"state groups on two forks", confStateGroupForks},
		{"current state deltas", confCurrentStateDeltas},
		{"unlisted events stay out of client reads", confUnlisted},
		{"topological order and backfill positions", confTopoOrder},
	})
}

func confEdgesExtremities(t *testing.T, ctx context.Context, s *storage.Store) {
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		if err := tx.InsertRoom(ctx, storage.Room{RoomID: "!r:x", Version: "11", Creator: "@a:x", CreatedTS: 1}); err != nil {
			return err
		}
		b := storage.Event{Pos: 1, EventID: "$b", RoomID: "!r:x", Type: "m.room.message", Sender: "@a:x", Depth: 2, Client: []byte(`{}`),
			PrevIDs: []string{"$a"}, AuthIDs: []string{"$c", "$a"}}
		if err := tx.InsertEvent(ctx, &b, []byte(`{}`)); err != nil {
			return err
		}
		return tx.SetExtremities(ctx, "!r:x", []dag.Extremity{{EventID: "$b", Depth: 2}})
	})
	prev, auth, err := s.Edges(ctx, "$b")
	if err != nil || !slices.Equal(prev, []string{"$a"}) || !slices.Equal(auth, []string{"$a", "$c"}) {
		t.Errorf("Edges($b) = %v %v %v, want [$a] [$a $c]", prev, auth, err)
	}
	want := func(what string, w ...dag.Extremity) {
		t.Helper()
		got, err := s.Extremities(ctx, "!r:x")
		if err != nil || !slices.Equal(got, w) {
			t.Errorf("%s: Extremities = %v %v, want %v", what, got, err, w)
		}
	}
	if _, _, err := s.Edges(ctx, "$missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Edges(missing) = %v, want ErrNotFound", err)
	}
	want("after a chain", dag.Extremity{EventID: "$b", Depth: 2})
	// A fork, given shallowest first: read back deepest first.
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		return tx.SetExtremities(ctx, "!r:x", []dag.Extremity{{EventID: "$f", Depth: 2}, {EventID: "$g", Depth: 3}})
	})
	want("after a fork", dag.Extremity{EventID: "$g", Depth: 3}, dag.Extremity{EventID: "$f", Depth: 2})
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		return tx.SetExtremities(ctx, "!r:x", []dag.Extremity{{EventID: "$m", Depth: 4}})
	})
	want("after the merge", dag.Extremity{EventID: "$m", Depth: 4})
	// "The latest event": whichever listed event has the highest position,
	// read back with its depth, with no row rewrite per message.
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		return tx.SetExtremitiesLatest(ctx, "!r:x")
	})
	want("stored as the latest event", dag.Extremity{EventID: "$b", Depth: 2})
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		n := storage.Event{Pos: 7, EventID: "$n", RoomID: "!r:x", Type: "m.room.message", Sender: "@a:x", Depth: 3, Client: []byte(`{}`),
			PrevIDs: []string{"$b"}, AuthIDs: []string{"$c"}}
		return tx.InsertEvent(ctx, &n, []byte(`{}`))
	})
	want("a newer event under the latest-event form", dag.Extremity{EventID: "$n", Depth: 3})
	if got, err := s.Extremities(ctx, "!other:x"); err != nil || len(got) != 0 {
		t.Errorf("Extremities(unknown room) = %v %v, want none", got, err)
	}
}

// forkKey is a second server's signing key: the forks are built by hand.
func forkKey(server string) *pdu.SigningKey {
	seed := sha256.Sum256([]byte(server))
	return &pdu.SigningKey{ServerName: server, KeyID: "ed25519:k", Private: ed25519.NewKeyFromSeed(seed[:])}
}

func confStateGroupForks(t *testing.T, ctx context.Context, s *storage.Store) {
	here, there := forkKey("x"), forkKey("y")
	var ts int64 = 1000
	build := func(key *pdu.SigningKey, sender, typ, stateKey, content string, depth int64, prev ...string) *pdu.Event {
		t.Helper()
		ts++
		ev, err := pdu.Build(pdu.Proto{RoomID: "!r:x", Sender: sender, Type: typ, StateKey: &stateKey, Content: []byte(content),
			PrevEvents: prev, Depth: depth, OriginServerTS: ts}, "11", key)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	create := build(here, "@a:x", "m.room.create", "", `{"room_version":"11"}`, 1)
	join := build(here, "@a:x", "m.room.member", "@a:x", `{"membership":"join"}`, 2, create.ID)
	topicX := build(here, "@a:x", "m.room.topic", "", `{"topic":"x"}`, 3, join.ID)
	joinY := build(there, "@b:y", "m.room.member", "@b:y", `{"membership":"join"}`, 3, join.ID)
	nameY := build(there, "@b:y", "m.room.name", "", `{"name":"y"}`, 4, joinY.ID)
	st := func(kv ...string) dag.StateMap {
		m := dag.StateMap{}
		for i := 0; i < len(kv); i += 3 {
			m[dag.StateTuple{Type: kv[i], StateKey: kv[i+1]}] = kv[i+2]
		}
		return m
	}
	base := st("m.room.create", "", create.ID, "m.room.member", "@a:x", join.ID)
	groups := map[int64]dag.StateMap{
		1: base,
		2: st("m.room.create", "", create.ID, "m.room.member", "@a:x", join.ID, "m.room.topic", "", topicX.ID),
		3: st("m.room.create", "", create.ID, "m.room.member", "@a:x", join.ID, "m.room.member", "@b:y", joinY.ID),
		4: st("m.room.create", "", create.ID, "m.room.member", "@a:x", join.ID, "m.room.member", "@b:y", joinY.ID, "m.room.name", "", nameY.ID),
		5: st("m.room.create", "", create.ID, "m.room.member", "@a:x", join.ID), // the y fork with the name removed again
	}
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		if err := tx.InsertRoom(ctx, storage.Room{RoomID: "!r:x", Version: "11", Creator: "@a:x", CreatedTS: 1}); err != nil {
			return err
		}
		rows := []struct {
			g      dag.StateGroupRow
			deltas []dag.StateDelta
		}{
			{dag.StateGroupRow{ID: 1, RoomID: "!r:x"}, nil},
			{dag.StateGroupRow{ID: 2, RoomID: "!r:x", Parent: 1, Hops: 1}, []dag.StateDelta{{Type: "m.room.topic", StateKey: "", EventID: topicX.ID}}},
			{dag.StateGroupRow{ID: 3, RoomID: "!r:x", Parent: 1, Hops: 1}, []dag.StateDelta{{Type: "m.room.member", StateKey: "@b:y", EventID: joinY.ID}}},
			{dag.StateGroupRow{ID: 4, RoomID: "!r:x", Parent: 3, Hops: 2}, []dag.StateDelta{{Type: "m.room.name", StateKey: "", EventID: nameY.ID}}},
			{dag.StateGroupRow{ID: 5, RoomID: "!r:x", Parent: 4, Hops: 3}, []dag.StateDelta{{Type: "m.room.name", StateKey: "", EventID: ""}, {Type: "m.room.member", StateKey: "@b:y", EventID: ""}}},
		}
		for _, r := range rows {
			if err := tx.InsertStateGroup(ctx, r.g, r.deltas, base); err != nil {
				return err
			}
		}
		for i, e := range []struct {
			ev    *pdu.Event
			group int64
		}{{create, 1}, {join, 1}, {topicX, 2}, {joinY, 3}, {nameY, 4}} {
			row := storage.Event{Pos: int64(i + 1), EventID: e.ev.ID, RoomID: "!r:x", Type: e.ev.Type, StateKey: e.ev.StateKey,
				Sender: e.ev.Sender, Depth: e.ev.Depth, OriginTS: e.ev.OriginServerTS, Client: []byte(`{}`), StateGroup: e.group, NotCurrent: true}
			if err := tx.InsertEvent(ctx, &row, e.ev.Raw); err != nil {
				return err
			}
		}
		return nil
	})
	for g, want := range groups {
		got, hops, err := s.StateGroupState(ctx, g)
		if err != nil || !maps.Equal(got, want) {
			t.Errorf("StateGroupState(%d) = %v %v, want %v", g, got, err, want)
		}
		if g == 4 && hops != 2 {
			t.Errorf("StateGroupState(4) hops = %d, want 2", hops)
		}
	}
	if _, _, err := s.StateGroupState(ctx, 99); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("StateGroupState(missing) = %v, want ErrNotFound", err)
	}
	// State after the x fork's topic (position 3) never holds the y fork's
	// join, though the join came later by position only on the other
	// branch; after nameY (position 5) it holds no topic.
	after := func(pos int64) []string {
		evs, err := s.StateAt(ctx, "!r:x", pos)
		if err != nil {
			t.Fatal(err)
		}
		out := ids(evs)
		slices.Sort(out)
		return out
	}
	sorted := func(v ...string) []string { slices.Sort(v); return v }
	if got, want := after(3), sorted(create.ID, join.ID, topicX.ID); !slices.Equal(got, want) {
		t.Errorf("StateAt(topic on fork x) = %v, want %v", got, want)
	}
	if got, want := after(5), sorted(create.ID, join.ID, joinY.ID, nameY.ID); !slices.Equal(got, want) {
		t.Errorf("StateAt(name on fork y) = %v, want %v", got, want)
	}
	if got, err := s.MemberEventsAt(ctx, "!r:x", []string{"@a:x", "@b:y"}, 3); err != nil || !slices.Equal(ids(got), []string{join.ID}) {
		t.Errorf("MemberEventsAt(fork x) = %v %v, want [%s]", ids(got), err, join.ID)
	}
	stored, err := s.EventsByID(ctx, []string{nameY.ID, "$missing"})
	if err != nil || len(stored) != 1 || stored[0].StateGroup != 4 || stored[0].Kind != "" || string(stored[0].PDU) != string(nameY.Raw) {
		t.Errorf("EventsByID(nameY) = %+v %v, want group 4, accepted, its PDU", stored, err)
	}
}

func confCurrentStateDeltas(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	insertEvents(t, s, nil, evAt(9, "!a:x", "m.room.topic", sk(""), "@v:x"), evAt(10, "!a:x", "m.room.topic", sk(""), "@v:x"))
	// Resolution at position 11 brings back the older topic $e9 and drops
	// @l:x's membership.
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		return tx.ApplyCurrentState(ctx, "!a:x", 11, []dag.CurrentChange{
			{Type: "m.room.topic", EventID: "$e9", Sender: "@v:x"},
			{Type: "m.room.member", StateKey: "@l:x"},
		})
	})
	got, err := s.StateEventsIn(ctx, []storage.RoomBound{{RoomID: "!a:x", Since: 10, Upto: 11}})
	if err != nil || !slices.Equal(ids(got), []string{"$e9"}) {
		t.Errorf("StateEventsIn(10, 11] = %v %v, want [$e9] (an older event made current again)", ids(got), err)
	}
	cur, err := s.CurrentState(ctx, "!a:x")
	if err != nil {
		t.Fatal(err)
	}
	if c := ids(cur); !slices.Contains(c, "$e9") || slices.Contains(c, "$e10") || slices.Contains(c, "$e6") {
		t.Errorf("CurrentState = %v, want $e9 and neither $e10 nor @l:x's $e6", c)
	}
	if _, err := s.GetMembership(ctx, "!a:x", "@l:x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetMembership(removed) = %v, want ErrNotFound", err)
	}
}

func confUnlisted(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		for _, k := range []dag.UnlistedKind{dag.Outlier, dag.Rejected, dag.SoftFailed} {
			if err := tx.InsertUnlisted(ctx, dag.UnlistedEvent{EventID: "$" + string(k), RoomID: "!a:x", Kind: k, Reason: "why",
				Depth: 7, PrevIDs: []string{"$e8"}, AuthIDs: []string{"$e1"}, PDU: []byte(`{}`), ReceivedTS: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	stored, err := s.EventsByID(ctx, []string{"$outlier", "$rejected", "$soft_failed", "$e1"})
	if err != nil || len(stored) != 4 {
		t.Fatalf("EventsByID = %v %v, want 4", stored, err)
	}
	kinds := map[string]dag.UnlistedKind{}
	for _, e := range stored {
		kinds[e.EventID] = e.Kind
	}
	if want := map[string]dag.UnlistedKind{"$outlier": dag.Outlier, "$rejected": dag.Rejected, "$soft_failed": dag.SoftFailed, "$e1": ""}; !maps.Equal(kinds, want) {
		t.Errorf("kinds = %v, want %v", kinds, want)
	}
	unlisted := func(evs []storage.Event) bool {
		return slices.ContainsFunc(evs, func(e storage.Event) bool { return e.EventID[1] != 'e' })
	}
	bound := []storage.RoomBound{{RoomID: "!a:x", Since: 0, Upto: 100}}
	reads := map[string]func() ([]storage.Event, error){
		"RoomEvents":     func() ([]storage.Event, error) { return s.RoomEvents(ctx, "!a:x", 100, 0, true, 100) },
		"RoomEventsTopo": func() ([]storage.Event, error) { return s.RoomEventsTopo(ctx, allTopo("!a:x", true)) },
		"RoomTimelines":  func() ([]storage.Event, error) { return s.RoomTimelines(ctx, bound, 100) },
		"StateEventsIn":  func() ([]storage.Event, error) { return s.StateEventsIn(ctx, bound) },
		"StateAt":        func() ([]storage.Event, error) { return s.StateAt(ctx, "!a:x", 100) },
		"CurrentState":   func() ([]storage.Event, error) { return s.CurrentState(ctx, "!a:x") },
	}
	for name, read := range reads {
		got, err := read()
		if err != nil || unlisted(got) || len(got) == 0 {
			t.Errorf("%s = %v %v, want listed events only", name, ids(got), err)
		}
	}
	if p, a, err := s.Edges(ctx, "$outlier"); err != nil || !slices.Equal(p, []string{"$e8"}) || !slices.Equal(a, []string{"$e1"}) {
		t.Errorf("Edges(outlier) = %v %v %v, want [$e8] [$e1]", p, a, err)
	}
	if _, err := s.GetEvent(ctx, "$rejected"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetEvent(rejected) = %v, want ErrNotFound", err)
	}
}

func allTopo(room string, backwards bool) storage.TopoQuery {
	q := storage.TopoQuery{RoomID: room, Backwards: backwards, MinPos: math.MinInt64, MaxPos: math.MaxInt64, Limit: 100,
		From: storage.TopoMin, To: storage.TopoMax}
	if backwards {
		q.From, q.To = storage.TopoMax, storage.TopoMin
	}
	return q
}

func confTopoOrder(t *testing.T, ctx context.Context, s *storage.Store) {
	at := func(pos, depth int64) storage.Event {
		e := msgEv(pos, "!t:x", "@v:x", false)
		if pos < 0 {
			e.EventID = "$back"
		}
		e.Depth = depth
		return e
	}
	// Stream order 1..5, depths 1,2,3,2,4 (event 4 is a fork at depth 2),
	// and a backfilled event at -1, depth 1.
	insertEvents(t, s, []string{"!t:x"}, at(1, 1), at(2, 2), at(3, 3), at(4, 2), at(5, 4), at(-1, 1))
	q := allTopo("!t:x", true)
	got, err := s.RoomEventsTopo(ctx, q)
	if want := []string{"$e5", "$e3", "$e4", "$e2", "$e1", "$back"}; err != nil || !slices.Equal(ids(got), want) {
		t.Errorf("RoomEventsTopo(backwards) = %v %v, want %v", ids(got), err, want)
	}
	q = allTopo("!t:x", false)
	got, err = s.RoomEventsTopo(ctx, q)
	if want := []string{"$back", "$e1", "$e2", "$e4", "$e3", "$e5"}; err != nil || !slices.Equal(ids(got), want) {
		t.Errorf("RoomEventsTopo(forwards) = %v %v, want %v", ids(got), err, want)
	}
	// From a point, bounded by stream positions (a stream token, a leave).
	q = allTopo("!t:x", true)
	q.From, q.MaxPos = storage.TopoPoint{Depth: 2, Pos: 3}, 3
	got, err = s.RoomEventsTopo(ctx, q)
	if want := []string{"$e2", "$e1", "$back"}; err != nil || !slices.Equal(ids(got), want) {
		t.Errorf("RoomEventsTopo(backwards from (2,3), pos <= 3) = %v %v, want %v", ids(got), err, want)
	}
	// Backfilled history never falls in a sync range.
	got, err = s.RoomTimelines(ctx, []storage.RoomBound{{RoomID: "!t:x", Since: 0, Upto: 10}}, 100)
	if err != nil || slices.Contains(ids(got), "$back") || len(got) != 5 {
		t.Errorf("RoomTimelines(0, 10] = %v %v, want the 5 stream events", ids(got), err)
	}
	if m, err := s.MinPosition(ctx); err != nil || m != -1 {
		t.Errorf("MinPosition = %d %v, want -1", m, err)
	}
}
