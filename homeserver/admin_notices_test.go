package homeserver_test

import (
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestServerNotices: an admin sends a notice to one user and to all; it
// arrives from the server-notices account in a room tagged
// m.server_notice that the user is joined to, cannot leave and cannot
// write in; later notices reuse the room; deactivation still takes the
// user out. Refusals change nothing; each notice is audited.
func TestServerNotices(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv, boss := adminServer(t, store)
			alice := srv.Register(t, "alice")
			srv.Register(t, "bob")
			notice := map[string]any{"msgtype": "m.text", "body": "Maintenance at noon"}
			for _, c := range []struct {
				name    string
				cl      *hstest.Client
				body    any
				status  int
				errcode string
			}{
				{"non-admin", alice, map[string]any{"user_id": alice.UserID, "content": notice}, 403, "M_FORBIDDEN"},
				{"unknown user", boss, map[string]any{"user_id": "@nobody:localhost", "content": notice}, 404, "M_NOT_FOUND"},
				{"no content", boss, map[string]any{"user_id": alice.UserID}, 400, "M_MISSING_PARAM"},
				{"content without body", boss, map[string]any{"user_id": alice.UserID, "content": map[string]any{"msgtype": "m.text"}}, 400, "M_INVALID_PARAM"},
				{"user and all", boss, map[string]any{"user_id": alice.UserID, "all": true, "content": notice}, 400, "M_INVALID_PARAM"},
				{"neither", boss, map[string]any{"content": notice}, 400, "M_INVALID_PARAM"},
			} {
				if st, res := c.cl.Do("POST", adminAPI+"/send_server_notice", c.body); st != c.status || res.Get("errcode").String() != c.errcode {
					t.Errorf("%s: got %d %s, want %d %s", c.name, st, res.Raw, c.status, c.errcode)
				}
			}
			if got := len(alice.Sync("", 0).Get("rooms.join").Map()); got != 0 {
				t.Fatalf("alice's rooms after refusals = %d, want 0", got)
			}

			res := boss.MustDo("POST", adminAPI+"/send_server_notice", map[string]any{"user_id": alice.UserID, "content": notice})
			if res.Get("event_id").String() == "" {
				t.Fatalf("notice answer = %s, want an event_id", res.Raw)
			}
			sync := alice.Sync("", 0)
			var room string
			for id, r := range sync.Get("rooms.join").Map() {
				room = id
				if !r.Get(`account_data.events.#(type=="m.tag").content.tags.m\.server_notice`).Exists() {
					t.Errorf("notices room account data = %s, want the m.server_notice tag", r.Get("account_data").Raw)
				}
			}
			if got := hstest.Bodies(sync, room); len(got) != 1 || got[0] != "Maintenance at noon" {
				t.Errorf("notices room timeline = %v, want the notice", got)
			}
			if st, res := alice.Do("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/leave", map[string]any{}); st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("leaving the notices room = %d %s, want 403 M_FORBIDDEN", st, res.Raw)
			}
			if st, res := alice.Do("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/x", map[string]any{"msgtype": "m.text", "body": "hi"}); st != 403 {
				t.Errorf("writing in the notices room = %d %s, want 403", st, res.Raw)
			}

			res = boss.MustDo("POST", adminAPI+"/send_server_notice", map[string]any{"all": true, "content": map[string]any{"msgtype": "m.notice", "body": "To everyone"}})
			if got := res.Get("sent").Int(); got != 3 {
				t.Errorf("notice to all sent = %d, want 3 (boss, alice, bob)", got)
			}
			if got := alice.MessageBodies(room); len(got) != 2 || got[1] != "To everyone" {
				t.Errorf("alice's notices room = %v, want both notices in the one room", got)
			}
			wantActions(t, auditActions(t, boss, alice.UserID), "server_notice.send", "server_notice.send")

			boss.MustDo("POST", adminAPI+"/users/"+hstest.Esc(alice.UserID)+"/deactivate", map[string]any{})
			m := boss.MustDo("GET", adminAPI+"/rooms/"+hstest.Esc(room), nil)
			if got := m.Get("members." + gjsonKey(alice.UserID)).String(); got != "leave" {
				t.Errorf("alice in the notices room after deactivation = %q, want leave", got)
			}
		})
	}
}
