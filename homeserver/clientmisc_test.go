package homeserver_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

func bodiesOf(events []gjson.Result) []string {
	var out []string
	for _, e := range events {
		if e.Get("type").String() == "m.room.message" {
			out = append(out, e.Get("content.body").String())
		}
	}
	return out
}

// TestRoomInitialSync: GET /rooms/{id}/initialSync answers membership,
// the latest messages oldest first with tokens /messages accepts, state,
// presence, receipts and visibility, and follows rooms.ReadAccess: a
// stranger is refused, a leaver sees nothing after their leave.
func TestRoomInitialSync(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			eve := srv.Register(t, "eve")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "name": "R"})
			bob.Join(room)
			var ids []string
			for _, m := range []string{"m1", "m2", "m3"} {
				ids = append(ids, alice.Send(room, "t"+m, m))
			}
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/receipt/m.read/"+hstest.Esc(ids[2]), map[string]any{})
			path := "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/initialSync"

			res := bob.MustDo("GET", path+"?limit=2", nil)
			if got := res.Get("membership").String(); got != "join" {
				t.Errorf("membership = %q, want join", got)
			}
			if got := res.Get("room_id").String(); got != room {
				t.Errorf("room_id = %q, want %q", got, room)
			}
			if got := bodiesOf(res.Get("messages.chunk").Array()); !slices.Equal(got, []string{"m2", "m3"}) {
				t.Errorf("chunk bodies = %v, want [m2 m3]", got)
			}
			if got := res.Get("visibility").String(); got != "private" {
				t.Errorf("visibility = %q, want private", got)
			}
			var hasCreate, hasName bool
			for _, e := range res.Get("state").Array() {
				hasCreate = hasCreate || e.Get("type").String() == "m.room.create"
				hasName = hasName || (e.Get("type").String() == "m.room.name" && e.Get("content.name").String() == "R")
			}
			if !hasCreate || !hasName {
				t.Errorf("state has create %v, name %v; want both (%s)", hasCreate, hasName, res.Get("state").Raw)
			}
			if got := res.Get("receipts.0.content." + apiPath(ids[2], "m.read", alice.UserID, "ts")).Int(); got == 0 {
				t.Errorf("receipts = %s, want alice's m.read on m3", res.Get("receipts").Raw)
			}
			var presUsers []string
			for _, p := range res.Get("presence").Array() {
				presUsers = append(presUsers, p.Get("content.user_id").String())
			}
			if !slices.Contains(presUsers, alice.UserID) {
				t.Errorf("presence users = %v, want alice among them", presUsers)
			}
			// start pages back to m1 through /messages; end pages forward
			// to what is sent next.
			back := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=b&limit=1&from="+url.QueryEscape(res.Get("messages.start").String()), nil)
			if got := bodiesOf(back.Get("chunk").Array()); !slices.Equal(got, []string{"m1"}) {
				t.Errorf("/messages back from start = %v, want [m1]", got)
			}
			alice.Send(room, "tm4", "m4")
			fwd := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=f&from="+url.QueryEscape(res.Get("messages.end").String()), nil)
			if got := bodiesOf(fwd.Get("chunk").Array()); !slices.Equal(got, []string{"m4"}) {
				t.Errorf("/messages forward from end = %v, want [m4]", got)
			}

			// Refusals: a stranger to a non-world-readable room; an unknown room.
			if st, res := eve.Do("GET", path, nil); st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("stranger initialSync = %d %s, want 403 M_FORBIDDEN", st, res.Raw)
			}
			if st, res := bob.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc("!nope:localhost")+"/initialSync", nil); st != 403 {
				t.Errorf("unknown room initialSync = %d %s, want 403", st, res.Raw)
			}
			// An invitee to a private room gets their membership, no state.
			private := alice.CreateRoom(map[string]any{"preset": "private_chat", "name": "Secret"})
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(private)+"/invite", map[string]any{"user_id": eve.UserID})
			inv := eve.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(private)+"/initialSync", nil)
			if got := inv.Get("membership").String(); got != "invite" {
				t.Errorf("invitee membership = %q, want invite", got)
			}
			if got := inv.Get("state").Array(); len(got) != 0 {
				t.Errorf("invitee state = %s, want none", inv.Get("state").Raw)
			}
			// A leaver sees nothing sent, nor state set, after the leave.
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/leave", map[string]any{})
			alice.Send(room, "tm5", "after-leave")
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.name", map[string]any{"name": "Later"})
			res = bob.MustDo("GET", path, nil)
			if got := res.Get("membership").String(); got != "leave" {
				t.Errorf("leaver membership = %q, want leave", got)
			}
			if got := bodiesOf(res.Get("messages.chunk").Array()); slices.Contains(got, "after-leave") {
				t.Errorf("leaver chunk = %v, want nothing after the leave", got)
			}
			for _, e := range res.Get("state").Array() {
				if e.Get("type").String() == "m.room.name" && e.Get("content.name").String() != "R" {
					t.Errorf("leaver sees name %s, want the name at the leave", e.Get("content").Raw)
				}
			}
		})
	}
}

// TestReports: a member reports an event and a room; the reports are
// stored for operators (Store.Reports). Refusals change nothing: an event
// the reporter may not see (another room, a room they never joined, an
// unknown one) is 404 M_NOT_FOUND, a score out of range 400
// M_INVALID_PARAM, a room report without a reason 400 M_MISSING_PARAM.
func TestReports(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			eve := srv.Register(t, "eve")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			bad := alice.Send(room, "t1", "offensive")
			private := alice.CreateRoom(map[string]any{"preset": "private_chat"})
			secret := alice.Send(private, "t2", "secret")
			invited := alice.CreateRoom(map[string]any{"preset": "private_chat"})
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(invited)+"/invite", map[string]any{"user_id": eve.UserID})
			evPath := func(room, ev string) string {
				return "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/report/" + hstest.Esc(ev)
			}
			roomPath := func(room string) string { return "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/report" }

			refusals := []struct {
				name    string
				c       *hstest.Client
				path    string
				body    any
				status  int
				errcode string
			}{
				{"event in a room never joined", eve, evPath(private, secret), map[string]any{"reason": "x"}, 404, "M_NOT_FOUND"},
				{"event of another room", bob, evPath(room, secret), map[string]any{"reason": "x"}, 404, "M_NOT_FOUND"},
				{"unknown event", bob, evPath(room, "$nope"), map[string]any{"reason": "x"}, 404, "M_NOT_FOUND"},
				{"room never joined", eve, roomPath(private), map[string]any{"reason": "x"}, 404, "M_NOT_FOUND"},
				{"score too low", bob, evPath(room, bad), map[string]any{"score": -101}, 400, "M_INVALID_PARAM"},
				{"score positive", bob, evPath(room, bad), map[string]any{"score": 1}, 400, "M_INVALID_PARAM"},
				{"score not an integer", bob, evPath(room, bad), map[string]any{"score": "high"}, 400, "M_INVALID_PARAM"},
				{"reason too long", bob, evPath(room, bad), map[string]any{"reason": strings.Repeat("x", 4097)}, 400, "M_INVALID_PARAM"},
				{"room report without reason", bob, roomPath(room), map[string]any{}, 400, "M_MISSING_PARAM"},
				{"body not JSON", bob, evPath(room, bad), []byte("{"), 400, "M_NOT_JSON"},
			}
			for _, tc := range refusals {
				st, res := tc.c.Do("POST", tc.path, tc.body)
				if st != tc.status || res.Get("errcode").String() != tc.errcode {
					t.Errorf("%s: got %d %s, want %d %s", tc.name, st, res.Raw, tc.status, tc.errcode)
				}
			}
			if got, err := srv.Srv.Store.Reports(context.Background(), 0, "", 100); err != nil || len(got) != 0 {
				t.Fatalf("reports after refusals = %v, %v; want none", got, err)
			}

			bob.MustDo("POST", evPath(room, bad), map[string]any{"reason": "rude", "score": -50})
			bob.MustDo("POST", evPath(room, bad), map[string]any{})
			eve.MustDo("POST", roomPath(invited), map[string]any{"reason": "spam invite"})
			got, err := srv.Srv.Store.Reports(context.Background(), 0, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Fatalf("got %d reports, want 3: %+v", len(got), got)
			}
			var sawScored, sawRoom bool
			for _, r := range got {
				if r.EventID == bad && r.Reason == "rude" && r.Score != nil && *r.Score == -50 && r.Reporter == bob.UserID && r.EventSender == alice.UserID {
					sawScored = true
				}
				if r.EventID == "" && r.RoomID == invited && r.Reporter == eve.UserID && r.Reason == "spam invite" {
					sawRoom = true
				}
			}
			if !sawScored || !sawRoom {
				t.Errorf("reports = %+v, want bob's scored event report and eve's room report", got)
			}
			// Paging: newest first, the cursor continues after the last one.
			page, err := srv.Srv.Store.Reports(context.Background(), 0, "", 2)
			if err != nil || len(page) != 2 {
				t.Fatalf("first page = %v, %v; want 2", page, err)
			}
			rest, err := srv.Srv.Store.Reports(context.Background(), page[1].TS, page[1].ID, 2)
			if err != nil || len(rest) != 1 || rest[0].ID == page[0].ID || rest[0].ID == page[1].ID {
				t.Errorf("second page = %+v, %v; want the one remaining report", rest, err)
			}
			// At most 100 reports per reporter a day: bob has 2, 98 more
			// pass, the next is 429; eve is not affected.
			for i := 0; i < 98; i++ {
				bob.MustDo("POST", evPath(room, bad), map[string]any{"reason": fmt.Sprint(i)})
			}
			if st, res := bob.Do("POST", evPath(room, bad), map[string]any{"reason": "one too many"}); st != 429 || res.Get("errcode").String() != "M_LIMIT_EXCEEDED" {
				t.Errorf("bob's 101st report = %d %s, want 429 M_LIMIT_EXCEEDED", st, res.Raw)
			}
			eve.MustDo("POST", roomPath(invited), map[string]any{"reason": "again"})
		})
	}
}

// TestTimestampToEvent: the nearest visible event in each direction, 404
// past either end, and the refusals (stranger, bad ts or dir); a leaver
// never gets an event sent after their leave.
func TestTimestampToEvent(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			eve := srv.Register(t, "eve")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			m2 := alice.Send(room, "t2", "m2")
			ts2 := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/event/"+hstest.Esc(m2), nil).Get("origin_server_ts").Int()
			m3 := alice.Send(room, "t3", "m3")
			create := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.create?format=event", nil).Get("event_id").String()
			base := "/_matrix/client/v1/rooms/" + hstest.Esc(room) + "/timestamp_to_event"
			const future = int64(1) << 50

			cases := []struct {
				name    string
				c       *hstest.Client
				query   string
				status  int
				errcode string
				check   func(res gjson.Result) string // "" when fine
			}{
				{"first event", bob, "?dir=f&ts=0", 200, "", func(res gjson.Result) string {
					if res.Get("event_id").String() != create {
						return "want the create event " + create
					}
					return ""
				}},
				{"latest event", bob, fmt.Sprintf("?dir=b&ts=%d", future), 200, "", func(res gjson.Result) string {
					if res.Get("event_id").String() != m3 {
						return "want m3 " + m3
					}
					return ""
				}},
				{"forward from m2's time", bob, fmt.Sprintf("?dir=f&ts=%d", ts2), 200, "", func(res gjson.Result) string {
					if res.Get("origin_server_ts").Int() < ts2 {
						return "want an event at or after m2's time"
					}
					return ""
				}},
				{"backward from m2's time", bob, fmt.Sprintf("?dir=b&ts=%d", ts2), 200, "", func(res gjson.Result) string {
					if res.Get("origin_server_ts").Int() > ts2 {
						return "want an event at or before m2's time"
					}
					return ""
				}},
				{"past the end", bob, fmt.Sprintf("?dir=f&ts=%d", future), 404, "M_NOT_FOUND", nil},
				{"before the start", bob, "?dir=b&ts=0", 404, "M_NOT_FOUND", nil},
				{"stranger to a private room", eve, "?dir=f&ts=0", 0, "", nil}, // replaced below
				{"no ts", bob, "?dir=f", 400, "M_MISSING_PARAM", nil},
				{"bad ts", bob, "?dir=f&ts=soon", 400, "M_INVALID_PARAM", nil},
				{"bad dir", bob, "?dir=x&ts=0", 400, "M_INVALID_PARAM", nil},
			}
			private := alice.CreateRoom(map[string]any{"preset": "private_chat"})
			cases[6].query, cases[6].status, cases[6].errcode = "", 403, "M_FORBIDDEN"
			for _, tc := range cases {
				path := base + tc.query
				if tc.name == "stranger to a private room" {
					path = "/_matrix/client/v1/rooms/" + hstest.Esc(private) + "/timestamp_to_event?dir=f&ts=0"
				}
				st, res := tc.c.Do("GET", path, nil)
				if st != tc.status || (tc.errcode != "" && res.Get("errcode").String() != tc.errcode) {
					t.Errorf("%s: got %d %s, want %d %s", tc.name, st, res.Raw, tc.status, tc.errcode)
					continue
				}
				if tc.check != nil {
					if msg := tc.check(res); msg != "" {
						t.Errorf("%s: got %s, %s", tc.name, res.Raw, msg)
					}
				}
			}

			// A leaver's latest event is at most their own leave.
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/leave", map[string]any{})
			after := alice.Send(room, "t4", "after-leave")
			res := bob.MustDo("GET", fmt.Sprintf("%s?dir=b&ts=%d", base, future), nil)
			if got := res.Get("event_id").String(); got == after {
				t.Errorf("leaver's latest event = %s, the message sent after their leave", got)
			}
		})
	}
}

// TestOpenIDToken: a user requests an OpenID token for themselves and a
// third party exchanges it at userinfo for their ID; a token for someone
// else is refused, an unknown, empty or expired token is 401
// M_UNKNOWN_TOKEN.
func TestOpenIDToken(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			anon := srv.Anon(t)
			res := alice.MustDo("POST", "/_matrix/client/v3/user/"+hstest.Esc(alice.UserID)+"/openid/request_token", map[string]any{})
			tok := res.Get("access_token").String()
			if tok == "" || res.Get("token_type").String() != "Bearer" || res.Get("matrix_server_name").String() != "localhost" || res.Get("expires_in").Int() != 3600 {
				t.Fatalf("request_token = %s, want a Bearer token for localhost expiring in 3600s", res.Raw)
			}
			info := anon.MustDo("GET", "/_matrix/federation/v1/openid/userinfo?access_token="+url.QueryEscape(tok), nil)
			if got := info.Get("sub").String(); got != alice.UserID {
				t.Errorf("userinfo sub = %q, want %q", got, alice.UserID)
			}
			if st, res := bob.Do("POST", "/_matrix/client/v3/user/"+hstest.Esc(alice.UserID)+"/openid/request_token", map[string]any{}); st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("bob requesting alice's token = %d %s, want 403 M_FORBIDDEN", st, res.Raw)
			}
			if err := srv.Srv.Store.AddOpenIDToken(context.Background(), openIDHash("expired"), alice.UserID, 1); err != nil {
				t.Fatal(err)
			}
			// At most 10 live tokens a user: the 11th drops the oldest.
			var toks []string
			for range 11 {
				toks = append(toks, alice.MustDo("POST", "/_matrix/client/v3/user/"+hstest.Esc(alice.UserID)+"/openid/request_token", map[string]any{}).Get("access_token").String())
			}
			live := 0
			for _, tk := range append([]string{tok}, toks...) {
				if st, _ := anon.Do("GET", "/_matrix/federation/v1/openid/userinfo?access_token="+url.QueryEscape(tk), nil); st == 200 {
					live++
				}
			}
			if live != 10 {
				t.Errorf("live tokens after 12 requests = %d, want 10", live)
			}
			if st, _ := anon.Do("GET", "/_matrix/federation/v1/openid/userinfo?access_token="+url.QueryEscape(toks[10]), nil); st != 200 {
				t.Errorf("the newest token = %d, want 200", st)
			}
			for _, bad := range []string{"", "nope", "expired", alice.Token} {
				if st, res := anon.Do("GET", "/_matrix/federation/v1/openid/userinfo?access_token="+url.QueryEscape(bad), nil); st != 401 || res.Get("errcode").String() != "M_UNKNOWN_TOKEN" {
					t.Errorf("userinfo with %q = %d %s, want 401 M_UNKNOWN_TOKEN", bad, st, res.Raw)
				}
			}
		})
	}
}

func openIDHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// TestDeactivateAccount: after the password stage, deactivation logs out
// every device, leaves every joined and invited room (others see the
// leave), refuses login and registration of the name, and erases the
// profile when asked. Without auth or with a wrong password nothing
// changes.
func TestDeactivateAccount(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			alice2 := srv.Login(t, "alice")
			bob := srv.Register(t, "bob")
			carol := srv.Register(t, "carol")
			for _, c := range []*hstest.Client{alice, carol} {
				c.MustDo("PUT", "/_matrix/client/v3/profile/"+hstest.Esc(c.UserID)+"/displayname", map[string]any{"displayname": "Name of " + c.UserID})
			}
			joined := bob.CreateRoom(map[string]any{"preset": "public_chat"})
			alice.Join(joined)
			invited := bob.CreateRoom(map[string]any{"preset": "private_chat"})
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(invited)+"/invite", map[string]any{"user_id": alice.UserID})
			const path = "/_matrix/client/v3/account/deactivate"
			pw := func(c *hstest.Client, p string) map[string]any {
				return map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": c.UserID}, "password": p}
			}

			if st, res := alice.Do("POST", path, map[string]any{}); st != 401 || !res.Get("flows").Exists() {
				t.Errorf("deactivate without auth = %d %s, want 401 with flows", st, res.Raw)
			}
			if st, res := alice.Do("POST", path, map[string]any{"auth": pw(alice, "wrong")}); st != 401 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("deactivate with a wrong password = %d %s, want 401 M_FORBIDDEN", st, res.Raw)
			}
			alice.MustDo("GET", "/_matrix/client/v3/account/whoami", nil) // still there

			res := alice.MustDo("POST", path, map[string]any{"auth": pw(alice, "pw-alice"), "erase": true})
			if got := res.Get("id_server_unbind_result").String(); got != "no-support" {
				t.Errorf("id_server_unbind_result = %q, want no-support", got)
			}
			for _, c := range []*hstest.Client{alice, alice2} {
				if st, res := c.Do("GET", "/_matrix/client/v3/account/whoami", nil); st != 401 || res.Get("errcode").String() != "M_UNKNOWN_TOKEN" {
					t.Errorf("whoami of device %s after deactivation = %d %s, want 401 M_UNKNOWN_TOKEN", c.DeviceID, st, res.Raw)
				}
			}
			anon := srv.Anon(t)
			if st, res := anon.Do("POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password",
				"identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "pw-alice"}); st != 403 {
				t.Errorf("login after deactivation = %d %s, want 403", st, res.Raw)
			}
			if st, res := anon.Do("GET", "/_matrix/client/v3/register/available?username=alice", nil); st == 200 {
				t.Errorf("register/available for alice = %d %s, want refused", st, res.Raw)
			}
			body := map[string]any{"username": "alice", "password": "pw-new"}
			_, res = anon.Do("POST", "/_matrix/client/v3/register", body)
			body["auth"] = map[string]any{"type": "m.login.dummy", "session": res.Get("session").String()}
			if st, res := anon.Do("POST", "/_matrix/client/v3/register", body); st != 400 || res.Get("errcode").String() != "M_USER_IN_USE" {
				t.Errorf("registering alice again = %d %s, want 400 M_USER_IN_USE", st, res.Raw)
			}
			for _, room := range []string{joined, invited} {
				m := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(alice.UserID), nil)
				if got := m.Get("membership").String(); got != "leave" {
					t.Errorf("alice's membership in %s after deactivation = %q, want leave", room, got)
				}
			}
			if st, res := bob.Do("GET", "/_matrix/client/v3/profile/"+hstest.Esc(alice.UserID), nil); st != 404 {
				t.Errorf("alice's profile after deactivation = %d %s, want 404", st, res.Raw)
			}
			u, err := srv.Srv.Store.GetUser(context.Background(), alice.UserID)
			if err != nil || !u.Deactivated || u.DisplayName != "" {
				t.Errorf("alice's stored account = %+v, %v; want deactivated with the profile erased", u, err)
			}

			// Without erase the profile is kept (hidden, as the account is).
			carol.MustDo("POST", path, map[string]any{"auth": pw(carol, "pw-carol")})
			u, err = srv.Srv.Store.GetUser(context.Background(), carol.UserID)
			if err != nil || !u.Deactivated || u.DisplayName != "Name of "+carol.UserID {
				t.Errorf("carol's stored account = %+v, %v; want deactivated with the profile kept", u, err)
			}
		})
	}
}

// TestRoomUpgrade: an admin upgrades a room to version 11 and to 12: the
// new room names its predecessor, carries the name, topic, encryption,
// join rules and power levels (fitted to version 12's creator rules), the
// old room gets the tombstone and is restricted. A member without the
// power, a stranger, an unknown version and a missing version are refused
// and change nothing.
func TestRoomUpgrade(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			eve := srv.Register(t, "eve")
			stateOf := func(c *hstest.Client, room, typ string) (int, gjson.Result) {
				return c.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/"+typ, nil)
			}
			upgrade := func(c *hstest.Client, room string, body any) (int, gjson.Result) {
				return c.Do("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/upgrade", body)
			}
			for _, version := range []string{"11", "12"} {
				old := alice.CreateRoom(map[string]any{"preset": "public_chat", "name": "Old", "topic": "T", "room_version": "11",
					"initial_state": []any{map[string]any{"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}})
				bob.Join(old)
				_, pl := stateOf(alice, old, "m.room.power_levels")
				plc := map[string]any{}
				_ = json.Unmarshal([]byte(pl.Raw), &plc)
				plc["users"].(map[string]any)[bob.UserID] = 20
				alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(old)+"/state/m.room.power_levels", plc)

				refusals := []struct {
					name    string
					c       *hstest.Client
					body    any
					status  int
					errcode string
				}{
					{"member without the power", bob, map[string]any{"new_version": version}, 403, "M_FORBIDDEN"},
					{"stranger", eve, map[string]any{"new_version": version}, 403, "M_FORBIDDEN"},
					{"unknown version", alice, map[string]any{"new_version": "99"}, 400, "M_UNSUPPORTED_ROOM_VERSION"},
					{"no version", alice, map[string]any{}, 400, "M_MISSING_PARAM"},
				}
				for _, tc := range refusals {
					if st, res := upgrade(tc.c, old, tc.body); st != tc.status || res.Get("errcode").String() != tc.errcode {
						t.Errorf("v%s %s: got %d %s, want %d %s", version, tc.name, st, res.Raw, tc.status, tc.errcode)
					}
				}
				if st, _ := stateOf(alice, old, "m.room.tombstone"); st != 404 {
					t.Fatalf("v%s: tombstone after refusals = %d, want none (404)", version, st)
				}

				res := alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(old)+"/upgrade", map[string]any{"new_version": version})
				newRoom := res.Get("replacement_room").String()
				if newRoom == "" || newRoom == old {
					t.Fatalf("v%s: replacement_room = %q", version, newRoom)
				}
				_, ts := stateOf(bob, old, "m.room.tombstone")
				if got := ts.Get("replacement_room").String(); got != newRoom {
					t.Errorf("v%s: tombstone = %s, want replacement_room %s", version, ts.Raw, newRoom)
				}
				_, oldPL := stateOf(bob, old, "m.room.power_levels")
				if oldPL.Get("events_default").Int() < 50 || oldPL.Get("invite").Int() < 50 {
					t.Errorf("v%s: old room power levels = %s, want events_default and invite raised to 50", version, oldPL.Raw)
				}
				_, create := stateOf(alice, newRoom, "m.room.create")
				if create.Get("room_version").String() != version || create.Get("predecessor.room_id").String() != old {
					t.Errorf("v%s: new create = %s, want room_version %s and predecessor %s", version, create.Raw, version, old)
				}
				for typ, want := range map[string]string{"m.room.name": "name=Old", "m.room.topic": "topic=T",
					"m.room.encryption": "algorithm=m.megolm.v1.aes-sha2", "m.room.join_rules": "join_rule=public"} {
					k, v, _ := strings.Cut(want, "=")
					if st, c := stateOf(alice, newRoom, typ); st != 200 || c.Get(k).String() != v {
						t.Errorf("v%s: new room %s = %d %s, want %s", version, typ, st, c.Raw, want)
					}
				}
				_, newPL := stateOf(alice, newRoom, "m.room.power_levels")
				if got := newPL.Get(apiPath("users", bob.UserID)).Int(); got != 20 {
					t.Errorf("v%s: bob's level in the new room = %d (%s), want 20 as in the old", version, got, newPL.Raw)
				}
				aliceListed := newPL.Get(apiPath("users", alice.UserID)).Exists()
				if version == "12" && aliceListed {
					t.Errorf("v12: new power levels list alice, the creator: %s", newPL.Raw)
				}
				if version == "11" && newPL.Get(apiPath("users", alice.UserID)).Int() != 100 {
					t.Errorf("v11: alice's level in the new room = %s, want 100", newPL.Raw)
				}
				// The upgrader administers the new room; members follow.
				alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(newRoom)+"/state/m.room.topic", map[string]any{"topic": "new"})
				bob.Join(newRoom)
			}
		})
	}
}

// TestRoomUpgradeV12Creators: in a version 12 room only a creator may
// upgrade (m.room.tombstone needs 150, above any level given); a
// moderator at 100 is refused.
func TestRoomUpgradeV12Creators(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			old := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_version": "12",
				"power_level_content_override": map[string]any{"users": map[string]any{bob.UserID: 100}}})
			bob.Join(old)
			path := "/_matrix/client/v3/rooms/" + hstest.Esc(old) + "/upgrade"
			if st, res := bob.Do("POST", path, map[string]any{"new_version": "12"}); st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("moderator's upgrade of a v12 room = %d %s, want 403 M_FORBIDDEN", st, res.Raw)
			}
			newRoom := alice.MustDo("POST", path, map[string]any{"new_version": "12"}).Get("replacement_room").String()
			pl := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(newRoom)+"/state/m.room.power_levels", nil)
			if got := pl.Get(apiPath("users", bob.UserID)).Int(); got != 100 {
				t.Errorf("bob's level in the new room = %d (%s), want 100", got, pl.Raw)
			}
		})
	}
}

// TestTimestampToEventSkipsHidden: a user who left, looking back from
// now, gets their own leave, past more events hidden from them than one
// page of the lookup (50) holds.
func TestTimestampToEventSkipsHidden(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/leave", map[string]any{})
			for i := range 60 {
				alice.Send(room, fmt.Sprint("t", i), fmt.Sprint("hidden ", i))
			}
			leave := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(bob.UserID)+"?format=event", nil).Get("event_id").String()
			res := bob.MustDo("GET", fmt.Sprintf("/_matrix/client/v1/rooms/%s/timestamp_to_event?dir=b&ts=%d", hstest.Esc(room), int64(1)<<50), nil)
			if got := res.Get("event_id").String(); got != leave {
				t.Errorf("latest event bob may see = %s, want his leave %s", got, leave)
			}
		})
	}
}

// TestRoomInitialSyncBigRoomReceipts: above 100 joined members a room's
// initialSync carries only the caller's own receipts, as sync does for
// big rooms; below, everyone's.
func TestRoomInitialSyncBigRoomReceipts(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
	bob.Join(room)
	ev := alice.Send(room, "t1", "hello")
	for _, c := range []*hstest.Client{alice, bob} {
		c.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/receipt/m.read/"+hstest.Esc(ev), map[string]any{})
	}
	readers := func() []string {
		res := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/initialSync", nil)
		var out []string
		res.Get("receipts.0.content." + apiPath(ev, "m.read")).ForEach(func(k, _ gjson.Result) bool {
			out = append(out, k.String())
			return true
		})
		slices.Sort(out)
		return out
	}
	if got := readers(); len(got) != 2 {
		t.Errorf("small room: readers = %v, want alice and bob", got)
	}
	for i := range 99 {
		srv.Register(t, fmt.Sprint("m", i)).Join(room)
	}
	if got := readers(); !slices.Equal(got, []string{bob.UserID}) {
		t.Errorf("room of 101: readers = %v, want only bob's own", got)
	}
}
