package homeserver_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

const adminAPI = "/_parley/admin/v1"

// adminServer starts a server with an admin, "boss", logged in.
func adminServer(t *testing.T, store hstest.Store) (*hstest.Server, *hstest.Client) {
	t.Helper()
	srv := hstest.Start(t, hstest.Options{Store: store})
	if _, err := srv.Srv.CreateUser(context.Background(), "boss", "pw-boss", true); err != nil {
		t.Fatal(err)
	}
	return srv, srv.Login(t, "boss")
}

// auditActions returns the actions of the audit rows about target, oldest
// first, and checks each names boss as the actor.
func auditActions(t *testing.T, boss *hstest.Client, target string) []string {
	t.Helper()
	res := boss.MustDo("GET", adminAPI+"/audit?target="+url.QueryEscape(target), nil)
	var out []string
	entries := res.Get("chunk").Array()
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if got := e.Get("actor").String(); got != boss.UserID {
			t.Errorf("audit row %s actor = %q, want %q", e.Raw, got, boss.UserID)
		}
		if e.Get("ts").Int() == 0 {
			t.Errorf("audit row %s has no ts", e.Raw)
		}
		out = append(out, e.Get("action").String())
	}
	return out
}

func wantActions(t *testing.T, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audit actions = %v, want %v", got, want)
	}
}

// TestAdminOpsRefusals: a non-admin gets 403 M_FORBIDDEN on every admin
// route and changes nothing; unknown users and rooms get 404; bad paging
// and bad bodies get 400.
func TestAdminOpsRefusals(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv, boss := adminServer(t, store)
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{})
			u, r := hstest.Esc(alice.UserID), hstest.Esc(room)
			cases := []struct {
				name         string
				c            *hstest.Client
				method, path string
				body         any
				status       int
				errcode      string
			}{
				{"non-admin audit", alice, "GET", "/audit", nil, 403, "M_FORBIDDEN"},
				{"non-admin list users", alice, "GET", "/users", nil, 403, "M_FORBIDDEN"},
				{"non-admin create user", alice, "POST", "/users", map[string]any{"user_id": "eve", "password": "x"}, 403, "M_FORBIDDEN"},
				{"non-admin user", alice, "GET", "/users/" + u, nil, 403, "M_FORBIDDEN"},
				{"non-admin password", alice, "POST", "/users/" + u + "/password", map[string]any{"new_password": "x"}, 403, "M_FORBIDDEN"},
				{"non-admin grants admin", alice, "PUT", "/users/" + u + "/admin", map[string]any{"admin": true}, 403, "M_FORBIDDEN"},
				{"non-admin devices", alice, "GET", "/users/" + u + "/devices", nil, 403, "M_FORBIDDEN"},
				{"non-admin delete device", alice, "DELETE", "/users/" + u + "/devices/" + alice.DeviceID, nil, 403, "M_FORBIDDEN"},
				{"non-admin tokens", alice, "GET", "/registration_tokens", nil, 403, "M_FORBIDDEN"},
				{"non-admin create token", alice, "POST", "/registration_tokens", map[string]any{}, 403, "M_FORBIDDEN"},
				{"non-admin revoke token", alice, "DELETE", "/registration_tokens/abc", nil, 403, "M_FORBIDDEN"},
				{"non-admin rooms", alice, "GET", "/rooms", nil, 403, "M_FORBIDDEN"},
				{"non-admin room", alice, "GET", "/rooms/" + r, nil, 403, "M_FORBIDDEN"},
				{"non-admin state", alice, "GET", "/rooms/" + r + "/state", nil, 403, "M_FORBIDDEN"},
				{"non-admin block", alice, "PUT", "/rooms/" + r + "/block", map[string]any{"block": true}, 403, "M_FORBIDDEN"},
				{"no token", srv.Anon(t), "GET", "/users", nil, 401, "M_MISSING_TOKEN"},

				{"unknown user", boss, "GET", "/users/" + hstest.Esc("@nobody:localhost"), nil, 404, "M_NOT_FOUND"},
				{"unknown user devices", boss, "GET", "/users/" + hstest.Esc("@nobody:localhost") + "/devices", nil, 404, "M_NOT_FOUND"},
				{"unknown user password", boss, "POST", "/users/" + hstest.Esc("@nobody:localhost") + "/password", map[string]any{"new_password": "x"}, 404, "M_NOT_FOUND"},
				{"unknown user admin", boss, "PUT", "/users/" + hstest.Esc("@nobody:localhost") + "/admin", map[string]any{"admin": true}, 404, "M_NOT_FOUND"},
				{"unknown device", boss, "DELETE", "/users/" + u + "/devices/NOPE", nil, 404, "M_NOT_FOUND"},
				{"unknown room", boss, "GET", "/rooms/" + hstest.Esc("!nope:localhost"), nil, 404, "M_NOT_FOUND"},
				{"unknown room state", boss, "GET", "/rooms/" + hstest.Esc("!nope:localhost") + "/state", nil, 404, "M_NOT_FOUND"},
				{"unknown token", boss, "DELETE", "/registration_tokens/nope", nil, 404, "M_NOT_FOUND"},

				{"limit zero", boss, "GET", "/users?limit=0", nil, 400, "M_INVALID_PARAM"},
				{"limit too big", boss, "GET", "/rooms?limit=1001", nil, 400, "M_INVALID_PARAM"},
				{"limit not a number", boss, "GET", "/audit?limit=ten", nil, 400, "M_INVALID_PARAM"},
				{"audit from not a token", boss, "GET", "/audit?from=abc", nil, 400, "M_INVALID_PARAM"},
				{"create without user_id", boss, "POST", "/users", map[string]any{"password": "x"}, 400, "M_MISSING_PARAM"},
				{"create bad user_id", boss, "POST", "/users", map[string]any{"user_id": "Bad Name!"}, 400, "M_INVALID_PARAM"},
				{"create remote user", boss, "POST", "/users", map[string]any{"user_id": "@eve:elsewhere"}, 400, "M_INVALID_PARAM"},
				{"create taken user", boss, "POST", "/users", map[string]any{"user_id": "alice"}, 400, "M_USER_IN_USE"},
				{"password missing", boss, "POST", "/users/" + u + "/password", map[string]any{}, 400, "M_MISSING_PARAM"},
				{"admin flag missing", boss, "PUT", "/users/" + u + "/admin", map[string]any{}, 400, "M_MISSING_PARAM"},
				{"bad token text", boss, "POST", "/registration_tokens", map[string]any{"token": "no spaces"}, 400, "M_INVALID_PARAM"},
				{"negative uses", boss, "POST", "/registration_tokens", map[string]any{"uses_allowed": -1}, 400, "M_INVALID_PARAM"},
				{"expired token", boss, "POST", "/registration_tokens", map[string]any{"expiry_time": 1000}, 400, "M_INVALID_PARAM"},
				{"block flag missing", boss, "PUT", "/rooms/" + r + "/block", map[string]any{}, 400, "M_MISSING_PARAM"},
				{"block not a room ID", boss, "PUT", "/rooms/" + hstest.Esc("#alias:localhost") + "/block", map[string]any{"block": true}, 400, "M_INVALID_PARAM"},
				{"bad JSON", boss, "PUT", "/users/" + u + "/admin", []byte("{"), 400, "M_NOT_JSON"},
			}
			for _, c := range cases {
				st, res := c.c.Do(c.method, adminAPI+c.path, c.body)
				if st != c.status || res.Get("errcode").String() != c.errcode {
					t.Errorf("%s: got %d %s, want %d %s", c.name, st, res.Raw, c.status, c.errcode)
				}
			}
			// Nothing above changed anything, so nothing was audited.
			if got := boss.MustDo("GET", adminAPI+"/audit", nil).Get("chunk").Array(); len(got) != 0 {
				t.Errorf("audit after refusals = %v, want empty", got)
			}
			if st, _ := alice.Do("GET", "/_matrix/client/v3/account/whoami", nil); st != 200 {
				t.Errorf("alice after refusals: whoami = %d, want 200", st)
			}
		})
	}
}

// TestAdminOpsUsers: create, list and search with paging, details, admin
// grant and revoke (at once, despite cached sessions), password reset
// with logout, device list and delete; each change audited.
func TestAdminOpsUsers(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv, boss := adminServer(t, store)
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{})

			created := boss.MustDo("POST", adminAPI+"/users", map[string]any{"user_id": "carol", "password": "pw-carol", "displayname": "Carol C"})
			if got := created.Get("user_id").String(); got != "@carol:localhost" {
				t.Fatalf("created user_id = %q, want @carol:localhost", got)
			}
			carol := srv.Login(t, "carol")

			// Paging: three users, one per page, in ID order.
			var seen []string
			from := ""
			for range 5 {
				res := boss.MustDo("GET", adminAPI+"/users?limit=1&from="+url.QueryEscape(from), nil)
				for _, u := range res.Get("chunk").Array() {
					seen = append(seen, u.Get("user_id").String())
				}
				if from = res.Get("next_batch").String(); from == "" {
					break
				}
			}
			if want := "[@alice:localhost @boss:localhost @carol:localhost]"; fmt.Sprint(seen) != want {
				t.Errorf("paged users = %v, want %s", seen, want)
			}
			found := boss.MustDo("GET", adminAPI+"/users?search=carol+c", nil).Get("chunk").Array()
			if len(found) != 1 || found[0].Get("user_id").String() != carol.UserID || found[0].Get("admin").Bool() {
				t.Errorf("search by display name = %v, want carol, not admin", found)
			}

			d := boss.MustDo("GET", adminAPI+"/users/"+hstest.Esc(alice.UserID), nil)
			if got := d.Get("joined_rooms").Array(); len(got) != 1 || got[0].String() != room {
				t.Errorf("alice's joined_rooms = %v, want [%s]", got, room)
			}
			if got := d.Get("devices.0.device_id").String(); got != alice.DeviceID {
				t.Errorf("alice's device = %q, want %q", got, alice.DeviceID)
			}
			if d.Get("last_seen_ts").Int() == 0 || d.Get("admin").Bool() || d.Get("deactivated").Bool() {
				t.Errorf("alice's details = %s, want last_seen_ts set, not admin, not deactivated", d.Raw)
			}

			// Grant, then revoke: each holds at once for carol's session.
			cu := hstest.Esc(carol.UserID)
			if st, _ := carol.Do("GET", adminAPI+"/users", nil); st != 403 {
				t.Fatalf("carol before grant = %d, want 403", st)
			}
			boss.MustDo("PUT", adminAPI+"/users/"+cu+"/admin", map[string]any{"admin": true})
			if st, res := carol.Do("GET", adminAPI+"/users", nil); st != 200 {
				t.Errorf("carol after grant = %d %s, want 200", st, res.Raw)
			}
			boss.MustDo("PUT", adminAPI+"/users/"+cu+"/admin", map[string]any{"admin": false})
			if st, _ := carol.Do("GET", adminAPI+"/users", nil); st != 403 {
				t.Errorf("carol after revoke = %d, want 403", st)
			}

			// Devices: a second login, deleted by the admin.
			alice2 := srv.Login(t, "alice")
			au := hstest.Esc(alice.UserID)
			if got := boss.MustDo("GET", adminAPI+"/users/"+au+"/devices", nil).Get("devices.#").Int(); got != 2 {
				t.Errorf("alice's devices = %d, want 2", got)
			}
			boss.MustDo("DELETE", adminAPI+"/users/"+au+"/devices/"+alice2.DeviceID, nil)
			if st, _ := alice2.Do("GET", "/_matrix/client/v3/account/whoami", nil); st != 401 {
				t.Errorf("deleted device whoami = %d, want 401", st)
			}
			if st, _ := alice.Do("GET", "/_matrix/client/v3/account/whoami", nil); st != 200 {
				t.Errorf("other device whoami = %d, want 200", st)
			}

			// Password reset without logout keeps the session; with it, ends it.
			boss.MustDo("POST", adminAPI+"/users/"+au+"/password", map[string]any{"new_password": "pw-alice", "logout_devices": false})
			if st, _ := alice.Do("GET", "/_matrix/client/v3/account/whoami", nil); st != 200 {
				t.Errorf("whoami after reset without logout = %d, want 200", st)
			}
			boss.MustDo("POST", adminAPI+"/users/"+au+"/password", map[string]any{"new_password": "new-secret"})
			if st, _ := alice.Do("GET", "/_matrix/client/v3/account/whoami", nil); st != 401 {
				t.Errorf("whoami after reset with logout = %d, want 401", st)
			}
			st, _ := srv.Anon(t).Do("POST", "/_matrix/client/v3/login", map[string]any{
				"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": "alice"}, "password": "new-secret"})
			if st != 200 {
				t.Errorf("login with the new password = %d, want 200", st)
			}

			wantActions(t, auditActions(t, boss, carol.UserID), "user.create", "user.admin.grant", "user.admin.revoke")
			wantActions(t, auditActions(t, boss, alice.UserID), "user.device.delete", "user.password.reset", "user.password.reset")
			// Paging the audit log: 6 rows, newest first, 4 then 2.
			p1 := boss.MustDo("GET", adminAPI+"/audit?limit=4", nil)
			p2 := boss.MustDo("GET", adminAPI+"/audit?limit=4&from="+p1.Get("next_batch").String(), nil)
			if n1, n2 := p1.Get("chunk.#").Int(), p2.Get("chunk.#").Int(); n1 != 4 || n2 != 2 || p2.Get("next_batch").Exists() {
				t.Errorf("audit pages = %d then %d (next %q), want 4 then 2 and no next", n1, n2, p2.Get("next_batch").String())
			}
			if a, b := p1.Get("chunk.3.id").Int(), p2.Get("chunk.0.id").Int(); b >= a {
				t.Errorf("audit page 2 starts at id %d, want below page 1's last %d", b, a)
			}
		})
	}
}

// TestAdminOpsRegistrationTokens: create with uses and expiry, list,
// use, revoke; audited.
func TestAdminOpsRegistrationTokens(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store, Mutate: func(c *config.Config) { c.Registration.Mode = config.RegistrationToken }})
			if _, err := srv.Srv.CreateUser(context.Background(), "boss", "pw-boss", true); err != nil {
				t.Fatal(err)
			}
			boss := srv.Login(t, "boss")
			expiry := time.Now().Add(time.Hour).UnixMilli()
			made := boss.MustDo("POST", adminAPI+"/registration_tokens", map[string]any{"token": "welcome", "uses_allowed": 2, "expiry_time": expiry})
			if made.Get("token").String() != "welcome" || !made.Get("valid").Bool() {
				t.Errorf("created token = %s, want welcome, valid", made.Raw)
			}
			random := boss.MustDo("POST", adminAPI+"/registration_tokens", map[string]any{}).Get("token").String()
			if random == "" {
				t.Errorf("token without a name got none")
			}
			if st, res := boss.Do("POST", adminAPI+"/registration_tokens", map[string]any{"token": "welcome"}); st != 409 {
				t.Errorf("duplicate token = %d %s, want 409", st, res.Raw)
			}
			list := boss.MustDo("GET", adminAPI+"/registration_tokens", nil).Get("registration_tokens")
			w := list.Get(`#(token=="welcome")`)
			if w.Get("uses_allowed").Int() != 2 || w.Get("expiry_time").Int() != expiry || w.Get("completed").Int() != 0 || list.Get("#").Int() != 2 {
				t.Errorf("token list = %s, want 2 tokens, welcome with 2 uses and the expiry", list.Raw)
			}
			valid := func() bool {
				return srv.Anon(t).MustDo("GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=welcome", nil).Get("valid").Bool()
			}
			if !valid() {
				t.Errorf("welcome not valid after create")
			}
			boss.MustDo("DELETE", adminAPI+"/registration_tokens/welcome", nil)
			if valid() {
				t.Errorf("welcome still valid after revoke")
			}
			wantActions(t, auditActions(t, boss, "welcome"), "registration_token.create", "registration_token.revoke")
		})
	}
}

// TestAdminOpsRooms: list with member counts and search, details, state;
// a blocked room refuses local joins, invites and sends on every route
// but lets members leave; unblocking restores it; audited.
func TestAdminOpsRooms(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv, boss := adminServer(t, store)
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "name": "Abuse", "room_alias_name": "abuse"})
			other := carol.CreateRoom(map[string]any{})
			bob.Join(room)

			list := boss.MustDo("GET", adminAPI+"/rooms", nil).Get("chunk")
			if got := list.Get(`#(room_id=="` + room + `").joined_members`).Int(); got != 2 || list.Get("#").Int() != 2 {
				t.Errorf("room list = %s, want 2 rooms, %s with 2 members", list.Raw, room)
			}
			found := boss.MustDo("GET", adminAPI+"/rooms?search=abuse", nil).Get("chunk").Array()
			if len(found) != 1 || found[0].Get("room_id").String() != room {
				t.Errorf("search by alias = %v, want [%s]", found, room)
			}
			r := hstest.Esc(room)
			d := boss.MustDo("GET", adminAPI+"/rooms/"+r, nil)
			if d.Get("name").String() != "Abuse" || d.Get("members").Get(gjsonKey(bob.UserID)).String() != "join" || d.Get("blocked").Bool() {
				t.Errorf("room details = %s, want name Abuse, bob joined, not blocked", d.Raw)
			}
			if st := boss.MustDo("GET", adminAPI+"/rooms/"+r+"/state", nil).Get(`state.#(type=="m.room.create")`); !st.Exists() {
				t.Errorf("room state has no m.room.create")
			}

			boss.MustDo("PUT", adminAPI+"/rooms/"+r+"/block", map[string]any{"block": true})
			refused := []struct {
				name         string
				c            *hstest.Client
				method, path string
				body         any
			}{
				{"send", bob, "PUT", "/_matrix/client/v3/rooms/" + r + "/send/m.room.message/t1", map[string]any{"msgtype": "m.text", "body": "hi"}},
				{"state", alice, "PUT", "/_matrix/client/v3/rooms/" + r + "/state/m.room.topic/", map[string]any{"topic": "x"}},
				{"join by ID", carol, "POST", "/_matrix/client/v3/join/" + r, map[string]any{}},
				{"join by alias", carol, "POST", "/_matrix/client/v3/join/" + hstest.Esc("#abuse:localhost"), map[string]any{}},
				{"rooms join", carol, "POST", "/_matrix/client/v3/rooms/" + r + "/join", map[string]any{}},
				{"member state join", carol, "PUT", "/_matrix/client/v3/rooms/" + r + "/state/m.room.member/" + hstest.Esc(carol.UserID), map[string]any{"membership": "join"}},
				{"invite", alice, "POST", "/_matrix/client/v3/rooms/" + r + "/invite", map[string]any{"user_id": carol.UserID}},
			}
			for _, c := range refused {
				st, res := c.c.Do(c.method, c.path, c.body)
				if st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
					t.Errorf("%s in a blocked room: got %d %s, want 403 M_FORBIDDEN", c.name, st, res.Raw)
				}
			}
			if d := boss.MustDo("GET", adminAPI+"/rooms/"+r, nil); !d.Get("blocked").Bool() || d.Get("members").Get(gjsonKey(carol.UserID)).Exists() {
				t.Errorf("blocked room = %s, want blocked, carol not a member", d.Raw)
			}
			// Other rooms are untouched; members may still leave.
			carol.Send(other, "o1", "still fine")
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+r+"/leave", map[string]any{})

			boss.MustDo("PUT", adminAPI+"/rooms/"+r+"/block", map[string]any{"block": false})
			alice.Send(room, "t2", "open again")
			carol.Join(room)

			wantActions(t, auditActions(t, boss, room), "room.block", "room.unblock")
		})
	}
}

// TestAdminOpsRoomBlockSurvivesRestart: the block is stored, and the room
// writer loads it when it starts.
func TestAdminOpsRoomBlockSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	o := hstest.Options{Store: hstest.Store{Name: "sqlite"}, DataDir: dir}
	srv := hstest.Start(t, o)
	if _, err := srv.Srv.CreateUser(context.Background(), "boss", "pw-boss", true); err != nil {
		t.Fatal(err)
	}
	boss, alice := srv.Login(t, "boss"), srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{})
	boss.MustDo("PUT", adminAPI+"/rooms/"+hstest.Esc(room)+"/block", map[string]any{"block": true})
	srv.Stop()

	alice = hstest.Start(t, o).Login(t, "alice")
	st, res := alice.Do("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/t1", map[string]any{"msgtype": "m.text", "body": "hi"})
	if st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
		t.Errorf("send after restart = %d %s, want 403 M_FORBIDDEN", st, res.Raw)
	}
}

// gjsonKey escapes a user ID for use as one gjson path element.
func gjsonKey(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.', '*', '?', '@', '#', '|', '\\':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// TestAdminOpsAuditConcurrent: admin actions at once each get their own
// audit row, with distinct IDs, on both stores (IDs are MAX+1 with a
// retry on conflict).
func TestAdminOpsAuditConcurrent(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			_, boss := adminServer(t, store)
			const n = 16
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					if st, res := boss.Do("POST", adminAPI+"/registration_tokens", map[string]any{"token": fmt.Sprint("t", i)}); st != 200 {
						t.Errorf("create token %d = %d %s", i, st, res.Raw)
					}
				})
			}
			wg.Wait()
			rows := boss.MustDo("GET", adminAPI+"/audit", nil).Get("chunk").Array()
			ids, targets := map[int64]bool{}, map[string]bool{}
			for _, r := range rows {
				ids[r.Get("id").Int()], targets[r.Get("target").String()] = true, true
			}
			if len(rows) != n || len(ids) != n || len(targets) != n {
				t.Errorf("audit after %d concurrent creates: %d rows, %d IDs, %d targets; want %d each", n, len(rows), len(ids), len(targets), n)
			}
		})
	}
}
