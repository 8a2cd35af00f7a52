package homeserver_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// Relations, threads and bundled aggregations (issue 14), black-box on
// both stores.

var relTxn atomic.Int64

// sendRel sends an event of type typ with content and returns its ID.
func sendRel(c *hstest.Client, roomID, typ string, content map[string]any) string {
	return c.MustDo("PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/%s/r%d", hstest.Esc(roomID), typ, relTxn.Add(1)),
		content).Get("event_id").String()
}

func react(c *hstest.Client, roomID, target, key string) string {
	return sendRel(c, roomID, "m.reaction", map[string]any{"m.relates_to": map[string]any{
		"rel_type": "m.annotation", "event_id": target, "key": key}})
}

func edit(c *hstest.Client, roomID, target, body string) string {
	return sendRel(c, roomID, "m.room.message", map[string]any{"msgtype": "m.text", "body": "* " + body,
		"m.new_content": map[string]any{"msgtype": "m.text", "body": body},
		"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": target}})
}

func threadReply(c *hstest.Client, roomID, root, body string) string {
	return sendRel(c, roomID, "m.room.message", map[string]any{"msgtype": "m.text", "body": body,
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})
}

func relPath(roomID, eventID string, rest ...string) string {
	p := "/_matrix/client/v1/rooms/" + hstest.Esc(roomID) + "/relations/" + hstest.Esc(eventID)
	for _, r := range rest {
		p += "/" + hstest.Esc(r)
	}
	return p
}

func ids(events []gjson.Result) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Get("event_id").String()
	}
	return out
}

// bundled returns unsigned.m.relations of an event.
func bundled(e gjson.Result) gjson.Result { return e.Get(`unsigned.m\.relations`) }

func TestRelationsEditsReactionsAndBundles(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)

			orig := alice.Send(room, "o1", "hello")
			like := react(bob, room, orig, "👍")
			edit1 := edit(alice, room, orig, "hello there")
			edit2 := edit(alice, room, orig, "hello again")
			forged := edit(bob, room, orig, "bob was here") // another user's edit: never applied
			ref := sendRel(bob, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "see above",
				"m.relates_to": map[string]any{"rel_type": "m.reference", "event_id": orig}})

			// Every relation, newest first by default.
			got := ids(bob.MustDo("GET", relPath(room, orig), nil).Get("chunk").Array())
			if want := []string{ref, forged, edit2, edit1, like}; !slices.Equal(got, want) {
				t.Errorf("/relations = %v, want %v", got, want)
			}
			// Filtered by rel_type, then by rel_type and event type.
			if got := ids(bob.MustDo("GET", relPath(room, orig, "m.annotation"), nil).Get("chunk").Array()); !slices.Equal(got, []string{like}) {
				t.Errorf("/relations/m.annotation = %v, want [%s]", got, like)
			}
			if got := ids(bob.MustDo("GET", relPath(room, orig, "m.annotation", "m.reaction"), nil).Get("chunk").Array()); !slices.Equal(got, []string{like}) {
				t.Errorf("/relations/m.annotation/m.reaction = %v, want [%s]", got, like)
			}
			if got := ids(bob.MustDo("GET", relPath(room, orig, "m.annotation", "m.room.message"), nil).Get("chunk").Array()); len(got) != 0 {
				t.Errorf("/relations/m.annotation/m.room.message = %v, want none", got)
			}
			if got := ids(bob.MustDo("GET", relPath(room, orig, "m.replace")+"?dir=f", nil).Get("chunk").Array()); !slices.Equal(got, []string{edit1, edit2, forged}) {
				t.Errorf("/relations/m.replace?dir=f = %v, want [%s %s %s]", got, edit1, edit2, forged)
			}

			// The bundle on every read route: the latest edit by the
			// original sender, and the reference.
			check := func(route string, e gjson.Result) {
				t.Helper()
				b := bundled(e)
				if got := b.Get(`m\.replace.event_id`).String(); got != edit2 {
					t.Errorf("%s: m.replace = %q (%s), want %s (forged edit is %s)", route, got, b.Raw, edit2, forged)
				}
				if got := b.Get(`m\.replace.content.m\.new_content.body`).String(); got != "hello again" {
					t.Errorf("%s: m.replace new body = %q, want hello again", route, got)
				}
				if got := b.Get(`m\.reference.chunk.#.event_id`).String(); got != `["`+ref+`"]` {
					t.Errorf("%s: m.reference = %s, want [%s]", route, got, ref)
				}
				if got := e.Get("content.body").String(); got != "hello" {
					t.Errorf("%s: content.body = %q, want the original hello (clients apply edits)", route, got)
				}
			}
			check("/event", bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/event/"+hstest.Esc(orig), nil))
			ctx := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/context/"+hstest.Esc(orig)+"?limit=4", nil)
			check("/context", ctx.Get("event"))
			var found bool
			for _, e := range bob.Messages(room) {
				if e.Get("event_id").String() == orig {
					check("/messages", e)
					found = true
				}
				if id := e.Get("event_id").String(); id != orig && bundled(e).Exists() && id != like {
					// Only the original has relations here.
					t.Errorf("/messages: %s has bundle %s, want none", id, bundled(e).Raw)
				}
			}
			if !found {
				t.Fatalf("/messages: original %s not found", orig)
			}

			// Bob's own edit of his own message is applied to his message.
			mine := bob.Send(room, "b1", "typo")
			bobEdit := edit(bob, room, mine, "fixed")
			if got := bundled(alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/event/"+hstest.Esc(mine), nil)).Get(`m\.replace.event_id`).String(); got != bobEdit {
				t.Errorf("bob's own edit: m.replace = %q, want %s", got, bobEdit)
			}

			// A redacted reaction is no longer listed.
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/redact/"+hstest.Esc(like)+"/x1", map[string]any{})
			if got := ids(bob.MustDo("GET", relPath(room, orig, "m.annotation"), nil).Get("chunk").Array()); len(got) != 0 {
				t.Errorf("/relations/m.annotation after redaction = %v, want none", got)
			}
		})
	}
}

func TestRelationsPagination(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{})
			orig := alice.Send(room, "o", "react to me")
			var all []string
			for i := 0; i < 5; i++ {
				all = append(all, react(alice, room, orig, fmt.Sprint(i)))
			}
			newestFirst := slices.Clone(all)
			slices.Reverse(newestFirst)

			for _, tc := range []struct {
				dir  string
				want []string
			}{{"b", newestFirst}, {"f", all}} {
				var got []string
				from := ""
				for page := 0; page < 10; page++ {
					q := relPath(room, orig) + "?limit=2&dir=" + tc.dir
					if from != "" {
						q += "&from=" + url.QueryEscape(from)
					}
					res := alice.MustDo("GET", q, nil)
					chunk := res.Get("chunk").Array()
					if len(chunk) > 2 {
						t.Fatalf("dir=%s page %d has %d events, want at most 2", tc.dir, page, len(chunk))
					}
					got = append(got, ids(chunk)...)
					if from != "" && res.Get("prev_batch").String() == "" {
						t.Errorf("dir=%s page %d: no prev_batch after from", tc.dir, page)
					}
					if !res.Get("next_batch").Exists() {
						break
					}
					from = res.Get("next_batch").String()
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("dir=%s pages = %v, want %v", tc.dir, got, tc.want)
				}
			}

			// A /messages token works as from, and to stops the page.
			end := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=b&limit=2", nil).Get("end").String()
			// The two newest events are the reactions 4 and 3; end points below them.
			got := ids(alice.MustDo("GET", relPath(room, orig)+"?dir=b&from="+url.QueryEscape(end), nil).Get("chunk").Array())
			if want := newestFirst[2:]; !slices.Equal(got, want) {
				t.Errorf("from a /messages token = %v, want %v", got, want)
			}

			// Bad parameters are refused and change nothing.
			for _, q := range []string{"?dir=x", "?limit=-1", "?from=garbage", "?recurse=maybe"} {
				if st, res := alice.Do("GET", relPath(room, orig)+q, nil); st != 400 || res.Get("errcode").String() != "M_INVALID_PARAM" {
					t.Errorf("GET /relations%s = %d %s, want 400 M_INVALID_PARAM", q, st, res.Raw)
				}
			}
		})
	}
}

func TestRelationsRecurseAndThreads(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)

			rootA := alice.Send(room, "a", "thread A")
			rootB := alice.Send(room, "b", "thread B")
			a1 := threadReply(alice, room, rootA, "a1")
			b1 := threadReply(bob, room, rootB, "b1")
			a2 := threadReply(alice, room, rootA, "a2") // thread A is now the most active
			onA2 := react(bob, room, a2, "!")
			editA2 := edit(alice, room, a2, "a2 edited")

			// Direct relations only, then with recurse.
			if got := ids(bob.MustDo("GET", relPath(room, rootA)+"?dir=f", nil).Get("chunk").Array()); !slices.Equal(got, []string{a1, a2}) {
				t.Errorf("/relations(rootA) = %v, want [%s %s]", got, a1, a2)
			}
			res := bob.MustDo("GET", relPath(room, rootA)+"?dir=f&recurse=true", nil)
			if got, want := ids(res.Get("chunk").Array()), []string{a1, a2, onA2, editA2}; !slices.Equal(got, want) {
				t.Errorf("/relations(rootA)?recurse = %v, want %v", got, want)
			}
			if got := res.Get("recursion_depth").Int(); got != 3 {
				t.Errorf("recursion_depth = %d, want 3", got)
			}
			if got := bob.MustDo("GET", relPath(room, rootA)+"?recurse=false", nil).Get("recursion_depth"); got.Raw != "1" {
				t.Errorf("recursion_depth with recurse=false = %s, want 1", got.Raw)
			}
			if got := bob.MustDo("GET", relPath(room, rootA), nil).Get("recursion_depth"); got.Exists() {
				t.Errorf("recursion_depth without recurse = %s, want absent", got.Raw)
			}
			// A sync token works as from too (the spec allows /sync's next_batch).
			next := bob.Sync("", 0).Get("next_batch").String()
			if got := ids(bob.MustDo("GET", relPath(room, rootA)+"?from="+url.QueryEscape(next), nil).Get("chunk").Array()); !slices.Equal(got, []string{a2, a1}) {
				t.Errorf("/relations from a sync token = %v, want [%s %s]", got, a2, a1)
			}
			if got := ids(bob.MustDo("GET", relPath(room, rootA, "m.annotation")+"?recurse=true", nil).Get("chunk").Array()); !slices.Equal(got, []string{onA2}) {
				t.Errorf("/relations(rootA)/m.annotation?recurse = %v, want [%s]", got, onA2)
			}

			// /threads: newest activity first, each root with its summary.
			threads := "/_matrix/client/v1/rooms/" + hstest.Esc(room) + "/threads"
			chunk := bob.MustDo("GET", threads, nil).Get("chunk").Array()
			if got := ids(chunk); !slices.Equal(got, []string{rootA, rootB}) {
				t.Fatalf("/threads = %v, want [%s %s]", got, rootA, rootB)
			}
			th := bundled(chunk[0]).Get(`m\.thread`)
			if th.Get("count").Int() != 2 || th.Get("latest_event.event_id").String() != a2 || th.Get("current_user_participated").Bool() {
				t.Errorf("thread A summary for bob = %s, want count 2, latest %s, not participated", th.Raw, a2)
			}
			// The latest reply carries its own edit, so the summary can
			// show the edited text.
			if got := th.Get(`latest_event.unsigned.m\.relations.m\.replace.event_id`).String(); got != editA2 {
				t.Errorf("thread A latest_event's m.replace = %q, want %s (%s)", got, editA2, th.Raw)
			}
			if got := bundled(chunk[1]).Get(`m\.thread.current_user_participated`).Bool(); !got {
				t.Errorf("thread B participated for bob = false, want true (%s)", bundled(chunk[1]).Raw)
			}
			// Alice started both threads, so both count as hers.
			if got := bundled(alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/event/"+hstest.Esc(rootB), nil)).Get(`m\.thread.current_user_participated`).Bool(); !got {
				t.Errorf("thread B participated for alice (its starter) = false, want true")
			}
			if got := ids(bob.MustDo("GET", threads+"?include=participated", nil).Get("chunk").Array()); !slices.Equal(got, []string{rootB}) {
				t.Errorf("/threads?include=participated for bob = %v, want [%s]", got, rootB)
			}
			if got := ids(alice.MustDo("GET", threads+"?include=participated", nil).Get("chunk").Array()); !slices.Equal(got, []string{rootA, rootB}) {
				t.Errorf("/threads?include=participated for alice = %v, want [%s %s]", got, rootA, rootB)
			}
			// Paged one at a time.
			p1 := bob.MustDo("GET", threads+"?limit=1", nil)
			p2 := bob.MustDo("GET", threads+"?limit=1&from="+url.QueryEscape(p1.Get("next_batch").String()), nil)
			if got := append(ids(p1.Get("chunk").Array()), ids(p2.Get("chunk").Array())...); !slices.Equal(got, []string{rootA, rootB}) {
				t.Errorf("/threads paged = %v, want [%s %s]", got, rootA, rootB)
			}
			if st, res := bob.Do("GET", threads+"?include=mine", nil); st != 400 {
				t.Errorf("/threads?include=mine = %d %s, want 400", st, res.Raw)
			}
			_ = b1
		})
	}
}

func TestRelationsAccess(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			carol := srv.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "initial_state": []map[string]any{{
				"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "joined"}}}})
			early := alice.Send(room, "e", "before bob")
			react(alice, room, early, "x")

			bob.Join(room)
			orig := alice.Send(room, "o", "bob sees this")
			seen := react(alice, room, orig, "seen")
			threadReply(alice, room, orig, "in thread")
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/leave", map[string]any{})
			unseen := react(alice, room, orig, "after bob left")
			_ = unseen

			for _, tc := range []struct {
				who    *hstest.Client
				path   string
				status int
				code   string
			}{
				{carol, relPath(room, orig), 404, "M_NOT_FOUND"}, // never a member
				{carol, "/_matrix/client/v1/rooms/" + hstest.Esc(room) + "/threads", 403, "M_FORBIDDEN"},
				{bob, relPath(room, early), 404, "M_NOT_FOUND"}, // before bob joined
				{bob, relPath(room, "$nosuchevent"), 404, "M_NOT_FOUND"},
				{alice, relPath("!nosuchroom:localhost", orig), 404, "M_NOT_FOUND"}, // event in another room
			} {
				st, res := tc.who.Do("GET", tc.path, nil)
				if st != tc.status || res.Get("errcode").String() != tc.code {
					t.Errorf("%s GET %s = %d %s, want %d %s", tc.who.UserID, tc.path, st, res.Raw, tc.status, tc.code)
				}
			}
			// Bob, who left, sees the relations from his time in the room only.
			if got := ids(bob.MustDo("GET", relPath(room, orig, "m.annotation"), nil).Get("chunk").Array()); !slices.Equal(got, []string{seen}) {
				t.Errorf("bob after leaving: annotations = %v, want [%s] (not %s)", got, seen, unseen)
			}
		})
	}
}

// TestBundlesQueryCountFlat proves bundling is batched: a /messages page
// with eight times as many related events costs the same number of queries.
func TestBundlesQueryCountFlat(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{})
	for i := 0; i < 40; i++ {
		id := alice.Send(room, fmt.Sprint("m", i), "message")
		threadReply(alice, room, id, "reply")
		edit(alice, room, id, "edited")
	}
	cost := func(limit int) int64 {
		before := srv.Srv.Store.Queries()
		res := alice.MustDo("GET", fmt.Sprintf("/_matrix/client/v3/rooms/%s/messages?dir=b&limit=%d", hstest.Esc(room), limit), nil)
		if n := len(res.Get("chunk").Array()); n != limit {
			t.Fatalf("/messages limit=%d gave %d events", limit, n)
		}
		return srv.Srv.Store.Queries() - before
	}
	if small, big := cost(5), cost(40); big != small {
		t.Errorf("/messages queries: %d for 40 events, want the same as for 5 (%d)", big, small)
	}
}

// TestSyncBundles: sync bundles the timelines that need it (initial,
// limited), for each user as they see it, without leaking one user's
// bundle into another's through the timeline cache.
func TestSyncBundles(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			since := alice.Sync("", 0).Get("next_batch").String()

			alice.Send(room, "m1", "filler")
			orig := alice.Send(room, "o", "original")
			reply := threadReply(bob, room, orig, "bob in thread")
			fix := edit(alice, room, orig, "original, fixed")

			find := func(s gjson.Result, id string) gjson.Result {
				for _, e := range hstest.Room(s, "join", room).Get("timeline.events").Array() {
					if e.Get("event_id").String() == id {
						return e
					}
				}
				t.Fatalf("event %s not in sync timeline", id)
				return gjson.Result{}
			}
			// Initial syncs: each user gets their own current_user_participated.
			for _, tc := range []struct {
				who          *hstest.Client
				participated bool
			}{{bob, true}, {alice, true}, {bob, true}} {
				b := bundled(find(tc.who.Sync("", 0), orig))
				if b.Get(`m\.thread.count`).Int() != 1 || b.Get(`m\.thread.latest_event.event_id`).String() != reply ||
					b.Get(`m\.thread.current_user_participated`).Bool() != tc.participated || b.Get(`m\.replace.event_id`).String() != fix {
					t.Errorf("%s initial sync bundle = %s, want thread count 1 latest %s participated %v, replace %s",
						tc.who.UserID, b.Raw, reply, tc.participated, fix)
				}
			}
			// A limited incremental sync bundles too.
			filter := url.QueryEscape(`{"room":{"timeline":{"limit":3}}}`)
			s := alice.MustDo("GET", "/_matrix/client/v3/sync?timeout=0&filter="+filter+"&since="+url.QueryEscape(since), nil)
			if !hstest.Room(s, "join", room).Get("timeline.limited").Bool() {
				t.Fatalf("incremental sync not limited: %s", hstest.Room(s, "join", room).Raw)
			}
			if got := bundled(find(s, orig)).Get(`m\.replace.event_id`).String(); got != fix {
				t.Errorf("limited incremental sync: m.replace = %q, want %s", got, fix)
			}

			// The timeline cache keeps no bundle: a later sync's event
			// carries exactly one.
			if raw := find(bob.Sync("", 0), orig).Get("unsigned").Raw; strings.Count(raw, `"m.relations"`) != 1 {
				t.Errorf("bob's third initial sync: unsigned = %s, want one m.relations", raw)
			}
			// A third user who never replied: not participated.
			carol := srv.Register(t, "carol")
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/invite", map[string]any{"user_id": carol.UserID})
			carol.Join(room)
			if got := bundled(find(carol.Sync("", 0), orig)).Get(`m\.thread.current_user_participated`); !got.Exists() || got.Bool() {
				t.Errorf("carol initial sync: current_user_participated = %s, want false", got.Raw)
			}
		})
	}
}
