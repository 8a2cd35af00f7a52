package homeserver_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/rooms/stateres"
)

// remote is a second server, with its own ed25519 key, that builds events
// by hand and feeds them in through rooms.Service.PersistInbound, as the
// inbound pipeline will.
type remote struct {
	t    *testing.T
	svc  *rooms.Service
	key  *pdu.SigningKey
	room string
	ts   int64 // each event a millisecond later, so resolution's order is the build order
}

func newRemote(t *testing.T, svc *rooms.Service, roomID string) *remote {
	seed := sha256.Sum256([]byte("remote.test"))
	return &remote{t: t, svc: svc, room: roomID, ts: time.Now().UnixMilli(),
		key: &pdu.SigningKey{ServerName: "remote.test", KeyID: "ed25519:r1", Private: ed25519.NewKeyFromSeed(seed[:])}}
}

// build makes an event on top of prev, authorised by the state after prev[0].
func (r *remote) build(sender, typ string, stateKey *string, content any, prev ...string) (*pdu.Event, stateres.StateMap) {
	r.t.Helper()
	ctx := context.Background()
	before, err := r.svc.StateAfterEvent(ctx, prev[0])
	if err != nil {
		r.t.Fatalf("StateAfterEvent(%s): %v", prev[0], err)
	}
	var depth int64
	stored, err := r.svc.EventsByID(ctx, prev)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, s := range stored {
		depth = max(depth, s.Depth)
	}
	raw, _ := json.Marshal(content)
	p := pdu.Proto{RoomID: r.room, Sender: sender, Type: typ, StateKey: stateKey, Content: raw,
		PrevEvents: prev, Depth: depth + 1, OriginServerTS: r.ts}
	r.ts++
	for _, k := range authrules.Needed(typ, stateKey, sender, raw) {
		if id := before[k]; id != "" {
			p.AuthEvents = append(p.AuthEvents, id)
		}
	}
	ev, err := pdu.Build(p, "11", r.key)
	if err != nil {
		r.t.Fatalf("build: %v", err)
	}
	return ev, before
}

func (r *remote) persist(ev *pdu.Event, kind rooms.InboundKind, before stateres.StateMap) int64 {
	r.t.Helper()
	ctx := context.Background()
	xs, err := r.svc.Extremities(ctx, r.room)
	if err != nil {
		r.t.Fatal(err)
	}
	var seen []string
	for _, x := range xs {
		seen = append(seen, x.EventID)
	}
	pos, err := r.svc.PersistInbound(ctx, rooms.InboundEvent{Event: ev, Kind: kind, Reason: "test", StateBefore: before, ExtremitiesSeen: seen})
	if err != nil {
		r.t.Fatalf("PersistInbound(%s): %v", ev.ID, err)
	}
	return pos
}

func (r *remote) extremities() []string {
	r.t.Helper()
	xs, err := r.svc.Extremities(context.Background(), r.room)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, x := range xs {
		out = append(out, x.EventID)
	}
	slices.Sort(out)
	return out
}

func strp(s string) *string { return &s }

func msg(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }

// TestDAGForkOrderAndState builds a fork from a second server and checks
// the extremities, the merge, topological /messages order, state after an
// event on each branch, and that events users never see stay out of every
// client read.
func TestDAGForkOrderAndState(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			ctx := context.Background()
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_version": "11"})
			r := newRemote(t, srv.Srv.Rooms, room)
			bob := "@bob:remote.test"

			x0 := r.extremities()
			join, before := r.build(bob, "m.room.member", strp(bob), map[string]any{"membership": "join"}, x0...)
			r.persist(join, rooms.Accepted, before)
			if got := r.extremities(); !slices.Equal(got, []string{join.ID}) {
				t.Fatalf("extremities after bob's join = %v, want [%s]", got, join.ID)
			}
			since := alice.Sync("", 0).Get("next_batch").String()

			// Main branch: alice's A1, A2 and a topic. Fork: bob's B1 and a
			// display name change, both on top of his join.
			alice.Send(room, "a1", "A1")
			alice.Send(room, "a2", "A2")
			topic := alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.topic/", map[string]any{"topic": "main"}).Get("event_id").String()
			b1, before := r.build(bob, "m.room.message", nil, msg("B1"), join.ID)
			r.persist(b1, rooms.Accepted, before)
			bname, before := r.build(bob, "m.room.member", strp(bob), map[string]any{"membership": "join", "displayname": "Bob on a fork"}, b1.ID)
			r.persist(bname, rooms.Accepted, before)
			want := []string{topic, bname.ID}
			slices.Sort(want)
			if got := r.extremities(); !slices.Equal(got, want) {
				t.Fatalf("extremities with a fork = %v, want %v", got, want)
			}

			// State after an event on each branch comes from its group.
			st, err := r.svc.StateAfterEvent(ctx, bname.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := st[authrules.StateKey{Type: "m.room.topic"}]; got != "" {
				t.Errorf("topic after bob's fork event = %q, want none (alice's topic is on the other branch)", got)
			}
			if got := st[authrules.StateKey{Type: "m.room.member", StateKey: bob}]; got != bname.ID {
				t.Errorf("bob's member event after his rename = %q, want %s", got, bname.ID)
			}
			st, err = r.svc.StateAfterEvent(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			if got := st[authrules.StateKey{Type: "m.room.topic"}]; got != topic {
				t.Errorf("topic after alice's topic = %q, want %s", got, topic)
			}
			if got := st[authrules.StateKey{Type: "m.room.member", StateKey: bob}]; got != join.ID {
				t.Errorf("bob's member event on alice's branch = %q, want his join %s", got, join.ID)
			}

			// Current state is the resolution of both branches.
			state := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state", nil)
			ids := map[string]bool{}
			for _, e := range state.Array() {
				ids[e.Get("event_id").String()] = true
			}
			if !ids[topic] || !ids[bname.ID] {
				t.Errorf("current state holds topic %v and bob's rename %v, want both", ids[topic], ids[bname.ID])
			}

			// The merge: alice's next event lists both extremities.
			a3 := alice.Send(room, "a3", "A3")
			stored, err := r.svc.EventsByID(ctx, []string{a3})
			if err != nil || len(stored) != 1 {
				t.Fatalf("EventsByID(a3) = %v, %v", stored, err)
			}
			a3ev, err := pdu.Parse(stored[0].PDU, "11")
			if err != nil {
				t.Fatal(err)
			}
			prev := slices.Clone(a3ev.PrevEvents)
			slices.Sort(prev)
			if !slices.Equal(prev, want) {
				t.Errorf("A3 prev_events = %v, want %v", prev, want)
			}
			if got := r.extremities(); !slices.Equal(got, []string{a3}) {
				t.Errorf("extremities after the merge = %v, want [%s]", got, a3)
			}
			if p, a, err := srv.Srv.Store.Edges(ctx, a3); err != nil || !slices.Equal(p, want) || len(a) != len(a3ev.AuthEvents) {
				t.Errorf("stored edges of A3 = %v %v %v, want prev %v and %d auth events", p, a, err, want, len(a3ev.AuthEvents))
			}
			if p, a, err := srv.Srv.Store.Edges(ctx, bname.ID); err != nil || !slices.Equal(p, []string{b1.ID}) || len(a) != len(bname.AuthEvents) {
				t.Errorf("stored edges of bob's rename = %v %v %v, want prev [%s] and %d auth events", p, a, err, b1.ID, len(bname.AuthEvents))
			}

			// Events users never see.
			rej, before := r.build(bob, "m.room.message", nil, msg("REJECTED"), a3)
			r.persist(rej, rooms.Rejected, before)
			soft, before := r.build(bob, "m.room.message", nil, msg("SOFTFAILED"), a3)
			r.persist(soft, rooms.SoftFailed, before)
			out, before := r.build(bob, "m.room.message", nil, msg("OUTLIER"), a3)
			r.persist(out, rooms.Outlier, before)
			if got := r.extremities(); !slices.Equal(got, []string{a3}) {
				t.Errorf("extremities after unlisted events = %v, want [%s]", got, a3)
			}
			// Backfilled history: sorts before what the room holds, never in sync.
			x0s, _ := r.svc.EventsByID(ctx, x0)
			bf, before := r.build(bob, "m.room.message", nil, msg("BACKFILLED"), x0s[0].EventID)
			bfPos := r.persist(bf, rooms.Backfilled, before)
			if bfPos >= 0 {
				t.Errorf("backfilled position = %d, want below 0", bfPos)
			}

			// Topological order: A3, A2 then, at equal depth, B1 (later in
			// the stream) before A1; stream order would put B1 before A2.
			var bodies []string
			res := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=b&limit=100", nil)
			for _, e := range res.Get("chunk").Array() {
				if e.Get("type").String() == "m.room.message" {
					bodies = append(bodies, e.Get("content.body").String())
				}
			}
			if want := []string{"A3", "A2", "B1", "A1", "BACKFILLED"}; !slices.Equal(bodies, want) {
				t.Errorf("/messages dir=b bodies = %v, want %v", bodies, want)
			}
			// Paged two at a time, backwards then forwards, the order holds.
			if got := pagedBodies(alice, room, "b", 2); !slices.Equal(got, []string{"A3", "A2", "B1", "A1", "BACKFILLED"}) {
				t.Errorf("/messages dir=b paged = %v", got)
			}
			if got := pagedBodies(alice, room, "f", 2); !slices.Equal(got, []string{"BACKFILLED", "A1", "B1", "A2", "A3"}) {
				t.Errorf("/messages dir=f paged = %v", got)
			}
			// Sync: the fork's events arrive, nothing unlisted or backfilled does.
			sync := alice.Sync(since, 0)
			if got, want := hstest.Bodies(sync, room), []string{"A1", "A2", "B1", "A3"}; !slices.Equal(got, want) {
				t.Errorf("incremental sync bodies = %v, want %v", got, want)
			}
			if got, want := hstest.Bodies(alice.Sync("", 0), room), []string{"A1", "A2", "B1", "A3"}; !slices.Equal(got, want) {
				t.Errorf("initial sync bodies = %v, want %v", got, want)
			}
			for _, id := range []string{rej.ID, soft.ID, out.ID} {
				if code, _ := alice.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/event/"+hstest.Esc(id), nil); code != 404 {
					t.Errorf("GET unlisted event %s = %d, want 404", id, code)
				}
				if code, _ := alice.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/context/"+hstest.Esc(id), nil); code != 404 {
					t.Errorf("/context of unlisted event %s = %d, want 404", id, code)
				}
			}
			// /context of B1 follows topological order too.
			c := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/context/"+hstest.Esc(b1.ID)+"?limit=2", nil)
			if got := c.Get("events_before.0.content.body").String(); got != "A1" {
				t.Errorf("/context(B1) events_before[0] = %q, want A1", got)
			}
			if got := c.Get("events_after.0.content.body").String(); got != "A2" {
				t.Errorf("/context(B1) events_after[0] = %q, want A2", got)
			}
			// An accepted event checked against extremities that have moved
			// since goes back to be checked again.
			late, before := r.build(bob, "m.room.message", nil, msg("LATE"), a3)
			_, err = r.svc.PersistInbound(ctx, rooms.InboundEvent{Event: late, Kind: rooms.Accepted, StateBefore: before, ExtremitiesSeen: []string{join.ID}})
			if !errors.Is(err, rooms.ErrExtremitiesMoved) {
				t.Errorf("PersistInbound with stale extremities = %v, want ErrExtremitiesMoved", err)
			}
			// Old stream tokens (a sync's prev_batch) still page.
			prevBatch := hstest.Room(sync, "join", room).Get("timeline.prev_batch").String()
			res = alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=b&limit=100&from="+url.QueryEscape(prevBatch), nil)
			if res.Get("chunk.#").Int() == 0 {
				t.Errorf("/messages from prev_batch %q returned nothing", prevBatch)
			}
		})
	}
}

func pagedBodies(c *hstest.Client, room, dir string, limit int) []string {
	var out []string
	from := ""
	for range 50 {
		q := fmt.Sprintf("/_matrix/client/v3/rooms/%s/messages?dir=%s&limit=%d", hstest.Esc(room), dir, limit)
		if from != "" {
			q += "&from=" + url.QueryEscape(from)
		}
		res := c.MustDo("GET", q, nil)
		for _, e := range res.Get("chunk").Array() {
			if e.Get("type").String() == "m.room.message" {
				out = append(out, e.Get("content.body").String())
			}
		}
		if !res.Get("end").Exists() || res.Get("chunk.#").Int() == 0 {
			break
		}
		from = res.Get("end").String()
	}
	return out
}
