package homeserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/inbound/remotetest"
	"github.com/parley-im/parley/rooms/pdu"
)

// TestInboundBatchOnStores takes a second server's run of events through
// one inbound Batch over the real stores (rooms.InboundStore, whose
// PersistBatch is one writer job): a join, messages and a state change
// (a new display name) extending it. A local send lands between the checks and the write of a
// second run, so the writer refuses that run (ErrExtremitiesMoved) and its
// events are checked again one by one. Every event is accepted and served
// in order.
func TestInboundBatchOnStores(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			ctx := context.Background()
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_version": "11"})
			r := newRemote(t, srv.Srv.Rooms, room)
			keys := remotetest.Keyring{}
			keys.Add("remote.test", r.key)
			adapter := srv.Srv.Rooms.InboundStore()
			p := inbound.New(adapter, keys, adapter)
			bob := "@bob:remote.test"
			since := alice.Sync("", 0).Get("next_batch").String()

			run := func(evs []*pdu.Event, between func()) {
				t.Helper()
				b := p.NewBatch()
				for _, ev := range evs {
					b.Add(ctx, ev.Raw, func(v *inbound.Verdict, err error) {
						if err != nil || v.Kind != inbound.Accepted {
							t.Errorf("%s: %v, %v; want accepted", ev.ID, v, err)
						}
					})
				}
				if between != nil {
					between()
				}
				b.Flush(ctx)
			}
			// The chain is built ahead of storing: each event on the last,
			// authorised by the state the chain has reached.
			join, state := r.build(bob, "m.room.member", strp(bob), map[string]any{"membership": "join"}, r.extremities()...)
			state = maps.Clone(state)
			state[authrules.StateKey{Type: "m.room.member", StateKey: bob}] = join.ID
			prev, depth := join.ID, join.Depth
			next := func(typ string, stateKey *string, content any) *pdu.Event {
				raw, _ := json.Marshal(content)
				p := pdu.Proto{RoomID: room, Sender: bob, Type: typ, StateKey: stateKey, Content: raw,
					PrevEvents: []string{prev}, Depth: depth + 1, OriginServerTS: r.ts}
				r.ts++
				for _, k := range authrules.Needed(typ, stateKey, bob, raw) {
					if id := state[k]; id != "" {
						p.AuthEvents = append(p.AuthEvents, id)
					}
				}
				ev, err := pdu.Build(p, "11", r.key)
				if err != nil {
					t.Fatalf("build: %v", err)
				}
				if stateKey != nil {
					state[authrules.StateKey{Type: typ, StateKey: *stateKey}] = ev.ID
				}
				prev, depth = ev.ID, ev.Depth
				return ev
			}
			evs := []*pdu.Event{join}
			for i := range 8 {
				evs = append(evs, next("m.room.message", nil, msg(fmt.Sprint("first run ", i))))
			}
			evs = append(evs, next("m.room.member", strp(bob), map[string]any{"membership": "join", "displayname": "Bob, renamed"}))
			run(evs, nil)
			if got := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(bob), nil).Get("displayname").String(); got != "Bob, renamed" {
				t.Errorf("bob's display name = %q, want his change", got)
			}

			var second []*pdu.Event
			for i := range 5 {
				second = append(second, next("m.room.message", nil, msg(fmt.Sprint("second run ", i))))
			}
			var local string
			run(second, func() { local = alice.Send(room, "moved", "sent while bob's run waits") })

			if got := hstest.Room(alice.Sync(since, 0), "join", room).Get("timeline.events.#").Int(); got == 0 {
				t.Errorf("alice's sync has no new events")
			}
			// Oldest first: bob's events keep their order around the local one.
			var order []string
			msgs := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=b&limit=50", nil)
			for _, e := range msgs.Get("chunk").Array() {
				order = append([]string{e.Get("event_id").String()}, order...)
			}
			at := map[string]int{}
			for i, id := range order {
				at[id] = i + 1
			}
			all := append(append(evs, second...), &pdu.Event{ID: local})
			for i, ev := range all {
				if at[ev.ID] == 0 {
					t.Errorf("%s not in /messages", ev.ID)
				} else if i > 0 && i < len(all)-1 && at[ev.ID] < at[all[i-1].ID] {
					t.Errorf("%s served before %s, which came first", ev.ID, all[i-1].ID)
				}
			}
		})
	}
}
