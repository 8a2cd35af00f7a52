package homeserver_test

import (
	"context"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestAdminDeactivate: an admin deactivates a user: every session ends at
// once (also one whose token the server had cached), the user leaves every
// room, their devices vanish from another member's key query; with erase the messages
// are redacted and the profile blanked. Reactivation lets the user log in
// again with the new password. Each is audited; refusals change nothing.
func TestAdminDeactivate(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv, boss := adminServer(t, store)
			alice := srv.Register(t, "alice")
			alice2 := srv.Login(t, "alice")
			bob := srv.Register(t, "bob")
			carol := srv.Register(t, "carol")
			room := bob.CreateRoom(map[string]any{"preset": "public_chat"})
			alice.Join(room)
			carol.Join(room)
			msg := alice.Send(room, "t1", "secret from alice")
			for _, c := range []*hstest.Client{alice, alice2} { // both tokens are cached now
				c.MustDo("GET", "/_matrix/client/v3/account/whoami", nil)
			}
			keys := func(c *hstest.Client, d string) map[string]any {
				return map[string]any{"device_keys": map[string]any{"user_id": c.UserID, "device_id": d,
					"algorithms": []string{"m.olm.v1.curve25519-aes-sha2"}, "keys": map[string]string{"ed25519:" + d: "k" + d}, "signatures": map[string]any{}}}
			}
			alice.MustDo("POST", "/_matrix/client/v3/keys/upload", keys(alice, alice.DeviceID))
			alice2.MustDo("POST", "/_matrix/client/v3/keys/upload", keys(alice2, alice2.DeviceID))
			query := func() int {
				res := bob.MustDo("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}})
				return len(res.Get("device_keys." + gjsonKey(alice.UserID)).Map())
			}
			if got := query(); got != 2 {
				t.Fatalf("alice's devices in bob's key query before = %d, want 2", got)
			}

			u := hstest.Esc(alice.UserID)
			for _, c := range []struct {
				name    string
				cl      *hstest.Client
				path    string
				status  int
				errcode string
			}{
				{"non-admin deactivates", carol, "/users/" + u + "/deactivate", 403, "M_FORBIDDEN"},
				{"non-admin reactivates", carol, "/users/" + u + "/reactivate", 403, "M_FORBIDDEN"},
				{"unknown user deactivated", boss, "/users/" + hstest.Esc("@nobody:localhost") + "/deactivate", 404, "M_NOT_FOUND"},
				{"unknown user reactivated", boss, "/users/" + hstest.Esc("@nobody:localhost") + "/reactivate", 404, "M_NOT_FOUND"},
				{"active user reactivated", boss, "/users/" + u + "/reactivate", 400, "M_INVALID_PARAM"},
			} {
				if st, res := c.cl.Do("POST", adminAPI+c.path, map[string]any{}); st != c.status || res.Get("errcode").String() != c.errcode {
					t.Errorf("%s: got %d %s, want %d %s", c.name, st, res.Raw, c.status, c.errcode)
				}
			}
			alice.MustDo("GET", "/_matrix/client/v3/account/whoami", nil) // refusals changed nothing

			res := boss.MustDo("POST", adminAPI+"/users/"+u+"/deactivate", map[string]any{"erase": true})
			if got := res.Get("redacted").Int(); got != 1 {
				t.Errorf("redacted = %d, want 1", got)
			}
			for _, c := range []*hstest.Client{alice, alice2} {
				if st, res := c.Do("GET", "/_matrix/client/v3/account/whoami", nil); st != 401 || res.Get("errcode").String() != "M_UNKNOWN_TOKEN" {
					t.Errorf("whoami of device %s after deactivation = %d %s, want 401 M_UNKNOWN_TOKEN", c.DeviceID, st, res.Raw)
				}
			}
			if got := query(); got != 0 {
				t.Errorf("alice's devices in bob's key query after = %d, want 0", got)
			}
			m := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+u, nil)
			if got := m.Get("membership").String(); got != "leave" {
				t.Errorf("alice's membership after deactivation = %q, want leave", got)
			}
			ev := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/event/"+hstest.Esc(msg), nil)
			if ev.Get("content.body").Exists() || !ev.Get("unsigned.redacted_because").Exists() {
				t.Errorf("alice's message after erase = %s, want it redacted", ev.Raw)
			}
			acct, err := srv.Srv.Store.GetUser(context.Background(), alice.UserID)
			if err != nil || !acct.Deactivated || acct.DisplayName != "" {
				t.Errorf("alice's account = %+v, %v; want deactivated, profile erased", acct, err)
			}
			if got := boss.MustDo("GET", adminAPI+"/users/"+u, nil); !got.Get("deactivated").Bool() || len(got.Get("devices").Array()) != 0 {
				t.Errorf("alice's details after deactivation = %s, want deactivated without devices", got.Raw)
			}

			boss.MustDo("POST", adminAPI+"/users/"+u+"/reactivate", map[string]any{"password": "pw-alice"})
			back := srv.Login(t, "alice")
			back.MustDo("GET", "/_matrix/client/v3/account/whoami", nil)
			wantActions(t, auditActions(t, boss, alice.UserID), "user.deactivate", "user.reactivate")
		})
	}
}
