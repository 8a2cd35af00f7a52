package homeserver_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// TestRateLimitDefaultsLetAClientThrough: with the default limits, one user
// typing 60 messages (each with typing notices, a read marker and a
// receipt, as Element sends them) and sharing room keys by to-device gets
// no 429 at all. The old single per-user bucket (10/s, burst 50, every
// request) refused them after the first few dozen requests.
func TestRateLimitDefaultsLetAClientThrough(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) { c.RateLimit.Enabled = true }})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
	bob.Join(room)
	rp := "/_matrix/client/v3/rooms/" + hstest.Esc(room)
	limited := map[string]int{}
	do := func(kind, method, path string, body any) gjson.Result {
		t.Helper()
		st, res := alice.Do(method, path, body)
		if st == 429 {
			limited[kind]++
		} else if st != 200 {
			t.Fatalf("%s: %s %s = %d %s", kind, method, path, st, res.Raw)
		}
		return res
	}
	for i := range 60 {
		do("typing", "PUT", rp+"/typing/"+hstest.Esc(alice.UserID), map[string]any{"typing": true, "timeout": 30000})
		id := do("message", "PUT", fmt.Sprintf("%s/send/m.room.message/t%d", rp, i), map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("line %d", i)}).Get("event_id").String()
		do("typing", "PUT", rp+"/typing/"+hstest.Esc(alice.UserID), map[string]any{"typing": false})
		if id != "" {
			do("read marker", "POST", rp+"/read_markers", map[string]any{"m.fully_read": id, "m.read": id})
		}
		if i%3 == 0 { // a room key shared with bob's device now and then
			do("to-device", "PUT", fmt.Sprintf("/_matrix/client/v3/sendToDevice/m.room.encrypted/k%d", i),
				map[string]any{"messages": map[string]any{bob.UserID: map[string]any{bob.DeviceID: map[string]any{"ciphertext": "x"}}}})
		}
	}
	if len(limited) > 0 {
		t.Errorf("429s at the default limits = %v, want none", limited)
	}
	if n := len(bob.MessageBodies(room)); n != 60 {
		t.Errorf("bob reads %d messages, want 60", n)
	}
}

// rawDo is Do that also returns the response headers.
func rawDo(t *testing.T, c *hstest.Client, method, path string, body []byte) (int, http.Header, gjson.Result) {
	t.Helper()
	req, err := http.NewRequest(method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, gjson.ParseBytes(raw)
}

// TestRateLimitPerAction: each action kind's limit triggers on its own,
// whatever route performs the action, answers 429 M_LIMIT_EXCEEDED with
// retry_after_ms and Retry-After, and leaves the user's other actions
// (and typing, read markers, to-device) alone.
func TestRateLimitPerAction(t *testing.T) {
	tight := config.Bucket{PerSecond: 0.001, Burst: 2}
	type env struct {
		alice, bob, carl, dave *hstest.Client
		actor                  *hstest.Client
		rooms                  []string
		bobEvent               string // a message of bob's in rooms[0], for alice to redact
	}
	type step struct {
		route  string
		method string
		path   func(e *env, i int) string
		body   func(e *env, i int) []byte
	}
	fixed := func(v string) func(*env, int) string { return func(*env, int) string { return v } }
	jsonBody := func(v string) func(*env, int) []byte { return func(*env, int) []byte { return []byte(v) } }
	roomPath := func(n int, rest string) func(e *env, i int) string {
		return func(e *env, i int) string { return "/_matrix/client/v3/rooms/" + hstest.Esc(e.rooms[n]) + rest }
	}
	invite := func(who func(e *env) *hstest.Client) func(e *env, i int) []byte {
		return func(e *env, i int) []byte { return []byte(`{"user_id":"` + who(e).UserID + `"}`) }
	}
	send := func(e *env, i int) string {
		return fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/m%d", hstest.Esc(e.rooms[0]), i)
	}
	msg := jsonBody(`{"msgtype":"m.text","body":"hi"}`)
	alice := func(e *env) *hstest.Client { return e.alice }
	bob := func(e *env) *hstest.Client { return e.bob }
	carl := func(e *env) *hstest.Client { return e.carl }
	dave := func(e *env) *hstest.Client { return e.dave }
	cases := []struct {
		kind   string
		set    func(*config.RateLimit)
		actor  func(e *env) *hstest.Client
		steps  []step // the first two pass, the third is refused
		others []step // other kinds by the same user, still allowed
	}{
		{
			kind: "message", set: func(r *config.RateLimit) { r.Message = tight }, actor: alice,
			steps: []step{
				{"send", "PUT", send, msg},
				{"state", "PUT", roomPath(0, "/state/m.room.topic/"), jsonBody(`{"topic":"t"}`)},
				{"redact", "PUT", func(e *env, i int) string { return roomPath(0, "/redact/"+hstest.Esc(e.bobEvent)+"/rd")(e, i) }, jsonBody(`{}`)},
			},
			others: []step{{"join", "POST", roomPath(2, "/join"), jsonBody(`{}`)}},
		},
		{
			kind: "join", set: func(r *config.RateLimit) { r.Join = tight }, actor: bob,
			steps: []step{
				{"join/{roomIdOrAlias}", "POST", func(e *env, i int) string { return "/_matrix/client/v3/join/" + hstest.Esc(e.rooms[0]) }, jsonBody(`{}`)},
				{"rooms/{id}/join", "POST", roomPath(1, "/join"), jsonBody(`{}`)},
				{"rooms/{id}/join", "POST", roomPath(2, "/join"), jsonBody(`{}`)},
			},
			others: []step{{"send", "PUT", send, msg}},
		},
		{
			kind: "create_room", actor: bob,
			set: func(r *config.RateLimit) {
				r.CreateRoom = tight
				r.Exempt = []string{"@alice:localhost"} // the setup's rooms; exempt users are never limited
			},
			steps: []step{
				{"createRoom", "POST", fixed("/_matrix/client/v3/createRoom"), jsonBody(`{}`)},
				{"createRoom", "POST", fixed("/_matrix/client/v3/createRoom"), jsonBody(`{}`)},
				{"createRoom", "POST", fixed("/_matrix/client/v3/createRoom"), jsonBody(`{}`)},
			},
			others: []step{{"send", "PUT", send, msg}},
		},
		{
			kind: "invite_per_room", set: func(r *config.RateLimit) { r.InvitePerRoom = tight }, actor: alice,
			steps: []step{
				{"invite", "POST", roomPath(1, "/invite"), invite(bob)},
				{"invite", "POST", roomPath(1, "/invite"), invite(carl)},
				{"invite", "POST", roomPath(1, "/invite"), invite(dave)},
			},
			others: []step{
				{"invite in another room", "POST", roomPath(2, "/invite"), invite(dave)},
				{"send", "PUT", send, msg},
			},
		},
		{
			kind: "invite_per_user", set: func(r *config.RateLimit) { r.InvitePerUser = tight }, actor: alice,
			steps: []step{
				{"invite", "POST", roomPath(1, "/invite"), invite(carl)},
				{"invite", "POST", roomPath(2, "/invite"), invite(carl)},
				{"createRoom's invite list", "POST", fixed("/_matrix/client/v3/createRoom"), func(e *env, i int) []byte {
					return []byte(`{"invite":["` + e.carl.UserID + `"]}`)
				}},
			},
			others: []step{
				{"invite someone else", "POST", roomPath(3, "/invite"), invite(dave)},
				{"send", "PUT", send, msg},
			},
		},
		{
			kind: "media_upload", set: func(r *config.RateLimit) { r.MediaUpload = tight }, actor: alice,
			steps: []step{
				{"upload v3", "POST", fixed("/_matrix/media/v3/upload?filename=a.txt"), jsonBody("hello")},
				{"upload r0", "POST", fixed("/_matrix/media/r0/upload"), jsonBody("hello")},
				{"upload v3", "POST", fixed("/_matrix/media/v3/upload"), jsonBody("hello")},
			},
			others: []step{{"send", "PUT", send, msg}},
		},
	}
	// Typing, read markers and to-device are never limited per action.
	always := []step{
		{"typing", "PUT", func(e *env, i int) string {
			return "/_matrix/client/v3/rooms/" + hstest.Esc(e.rooms[0]) + "/typing/" + hstest.Esc(e.actor.UserID)
		}, jsonBody(`{"typing":true,"timeout":1000}`)},
		{"read markers", "POST", roomPath(0, "/read_markers"), func(e *env, i int) []byte { return []byte(`{"m.fully_read":"` + e.bobEvent + `"}`) }},
		{"to-device", "PUT", func(e *env, i int) string { return fmt.Sprintf("/_matrix/client/v3/sendToDevice/m.x/td%d", i) }, func(e *env, i int) []byte {
			return []byte(`{"messages":{"` + e.carl.UserID + `":{"*":{"a":1}}}}`)
		}},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Mutate: func(cfg *config.Config) {
				cfg.RateLimit.Enabled = true
				c.set(&cfg.RateLimit)
			}})
			e := &env{alice: srv.Register(t, "alice"), bob: srv.Register(t, "bob"), carl: srv.Register(t, "carl"), dave: srv.Register(t, "dave")}
			e.actor = c.actor(e)
			// Setup spends none of the tested bucket: four public rooms of
			// alice's, and a message in the first
			// by bob, or by alice when bob's joins are what is tested.
			for range 4 {
				e.rooms = append(e.rooms, e.alice.CreateRoom(map[string]any{"preset": "public_chat"}))
			}
			if c.kind == "join" {
				e.bobEvent = e.alice.Send(e.rooms[0], "setup", "x")
			} else {
				e.bob.Join(e.rooms[0])
				e.bobEvent = e.bob.Send(e.rooms[0], "setup", "x")
			}
			for i, s := range c.steps {
				st, hdr, res := rawDo(t, e.actor, s.method, s.path(e, i), s.body(e, i))
				if i < 2 {
					if st != 200 {
						t.Fatalf("%s #%d (%s) = %d %s, want 200 within the burst of 2", c.kind, i+1, s.route, st, res.Raw)
					}
					continue
				}
				if st != 429 || res.Get("errcode").String() != "M_LIMIT_EXCEEDED" || res.Get("retry_after_ms").Int() <= 0 {
					t.Fatalf("%s #%d (%s) = %d %s, want 429 M_LIMIT_EXCEEDED with retry_after_ms", c.kind, i+1, s.route, st, res.Raw)
				}
				if ra, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || ra <= 0 {
					t.Errorf("%s: Retry-After = %q, want a positive number of seconds", c.kind, hdr.Get("Retry-After"))
				}
			}
			for i, s := range append(append([]step(nil), c.others...), always...) {
				if st, _, res := rawDo(t, e.actor, s.method, s.path(e, 100+i), s.body(e, 100+i)); st != 200 {
					t.Errorf("after the %s limit: %s = %d %s, want 200 (other kinds are not limited by it)", c.kind, s.route, st, res.Raw)
				}
			}
		})
	}
}

// TestFloodGuardPerDevice: the flood guard counts each device on its own,
// so one runaway client does not lock out its user's other devices, and
// /sync is outside it.
func TestFloodGuardPerDevice(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) {
		c.RateLimit.Enabled = true
		c.RateLimit.PerDevice = config.Bucket{PerSecond: 0.001, Burst: 3}
	}})
	first := srv.Register(t, "alice")
	second := srv.Login(t, "alice")
	for i := range 4 {
		st, res := first.Do("GET", "/_matrix/client/v3/account/whoami", nil)
		if want := map[bool]int{true: 429, false: 200}[i == 3]; st != want {
			t.Fatalf("first device's whoami #%d = %d %s, want %d", i+1, st, res.Raw, want)
		}
	}
	if st, res := second.Do("GET", "/_matrix/client/v3/account/whoami", nil); st != 200 {
		t.Errorf("second device's whoami = %d %s, want 200 (its own bucket)", st, res.Raw)
	}
	if st, _ := first.Do("GET", "/_matrix/client/v3/sync?timeout=0", nil); st != 200 {
		t.Errorf("first device's sync while limited = %d, want 200", st)
	}
}
