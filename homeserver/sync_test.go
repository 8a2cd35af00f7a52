package homeserver_test

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestLongPollWakes: a waiting incremental sync returns with the new event
// instead of running into its 30 s timeout.
func TestLongPollWakes(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			since := bob.Sync("", 0).Get("next_batch").String()

			got := make(chan gjson.Result, 1)
			go func() { got <- bob.Sync(since, 30000) }()
			time.Sleep(50 * time.Millisecond) // let the request start waiting; correctness does not depend on it
			alice.Send(room, "wake", "wake up")
			var s gjson.Result
			select {
			case s = <-got:
			case <-time.After(25 * time.Second):
				t.Fatal("long-poll did not wake")
			}
			if b := hstest.Bodies(s, room); len(b) != 1 || b[0] != "wake up" {
				t.Errorf("woken sync bodies = %v, want [wake up]", b)
			}
			// Typing wakes a long-poll too, as ephemeral.
			since = s.Get("next_batch").String()
			go func() { got <- bob.Sync(since, 30000) }()
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/typing/"+hstest.Esc(alice.UserID), map[string]any{"typing": true, "timeout": 10000})
			hstest.Eventually(t, "typing in sync", func() bool {
				s = <-got
				for _, e := range hstest.Room(s, "join", room).Get("ephemeral.events").Array() {
					if e.Get("type").String() == "m.typing" && e.Get("content.user_ids.0").String() == alice.UserID {
						return true
					}
				}
				next := s.Get("next_batch").String()
				go func() { got <- bob.Sync(next, 30000) }()
				return false
			})
		})
	}
}

// TestIncrementalSyncLimited: a gap larger than the limit returns the newest
// events, limited, with a prev_batch that pages back to the rest.
func TestIncrementalSyncLimited(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{"name": "big"})
	since := alice.Sync("", 0).Get("next_batch").String()
	for i := 0; i < 25; i++ {
		alice.Send(room, fmt.Sprint(i), fmt.Sprint("m", i))
	}
	alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.topic", map[string]any{"topic": "new topic"})
	for i := 25; i < 40; i++ {
		alice.Send(room, fmt.Sprint(i), fmt.Sprint("m", i))
	}
	s := alice.MustDo("GET", "/_matrix/client/v3/sync?since="+since+`&filter={"room":{"timeline":{"limit":5}}}`, nil)
	r := hstest.Room(s, "join", room)
	if !r.Get("timeline.limited").Bool() {
		t.Errorf("limited = false, want true")
	}
	bodies := hstest.Bodies(s, room)
	if len(bodies) != 5 || bodies[4] != "m39" {
		t.Errorf("timeline = %v, want the newest 5 ending at m39", bodies)
	}
	foundTopic := false
	for _, e := range r.Get("state.events").Array() {
		if e.Get("type").String() == "m.room.topic" && e.Get("content.topic").String() == "new topic" {
			foundTopic = true
		}
	}
	if !foundTopic {
		t.Errorf("state of the gap lacks the topic change: %s", r.Get("state").Raw)
	}
	prev := r.Get("timeline.prev_batch").String()
	res := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=b&limit=3&from="+prev, nil)
	if got := res.Get("chunk.0.content.body").String(); got != "m34" {
		t.Errorf("first event before prev_batch = %q, want m34", got)
	}
}

// TestSyncStateIsBeforeTimeline: the state section holds the state at the
// start of the timeline; a change inside the timeline appears only there.
func TestSyncStateIsBeforeTimeline(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{"name": "old name"})
	for i := 0; i < 12; i++ {
		alice.Send(room, fmt.Sprint(i), fmt.Sprint("m", i))
	}
	alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.name", map[string]any{"name": "new name"})
	alice.Send(room, "last", "after rename")
	s := alice.MustDo("GET", `/_matrix/client/v3/sync?filter={"room":{"timeline":{"limit":5}}}`, nil)
	r := hstest.Room(s, "join", room)
	var stateName, timelineName string
	for _, e := range r.Get("state.events").Array() {
		if e.Get("type").String() == "m.room.name" {
			stateName = e.Get("content.name").String()
		}
	}
	for _, e := range r.Get("timeline.events").Array() {
		if e.Get("type").String() == "m.room.name" {
			timelineName = e.Get("content.name").String()
		}
	}
	if stateName != "old name" || timelineName != "new name" {
		t.Errorf("state name %q, timeline name %q; want old name / new name", stateName, timelineName)
	}
}

// TestHistoryVisibilityJoined: in a room with history_visibility "joined",
// a newcomer sees nothing from before their join, in sync or /messages.
func TestHistoryVisibilityJoined(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{"preset": "public_chat", "initial_state": []map[string]any{
		{"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "joined"}}}})
	alice.Send(room, "1", "secret before bob")
	bob.Join(room)
	alice.Send(room, "2", "hello bob")
	if got := hstest.Bodies(bob.Sync("", 0), room); len(got) != 1 || got[0] != "hello bob" {
		t.Errorf("bob's sync timeline = %v, want [hello bob]", got)
	}
	if got := pageAll(t, bob, room); len(got) != 1 || got[0] != "hello bob" {
		t.Errorf("bob's /messages = %v, want [hello bob]", got)
	}
	// With the default "shared", a newcomer sees the history.
	shared := alice.CreateRoom(map[string]any{"preset": "public_chat"})
	alice.Send(shared, "3", "visible history")
	bob.Join(shared)
	if got := pageAll(t, bob, shared); len(got) != 1 || got[0] != "visible history" {
		t.Errorf("bob's /messages in a shared room = %v, want [visible history]", got)
	}
	// After leaving, bob reads nothing newer than his leave.
	bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(shared)+"/leave", map[string]any{})
	alice.Send(shared, "4", "after bob left")
	for _, b := range pageAll(t, bob, shared) {
		if b == "after bob left" {
			t.Errorf("bob reads a message sent after he left")
		}
	}
}

// TestIncrementalSyncQueriesDoNotGrowWithRooms: an incremental sync after
// one message makes the same number of queries for a user in 5 rooms as
// for a user in 60.
func TestIncrementalSyncQueriesDoNotGrowWithRooms(t *testing.T) {
	count := func(rooms int) int64 {
		srv := hstest.Start(t, hstest.Options{})
		alice := srv.Register(t, "alice")
		var ids []string
		for i := 0; i < rooms; i++ {
			ids = append(ids, alice.CreateRoom(map[string]any{"name": fmt.Sprint("r", i)}))
		}
		since := alice.Sync("", 0).Get("next_batch").String()
		alice.Send(ids[0], "x", "one new message")
		before := srv.Srv.Store.Queries()
		s := alice.Sync(since, 0)
		n := srv.Srv.Store.Queries() - before
		if got := hstest.Bodies(s, ids[0]); len(got) != 1 {
			t.Fatalf("sync bodies = %v, want the one new message", got)
		}
		return n
	}
	small, large := count(5), count(60)
	t.Logf("queries per incremental sync: %d (5 rooms), %d (60 rooms)", small, large)
	if large != small {
		t.Errorf("queries with 60 rooms = %d, want %d as with 5 rooms", large, small)
	}
	// A message touches no stream but its room's: the notifier lets the sync
	// skip membership, account data, notices, presence and device lists.
	if small > 6 {
		t.Errorf("queries for one new message = %d, want at most 6 (quiet streams skipped)", small)
	}
}

// TestMessagesEndOmittedAtRoomStart: paging backwards, the page that
// reaches the room's first event carries no "end".
func TestMessagesEndOmittedAtRoomStart(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{})
	res := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=b&limit=100", nil)
	if res.Get("end").Exists() {
		t.Errorf("end = %s on the page holding m.room.create, want it omitted", res.Get("end"))
	}
	last := res.Get("chunk").Array()
	if got := last[len(last)-1].Get("type").String(); got != "m.room.create" {
		t.Errorf("oldest event = %s, want m.room.create", got)
	}
	res = alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=b&limit=2", nil)
	if !res.Get("end").Exists() {
		t.Errorf("a partial page has no end token: %s", res.Raw)
	}
}

// TestIdleLongPollMakesNoQuery: a long-poll that times out with nothing new
// never touches the database.
func TestIdleLongPollMakesNoQuery(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	alice.CreateRoom(map[string]any{"name": "quiet"})
	since := alice.Sync("", 0).Get("next_batch").String()
	alice.Sync(since, 0) // warm the presence tracker and the token cache
	before := srv.Srv.Store.Queries()
	s := alice.Sync(since, 100)
	if n := srv.Srv.Store.Queries() - before; n != 0 {
		t.Errorf("idle long-poll made %d queries, want 0", n)
	}
	if got := s.Get("next_batch").String(); got != since {
		t.Errorf("idle long-poll next_batch = %s, want %s", got, since)
	}
}

// TestLongPollIgnoresNewsItsFilterDrops: a peer's presence change wakes the
// long-poll of a client whose filter drops presence; it must keep waiting
// and answer with the next message, not come back empty.
func TestLongPollIgnoresNewsItsFilterDrops(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
	bob.Join(room)
	filter := url.QueryEscape(`{"presence":{"not_types":["*"]}}`)
	since := alice.MustDo("GET", "/_matrix/client/v3/sync?filter="+filter, nil).Get("next_batch").String()
	got := make(chan gjson.Result, 1)
	go func() {
		got <- alice.MustDo("GET", "/_matrix/client/v3/sync?timeout=10000&filter="+filter+"&since="+url.QueryEscape(since), nil)
	}()
	time.Sleep(100 * time.Millisecond) // let the long-poll start waiting
	bob.MustDo("PUT", "/_matrix/client/v3/presence/"+hstest.Esc(bob.UserID)+"/status", map[string]any{"presence": "unavailable"})
	time.Sleep(300 * time.Millisecond)
	bob.Send(room, "m1", "worth waking for")
	select {
	case res := <-got:
		if b := hstest.Bodies(res, room); !slices.Equal(b, []string{"worth waking for"}) {
			t.Errorf("long-poll answered with %q (%s), want the message", b, res.Raw)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long-poll did not answer")
	}
}
