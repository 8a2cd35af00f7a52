package homeserver_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestUnstorableTextRefused: U+0000 (and invalid UTF-8) in any string a
// client sends, whether a path parameter, a query parameter or a JSON
// string or key, is refused with 400 before anything is written, on both
// stores. PostgreSQL's text type cannot hold U+0000, so these were 500s
// there (and a NUL device_id at registration created the account anyway),
// while SQLite stored them.
func TestUnstorableTextRefused(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{"name": "target"})
			ev := alice.Send(room, "t0", "hello")
			me := hstest.Esc(alice.UserID)
			r := "/_matrix/client/v3/rooms/" + hstest.Esc(room)
			otk := map[string]any{"one_time_keys": map[string]any{"signed_curve25519:\x00": map[string]any{"key": "k"}}}
			cases := []struct {
				name, method, path string
				body               any
				code               string
			}{
				{"txnId with NUL", "PUT", r + "/send/m.room.message/a%00b", map[string]any{"body": "x"}, "M_INVALID_PARAM"},
				{"txnId with BEL", "PUT", r + "/send/m.room.message/a%07b", map[string]any{"body": "x"}, "M_INVALID_PARAM"},
				{"txnId with invalid UTF-8", "PUT", r + "/send/m.room.message/a%FFb", map[string]any{"body": "x"}, "M_INVALID_PARAM"},
				{"redaction txnId with BEL", "PUT", r + "/redact/" + hstest.Esc(ev) + "/a%07", map[string]any{}, "M_INVALID_PARAM"},
				{"to-device txnId with BEL", "PUT", "/_matrix/client/v3/sendToDevice/m.test/a%07", map[string]any{"messages": map[string]any{}}, "M_INVALID_PARAM"},
				{"event type with NUL", "PUT", r + "/send/m.x%00/t1", map[string]any{"body": "x"}, "M_INVALID_PARAM"},
				{"state key with NUL", "PUT", r + "/state/m.room.name/a%00", map[string]any{"name": "x"}, "M_INVALID_PARAM"},
				{"state key with invalid UTF-8", "PUT", r + "/state/m.room.name/a%FF", map[string]any{"name": "x"}, "M_INVALID_PARAM"},
				{"content with NUL", "PUT", r + "/send/m.room.message/t2", map[string]any{"body": "a\x00b"}, "M_BAD_JSON"},
				{"content key with NUL", "PUT", r + "/send/m.room.message/t3", map[string]any{"a\x00": "b"}, "M_BAD_JSON"},
				{"display name with NUL", "PUT", "/_matrix/client/v3/profile/" + me + "/displayname", map[string]any{"displayname": "a\x00"}, "M_BAD_JSON"},
				{"status_msg with NUL", "PUT", "/_matrix/client/v3/presence/" + me + "/status", map[string]any{"presence": "online", "status_msg": "\x00"}, "M_BAD_JSON"},
				{"device ID with NUL", "PUT", "/_matrix/client/v3/devices/D%00", map[string]any{"display_name": "x"}, "M_INVALID_PARAM"},
				{"device name with NUL", "PUT", "/_matrix/client/v3/devices/" + alice.DeviceID, map[string]any{"display_name": "\x00"}, "M_BAD_JSON"},
				{"key ID with NUL", "POST", "/_matrix/client/v3/keys/upload", otk, "M_BAD_JSON"},
				{"account data type with NUL", "PUT", "/_matrix/client/v3/user/" + me + "/account_data/m.x%00", map[string]any{}, "M_INVALID_PARAM"},
				{"room tag with NUL", "PUT", "/_matrix/client/v3/user/" + me + "/rooms/" + hstest.Esc(room) + "/tags/u.%00", map[string]any{}, "M_INVALID_PARAM"},
				{"alias with NUL", "PUT", "/_matrix/client/v3/directory/room/%23a%00:localhost", map[string]any{"room_id": room}, "M_INVALID_PARAM"},
				{"createRoom name with NUL", "POST", "/_matrix/client/v3/createRoom", map[string]any{"name": "\x00"}, "M_BAD_JSON"},
				{"filter with NUL", "POST", "/_matrix/client/v3/user/" + me + "/filter", map[string]any{"room": map[string]any{"types": []string{"\x00"}}}, "M_BAD_JSON"},
				{"query parameter with NUL", "GET", "/_matrix/client/v3/sync?timeout=0&filter=%00", nil, "M_INVALID_PARAM"},
				{"query parameter with invalid UTF-8", "GET", r + "/messages?dir=b&from=%FF", nil, "M_INVALID_PARAM"},
			}
			before := unstorableSnapshot(alice)
			for _, c := range cases {
				st, res := alice.Do(c.method, c.path, c.body)
				if st != http.StatusBadRequest || res.Get("errcode").String() != c.code {
					t.Errorf("%s: %s %s = %d %s, want 400 %s", c.name, c.method, c.path, st, res.Raw, c.code)
				}
			}
			if after := unstorableSnapshot(alice); after != before {
				t.Errorf("after refused requests the account reads\n%s\nwant (unchanged)\n%s", after, before)
			}

			// Registration with a NUL device ID: refused, and no account made.
			anon := srv.Anon(t)
			body := map[string]any{"username": "nul", "password": "pw-nul", "device_id": "D\x00", "auth": map[string]any{"type": "m.login.dummy"}}
			if st, res := anon.Do("POST", "/_matrix/client/v3/register", body); st != http.StatusBadRequest {
				t.Errorf("register with a NUL device_id = %d %s, want 400", st, res.Raw)
			}
			if st, res := anon.Do("GET", "/_matrix/client/v3/register/available?username=nul", nil); st != 200 || !res.Get("available").Bool() {
				t.Errorf("after a refused registration, username available = %d %s, want 200 available", st, res.Raw)
			}
			srv.Register(t, "nul") // the name is still free
		})
	}
}

// unstorableSnapshot is what a refused request must not change: the stream position
// and what /sync, /devices and /profile say.
func unstorableSnapshot(c *hstest.Client) string {
	sync := c.Sync("", 0)
	_, devices := c.Do("GET", "/_matrix/client/v3/devices", nil)
	_, profile := c.Do("GET", "/_matrix/client/v3/profile/"+hstest.Esc(c.UserID), nil)
	_, tags := c.Do("GET", "/_matrix/client/v3/user/"+hstest.Esc(c.UserID)+"/account_data/m.x", nil)
	return strings.Join([]string{sync.Get("next_batch").String(), devices.Raw, profile.Raw, tags.Raw,
		sync.Get("rooms.join.*.timeline.events.#").Raw, sync.Get("presence").Raw, sync.Get("account_data").Raw}, "\n")
}

// TestNoRouteStoresUnstorableText walks every route and puts U+0000 into
// each path parameter, the query and the JSON body in turn. Each answer is
// a 4xx (a NUL in the path or query exactly 400), never a 5xx, on both
// stores, and the account reads the same afterwards.
func TestNoRouteStoresUnstorableText(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			routes, ok := srv.Srv.Handler().(chi.Routes)
			if !ok {
				t.Fatal("handler is not a chi router")
			}
			before := unstorableSnapshot(alice)
			nulBody := []byte(`{"\u0000":"\u0000","body":"\u0000","name":"\u0000","displayname":"\u0000","device_id":"\u0000","type":"\u0000"}`)
			seen := 0
			err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
				if strings.Contains(route, "/logout") || strings.Contains(route, "delete_devices") {
					return nil // would end the test's own session
				}
				n := strings.Count(route, "{")
				for i := 0; i < n; i++ {
					path := fillNthParam(route, i, "a%00")
					st, res := alice.Do(method, path, []byte(`{}`))
					seen++
					if st != http.StatusBadRequest {
						t.Errorf("%s %s with U+0000 in parameter %d = %d %s, want 400", method, route, i, st, res.Raw)
					}
				}
				path := fillNthParam(route, -1, "")
				if st, res := alice.Do(method, path+"?x=%00", nil); st != http.StatusBadRequest {
					t.Errorf("%s %s?x=%%00 = %d %s, want 400", method, route, st, res.Raw)
				}
				if method == "PUT" || method == "POST" {
					if st, res := alice.Do(method, path, nulBody); st >= 500 {
						t.Errorf("%s %s with U+0000 in the body = %d %s, want a 4xx", method, route, st, res.Raw)
					}
				}
				seen += 2
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d requests sent", seen)
			if after := unstorableSnapshot(alice); after != before {
				t.Errorf("after the walk the account reads\n%s\nwant (unchanged)\n%s", after, before)
			}
			alice.Send(alice.CreateRoom(map[string]any{}), "after", "still alive")
		})
	}
}

// fillNthParam fills a chi route's parameters with "x", the i-th with p.
func fillNthParam(route string, i int, p string) string {
	var b strings.Builder
	for k := 0; ; k++ {
		open := strings.IndexByte(route, '{')
		if open < 0 {
			break
		}
		end := strings.IndexByte(route[open:], '}')
		b.WriteString(route[:open])
		if k == i {
			b.WriteString(p)
		} else {
			b.WriteString("x")
		}
		route = route[open+end+1:]
	}
	b.WriteString(strings.TrimSuffix(route, "*"))
	return b.String()
}
