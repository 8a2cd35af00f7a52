package homeserver_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// TestCreateRoomInitialStateCapped: a createRoom with more initial_state
// events than the cap (50 by default) is refused with 413 M_TOO_LARGE and
// makes no room; at the cap it succeeds. Before the cap, 19,000 events made
// one 2-3 s writer job that delayed every other write.
func TestCreateRoomInitialStateCapped(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			state := func(n int) []map[string]any {
				out := make([]map[string]any, n)
				for i := range out {
					out[i] = map[string]any{"type": "org.example.s", "state_key": fmt.Sprint(i), "content": map[string]any{"i": i}}
				}
				return out
			}
			for _, tc := range []struct {
				events   int
				wantCode int
				wantErr  string
			}{
				{51, 413, "M_TOO_LARGE"},
				{5000, 413, "M_TOO_LARGE"},
				{50, 200, ""},
			} {
				code, res := alice.Do("POST", "/_matrix/client/v3/createRoom", map[string]any{"initial_state": state(tc.events)})
				if code != tc.wantCode || res.Get("errcode").String() != tc.wantErr {
					t.Errorf("createRoom with %d initial_state events = %d %s, want %d %s", tc.events, code, res.Raw, tc.wantCode, tc.wantErr)
				}
			}
			joined := alice.MustDo("GET", "/_matrix/client/v3/joined_rooms", nil).Get("joined_rooms.#").Int()
			if joined != 1 {
				t.Errorf("joined_rooms has %d rooms, want 1 (refused creates make none)", joined)
			}
		})
	}
}

// TestRoomStateBytesCapped: a room's state other than memberships may not
// grow past 4 MiB, whatever the route (here the state PUT): the event that
// would cross it gets 413 M_TOO_LARGE and is not stored, while replacing an
// entry with a smaller one still works. Before the cap a room's state grew
// without limit, and every full-state sync and writer cache entry with it.
func TestRoomStateBytesCapped(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{})
			big := strings.Repeat("x", 60_000)
			path := func(key string) string {
				return "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/state/org.example.big/" + key
			}
			refusedAt := -1
			for i := range 80 { // 80 * 60 KB is past 4 MiB
				code, res := alice.Do("PUT", path(fmt.Sprint(i)), map[string]any{"b": big})
				if code == 413 && res.Get("errcode").String() == "M_TOO_LARGE" {
					refusedAt = i
					break
				}
				if code != 200 {
					t.Fatalf("state PUT %d = %d %s, want 200 or 413 M_TOO_LARGE", i, code, res.Raw)
				}
			}
			if refusedAt < 0 {
				t.Fatalf("80 state events of 60 KB were all accepted, want a 413 M_TOO_LARGE once the room's state passes 4 MiB")
			}
			if refusedAt < 60 {
				t.Errorf("refused at state event %d, want no refusal under 4 MiB (about 69 events)", refusedAt)
			}
			if code, _ := alice.Do("GET", path(fmt.Sprint(refusedAt)), nil); code != 404 {
				t.Errorf("GET the refused state event = %d, want 404", code)
			}
			if code, res := alice.Do("PUT", path("0"), map[string]any{"b": "small"}); code != 200 {
				t.Errorf("shrinking an entry of a full room = %d %s, want 200", code, res.Raw)
			}
			if code, res := alice.Do("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/t1", map[string]any{"msgtype": "m.text", "body": "still works"}); code != 200 {
				t.Errorf("message to a room with full state = %d %s, want 200", code, res.Raw)
			}
		})
	}
}

// TestFullSyncsRateLimited: initial syncs (each a whole copy of the user's
// rooms' state) are limited per user, 10 in a burst by default, with 429
// M_LIMIT_EXCEEDED and retry_after_ms beyond; incremental syncs and other
// users are unaffected. Before, parallel full-state syncs of big rooms drove
// the server to 1.3 GB.
func TestFullSyncsRateLimited(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) { c.RateLimit.Enabled = true }})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	var since string
	var limited bool
	for i := range 12 {
		code, res := alice.Do("GET", "/_matrix/client/v3/sync", nil)
		if code == 200 {
			since = res.Get("next_batch").String()
			continue
		}
		if code != 429 || res.Get("errcode").String() != "M_LIMIT_EXCEEDED" || res.Get("retry_after_ms").Int() <= 0 {
			t.Fatalf("initial sync %d = %d %s, want 200 or 429 M_LIMIT_EXCEEDED with retry_after_ms", i, code, res.Raw)
		}
		if i < 10 {
			t.Errorf("initial sync %d limited, want the first 10 allowed", i)
		}
		limited = true
		break
	}
	if !limited {
		t.Fatal("12 initial syncs in a row were all served, want a 429 after 10")
	}
	if code, res := alice.Do("GET", "/_matrix/client/v3/sync?full_state=true&since="+since, nil); code != 429 {
		t.Errorf("full_state sync after the burst = %d %s, want 429", code, res.Raw)
	}
	if code, res := alice.Do("GET", "/_matrix/client/v3/sync?timeout=0&since="+since, nil); code != 200 {
		t.Errorf("incremental sync after the burst = %d %s, want 200", code, res.Raw)
	}
	if code, res := bob.Do("GET", "/_matrix/client/v3/sync", nil); code != 200 {
		t.Errorf("another user's initial sync = %d %s, want 200", code, res.Raw)
	}
}

// TestWriterMetricsExposed: the writer's queue, refusals and room cache are
// in the admin metrics, beside the desks'.
func TestWriterMetricsExposed(t *testing.T) {
	w := newDeskShop(t, hstest.Options{}, "shop", map[string]any{"name": "Acme", "strategy": "round_robin", "capacity": 4})
	code, body := deskMetrics(t, w.boss)
	if code != 200 {
		t.Fatalf("GET metrics = %d, want 200", code)
	}
	for _, name := range []string{"parley_writer_queue_length", `parley_writer_refused_total{reason="busy"}`,
		"parley_writer_cache_rooms", "parley_writer_cache_bytes", "parley_writer_cache_max_bytes 2.68435456e+08",
		"parley_writer_cache_evictions_total", "parley_writer_cache_loads_total"} {
		if !strings.Contains(body, name) {
			t.Errorf("metrics lack %s", name)
		}
	}
}

// TestWriterCacheBoundedOverHTTP: with a small writer.cache_bytes, rooms
// are evicted as others are written, the cache stays under its bound, and
// an evicted room reloads from either store with its state: its members can
// still write, and a stranger still cannot. Before the bound, every room
// stayed in memory for good.
func TestWriterCacheBoundedOverHTTP(t *testing.T) {
	const bound = 64 << 10
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store, Mutate: func(c *config.Config) { c.Writer.CacheBytes = bound }})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			mallory := srv.Register(t, "mallory")
			filler := strings.Repeat("f", 2000)
			var rooms []string
			for i := range 10 {
				state := make([]map[string]any, 8)
				for k := range state {
					state[k] = map[string]any{"type": "org.example.filler", "state_key": fmt.Sprint(k), "content": map[string]any{"f": filler}}
				}
				rooms = append(rooms, alice.CreateRoom(map[string]any{"name": fmt.Sprint("r", i), "invite": []string{bob.UserID}, "initial_state": state}))
			}
			// The writer evicts right after each commit, just after it answers.
			hstest.Eventually(t, "the room cache under its bound", func() bool {
				st := srv.Srv.Rooms.CacheStats()
				return st.Bytes <= bound && st.Evictions > 0
			})
			first := rooms[0]
			bob.Join(first)
			bob.Send(first, "t1", "hello after reload")
			if code, res := mallory.Do("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(first)+"/send/m.room.message/t1", map[string]any{"msgtype": "m.text", "body": "x"}); code != 403 {
				t.Errorf("stranger's send to a reloaded room = %d %s, want 403", code, res.Raw)
			}
			if got := alice.MessageBodies(first); len(got) == 0 || got[len(got)-1] != "hello after reload" {
				t.Errorf("messages of the reloaded room = %q, want the last to be bob's", got)
			}
		})
	}
}
