package homeserver_test

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// sameParts renders a timeline without what differs by reader and time
// (unsigned.age).
func sameParts(tl gjson.Result) string {
	var b strings.Builder
	for _, e := range tl.Array() {
		for _, k := range []string{"event_id", "type", "sender", "origin_server_ts", "content"} {
			b.WriteString(e.Get(k).Raw + " ")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestSharedTimelineSameForAllMembers (issue 15 item 21): members woken by one
// commit get identical timelines, and only the first of them reads the room's
// events from the database.
func TestSharedTimelineSameForAllMembers(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			carol.Join(room)
			bobSince := bob.Sync("", 0).Get("next_batch").String()
			carolSince := carol.Sync("", 0).Get("next_batch").String()
			// A first round warms what any first incremental sync warms.
			alice.Send(room, "m0", "zero")
			bobSince = bob.Sync(bobSince, 0).Get("next_batch").String()
			carolSince = carol.Sync(carolSince, 0).Get("next_batch").String()
			alice.Send(room, "m1", "one")
			alice.Send(room, "m2", "two")

			q0 := srv.Srv.Store.Queries()
			b := hstest.Room(bob.Sync(bobSince, 0), "join", room).Get("timeline.events")
			q1 := srv.Srv.Store.Queries()
			c := hstest.Room(carol.Sync(carolSince, 0), "join", room).Get("timeline.events")
			q2 := srv.Srv.Store.Queries()
			if got, want := sameParts(c), sameParts(b); len(b.Array()) != 2 || got != want {
				t.Errorf("carol's timeline = %s, want bob's, with the two messages: %s", got, want)
			}
			t.Logf("queries: first member %d, second %d", q1-q0, q2-q1)
			if first, second := q1-q0, q2-q1; second >= first {
				t.Errorf("the second member's sync made %d queries, the first %d: want fewer (timeline from the cache)", second, first)
			}
			// What is left per woken member: unread counts and push rules; no
			// timeline, receipts, to-device or key-count query.
			if second := q2 - q1; second > 2 {
				t.Errorf("the second member's sync made %d queries, want at most 2", second)
			}
		})
	}
}

// TestSharedTimelineDropsRedacted (issue 15 item 21): a redaction drops the
// room's cached events, so a sync from before it shows the message redacted
// even after other members' syncs filled the cache.
func TestSharedTimelineDropsRedacted(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			carol.Join(room)
			bobSince := bob.Sync("", 0).Get("next_batch").String()
			carolSince := carol.Sync("", 0).Get("next_batch").String()
			msg := alice.Send(room, "m1", "secret")
			next := bob.Sync(bobSince, 0).Get("next_batch").String() // fills the cache with the message
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/redact/"+hstest.Esc(msg)+"/r1", map[string]any{})
			bob.Sync(next, 0) // extends the cached range past the redaction
			for _, e := range hstest.Room(carol.Sync(carolSince, 0), "join", room).Get("timeline.events").Array() {
				if e.Get("event_id").String() == msg && e.Get("content.body").Exists() {
					t.Errorf("carol's sync shows the redacted message with its content: %s", e.Raw)
				}
			}
		})
	}
}
