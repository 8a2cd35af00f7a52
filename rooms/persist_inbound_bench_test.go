package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// BenchmarkPersistInbound: the writer's cost of storing one accepted
// inbound event (PersistInbound, as the federation pipeline calls it) in a
// room of PARLEY_BENCH_MEMBERS members (default 1,000, so CI's 100
// iterations take seconds): a message, and a member joining. Each event
// extends the room's one forward extremity, the common case of a room
// that does not fork. The events are built here and not checked (the
// writer trusts its caller), so only the store side is measured.
func BenchmarkPersistInbound(b *testing.B) {
	members := 1000
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_MEMBERS")); err == nil && v > 0 {
		members = v
	}
	for _, kind := range []string{"message", "join"} {
		b.Run(kind, func(b *testing.B) {
			s, room, state, prev, depth := benchInboundRoom(b, members)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				p := pdu.Proto{RoomID: room, Sender: "@owner:test.local", PrevEvents: []string{prev}, Depth: depth + 1,
					OriginServerTS: int64(1_700_000_000_000 + i)}
				if kind == "message" {
					p.Type, p.Content = "m.room.message", json.RawMessage(fmt.Sprintf(`{"msgtype":"m.text","body":"b%d"}`, i))
				} else {
					u := fmt.Sprintf("@late%d:test.local", i)
					p.Sender, p.Type, p.StateKey, p.Content = u, "m.room.member", &u, json.RawMessage(`{"membership":"join"}`)
				}
				for _, k := range authrules.Needed(p.Type, p.StateKey, p.Sender, p.Content) {
					if id := state[k]; id != "" {
						p.AuthEvents = append(p.AuthEvents, id)
					}
				}
				ev, err := pdu.Build(p, "11", s.cfg.Key)
				if err != nil {
					b.Fatal(err)
				}
				in := InboundEvent{Event: ev, Kind: Accepted, StateBefore: state, ExtremitiesSeen: []string{prev}}
				if _, err := s.PersistInbound(ctx, in); err != nil {
					b.Fatal(err)
				}
				if ev.StateKey != nil {
					state[authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = ev.ID
				}
				prev, depth = ev.ID, ev.Depth
			}
		})
	}
}

// benchInboundRoom makes a version 11 room with members joined and
// returns its state, its one forward extremity and that event's depth.
func benchInboundRoom(b testing.TB, members int) (s *Service, room string, state map[authrules.StateKey]string, prev string, depth int64) {
	b.Helper()
	ctx := context.Background()
	s = newTestService(b, Config{MaxQueuePerUser: 1 << 20, MaxQueue: 1 << 20})
	room, err := s.CreateRoom(ctx, CreateRequest{Creator: "@owner:test.local", Preset: "public_chat", RoomVersion: "11"})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < members; i += 64 {
				u := fmt.Sprintf("@m%d:test.local", i)
				if _, err := s.ChangeMembership(ctx, MembershipRequest{RoomID: room, Sender: u, Target: u, Membership: "join"}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	ext, err := s.Extremities(ctx, room)
	if err != nil || len(ext) != 1 {
		b.Fatalf("extremities = %v, %v; want one", ext, err)
	}
	sm, err := s.StateAfterEvent(ctx, ext[0].EventID)
	if err != nil {
		b.Fatal(err)
	}
	return s, room, sm, ext[0].EventID, ext[0].Depth
}

// TestPersistInboundLinearState: accepted inbound events that extend the
// room's one extremity take the O(1) path (linearAfter); the state after
// each, and the room's current state, are what the whole-state path gave:
// the state before plus the event, across the snapshot written every
// maxGroupHops changes.
func TestPersistInboundLinearState(t *testing.T) {
	ctx := context.Background()
	s, room, state, prev, depth := benchInboundRoom(t, 3)
	type step struct {
		id   string
		want map[authrules.StateKey]string
	}
	var steps []step
	for i := range maxGroupHops + 30 {
		p := pdu.Proto{RoomID: room, Sender: "@owner:test.local", PrevEvents: []string{prev}, Depth: depth + 1,
			OriginServerTS: int64(1_700_000_000_000 + i)}
		if i%3 == 0 {
			p.Type, p.Content = "m.room.message", json.RawMessage(`{"msgtype":"m.text","body":"x"}`)
		} else {
			u := fmt.Sprintf("@late%d:test.local", i)
			p.Sender, p.Type, p.StateKey, p.Content = u, "m.room.member", &u, json.RawMessage(`{"membership":"join"}`)
		}
		ev, err := pdu.Build(p, "11", s.cfg.Key)
		if err != nil {
			t.Fatal(err)
		}
		in := InboundEvent{Event: ev, Kind: Accepted, StateBefore: maps.Clone(state), ExtremitiesSeen: []string{prev}}
		if _, err := s.PersistInbound(ctx, in); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.StateKey != nil {
			state[authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = ev.ID
		}
		steps = append(steps, step{ev.ID, maps.Clone(state)})
		prev, depth = ev.ID, ev.Depth
	}
	for i, st := range steps {
		got, err := s.StateAfterEvent(ctx, st.id)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if !maps.Equal(got, st.want) {
			t.Fatalf("event %d: state after has %d entries, want %d (or they differ)", i, len(got), len(st.want))
		}
	}
	cur, err := realStore(s).CurrentState(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) != len(state) {
		t.Fatalf("current state has %d entries, want %d", len(cur), len(state))
	}
	for _, e := range cur {
		if id := state[authrules.StateKey{Type: e.Type, StateKey: *e.StateKey}]; id != e.EventID {
			t.Errorf("current %s/%s = %s, want %s", e.Type, *e.StateKey, e.EventID, id)
		}
	}
}
