package homeserver_test

import (
	"net/url"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestWokenSyncStoredFilterFromMemory (issue 15 item 21): a long-poll that
// names a stored filter (as Element does) reads it from the database once,
// not on every wake-up; a filter ID stays the user's own.
func TestWokenSyncStoredFilterFromMemory(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			carol.Join(room)
			carolSince := carol.Sync("", 0).Get("next_batch").String()
			id := bob.MustDo("POST", "/_matrix/client/v3/user/"+hstest.Esc(bob.UserID)+"/filter",
				map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": 3}}}).Get("filter_id").String()
			sync := func(since string) string {
				q := "/_matrix/client/v3/sync?timeout=0&filter=" + url.QueryEscape(id)
				if since != "" {
					q += "&since=" + url.QueryEscape(since)
				}
				return bob.MustDo("GET", q, nil).Get("next_batch").String()
			}
			since := sync("")
			alice.Send(room, "m0", "zero")
			since = sync(since)
			carolSince = carol.Sync(carolSince, 0).Get("next_batch").String()
			alice.Send(room, "m1", "one")
			carol.Sync(carolSince, 0) // reads the timeline into the shared cache
			q0 := srv.Srv.Store.Queries()
			sync(since)
			if got := srv.Srv.Store.Queries() - q0; got != 0 {
				t.Errorf("woken sync with a stored filter made %d queries, want 0", got)
			}
			st, res := carol.Do("GET", "/_matrix/client/v3/sync?timeout=0&filter="+url.QueryEscape(id), nil)
			if st != 404 || res.Get("errcode").String() != "M_NOT_FOUND" {
				t.Errorf("carol's sync with bob's filter ID = %d %s, want 404 M_NOT_FOUND", st, res.Raw)
			}
		})
	}
}
