package homeserver_test

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestAdminDeactivateEraseLeftRooms: deactivating with erase also erases
// the user's messages in rooms they had left before (no redaction event
// can be sent there in their name): another member's /event, /messages
// and initial sync, a newcomer's sync and the search index no longer show
// their text, including copies sync had cached. Messages in the room they
// are still in are redacted by an event as before; a second erase finds
// nothing left.
func TestAdminDeactivateEraseLeftRooms(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv, boss := adminServer(t, store)
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			stayed := bob.CreateRoom(map[string]any{"preset": "public_chat"})
			left := bob.CreateRoom(map[string]any{"preset": "public_chat"})
			alice.Join(stayed)
			alice.Join(left)
			alice.Send(stayed, "t1", "alice secret one")
			gone := alice.Send(left, "t2", "alice secret two")
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(left)+"/leave", map[string]any{})
			// Warm sync's caches of the left room's timeline.
			if got := strings.Join(hstest.Bodies(bob.Sync("", 0), left), "|"); !strings.Contains(got, "alice secret two") {
				t.Fatalf("bob's sync of the left room before = %q, want alice's message", got)
			}

			u := hstest.Esc(alice.UserID)
			res := boss.MustDo("POST", adminAPI+"/users/"+u+"/deactivate", map[string]any{"erase": true})
			if got := res.Get("redacted").Int(); got != 2 {
				t.Errorf("redacted = %d, want 2 (one in the room alice is in, one in the room she left)", got)
			}

			ev := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(left)+"/event/"+hstest.Esc(gone), nil)
			if ev.Get("content.body").Exists() || ev.Get("type").String() != "m.room.message" {
				t.Errorf("alice's message in the room she left, after erase = %s, want it without content", ev.Raw)
			}
			carol := srv.Register(t, "carol")
			carol.Join(left)
			for name, bodies := range map[string][]string{
				"bob's /messages":      bob.MessageBodies(left),
				"bob's initial sync":   hstest.Bodies(bob.Sync("", 0), left),
				"carol's /messages":    carol.MessageBodies(left),
				"carol's initial sync": hstest.Bodies(carol.Sync("", 0), left),
			} {
				if got := strings.Join(bodies, "|"); strings.Contains(got, "secret") {
					t.Errorf("%s of the left room after erase = %q, want alice's text gone", name, got)
				}
			}
			search := bob.MustDo("POST", "/_matrix/client/v3/search", map[string]any{
				"search_categories": map[string]any{"room_events": map[string]any{"search_term": "secret"}}})
			if n := len(search.Get("search_categories.room_events.results").Array()); n != 0 {
				t.Errorf("search for alice's erased text = %d results, want 0: %s", n, search.Raw)
			}

			boss.MustDo("POST", adminAPI+"/users/"+u+"/reactivate", map[string]any{})
			res = boss.MustDo("POST", adminAPI+"/users/"+u+"/deactivate", map[string]any{"erase": true})
			if got := res.Get("redacted").Int(); got != 0 {
				t.Errorf("second erase redacted = %d, want 0", got)
			}
		})
	}
}
