package homeserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/inbound/remotetest"
)

// TestInboundPipelineOnStores feeds a second server's events through the
// inbound pipeline (rooms/inbound) over the real stores
// (rooms.InboundStore): a join, a fork, a rejected event and one built on
// it, and a soft-failed event. Accepted events reach alice's sync; the
// rejected and soft-failed ones reach nothing a client reads.
func TestInboundPipelineOnStores(t *testing.T) {
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
			accept := func(raw []byte, want inbound.Kind) {
				t.Helper()
				v, _, err := p.Accept(ctx, raw)
				if err != nil {
					t.Fatalf("Accept: %v", err)
				}
				if v.Kind != want {
					t.Fatalf("verdict = %v (%s), want %v", v.Kind, v.Reason, want)
				}
			}

			join, _ := r.build(bob, "m.room.member", strp(bob), map[string]any{"membership": "join"}, r.extremities()...)
			accept(join.Raw, inbound.Accepted)
			since := alice.Sync("", 0).Get("next_batch").String()
			a1 := alice.Send(room, "a1", "A1")
			b1, _ := r.build(bob, "m.room.message", nil, msg("B1"), join.ID) // a fork beside A1
			accept(b1.Raw, inbound.Accepted)

			// bob has no power to change power levels: rejected at check 3.
			pl, _ := r.build(bob, "m.room.power_levels", strp(""), map[string]any{"users": map[string]int{bob: 100}}, b1.ID)
			accept(pl.Raw, inbound.Rejected)
			// An event built on the rejected one is checked against the state
			// before it, and accepted.
			b2, _ := r.build(bob, "m.room.message", nil, msg("B2"), pl.ID)
			accept(b2.Raw, inbound.Accepted)

			// alice bans bob; bob's message built before the ban passes checks
			// 1–4 but not check 5.
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/ban", map[string]any{"user_id": bob})
			late, _ := r.build(bob, "m.room.message", nil, msg("late"), b2.ID)
			accept(late.Raw, inbound.SoftFailed)

			// A retry of an accepted event changes nothing.
			if _, _, err := p.Accept(ctx, b1.Raw); !errors.Is(err, inbound.ErrAlreadyHeld) {
				t.Errorf("Accept(b1) again = %v, want ErrAlreadyHeld", err)
			}

			seen := map[string]bool{}
			for _, e := range hstest.Room(alice.Sync(since, 0), "join", room).Get("timeline.events").Array() {
				seen[e.Get("event_id").String()] = true
			}
			for _, c := range []struct {
				name, id string
				want     bool
			}{{"A1", a1, true}, {"B1", b1.ID, true}, {"B2", b2.ID, true}, {"rejected power levels", pl.ID, false}, {"soft-failed", late.ID, false}} {
				if seen[c.id] != c.want {
					t.Errorf("%s in alice's sync = %v, want %v", c.name, seen[c.id], c.want)
				}
			}
			msgs := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=b&limit=50", nil)
			for _, e := range msgs.Get("chunk").Array() {
				if id := e.Get("event_id").String(); id == pl.ID || id == late.ID {
					t.Errorf("/messages serves %s, which was rejected or soft-failed", id)
				}
			}
			var content map[string]any
			state := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.power_levels/", nil)
			_ = json.Unmarshal([]byte(state.Raw), &content)
			if users, _ := content["users"].(map[string]any); users[bob] != nil {
				t.Errorf("power levels = %s, want bob's rejected change left out", state.Raw)
			}
		})
	}
}
