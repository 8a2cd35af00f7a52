package homeserver_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestErrors checks the wire form of refusals: status, errcode, and that a
// refused request changes nothing.
func TestErrors(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_alias_name": "pub"})
	bob.Join(room)
	anon := srv.Anon(t)
	bad := srv.Anon(t)
	bad.Token = "nope"
	esc := hstest.Esc(room)
	cases := []struct {
		name   string
		c      *hstest.Client
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"unknown endpoint", alice, "GET", "/_matrix/client/v3/no/such/thing", nil, 404, "M_UNRECOGNIZED"},
		{"missing token", anon, "GET", "/_matrix/client/v3/account/whoami", nil, 401, "M_MISSING_TOKEN"},
		{"unknown token", bad, "GET", "/_matrix/client/v3/account/whoami", nil, 401, "M_UNKNOWN_TOKEN"},
		{"not json", alice, "PUT", "/_matrix/client/v3/rooms/" + esc + "/send/m.room.message/t1", []byte("{nope"), 400, "M_NOT_JSON"},
		{"json not object", alice, "PUT", "/_matrix/client/v3/rooms/" + esc + "/send/m.room.message/t2", []byte("[1]"), 400, "M_BAD_JSON"},
		{"too large", alice, "PUT", "/_matrix/client/v3/rooms/" + esc + "/send/m.room.message/t3", []byte(`{"body":"` + strings.Repeat("x", 2<<20) + `"}`), 413, "M_TOO_LARGE"},
		{"too deep", alice, "PUT", "/_matrix/client/v3/rooms/" + esc + "/send/m.room.message/t4", []byte(strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)), 400, "M_BAD_JSON"},
		{"member sets name", bob, "PUT", "/_matrix/client/v3/rooms/" + esc + "/state/m.room.name", map[string]any{"name": "mine"}, 403, "M_FORBIDDEN"},
		{"member kicks admin", bob, "POST", "/_matrix/client/v3/rooms/" + esc + "/kick", map[string]any{"user_id": alice.UserID}, 403, "M_FORBIDDEN"},
		{"send to unknown room", alice, "PUT", "/_matrix/client/v3/rooms/" + hstest.Esc("!nope:localhost") + "/send/m.room.message/t5", map[string]any{"body": "x"}, 403, "M_FORBIDDEN"},
		{"join unknown room", alice, "POST", "/_matrix/client/v3/join/" + hstest.Esc("!nope:localhost"), map[string]any{}, 404, "M_NOT_FOUND"},
		{"bad login", anon, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "wrong"}, 403, "M_FORBIDDEN"},
		{"unknown user login", anon, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "ghost"}, "password": "x"}, 403, "M_FORBIDDEN"},
		{"taken alias", alice, "POST", "/_matrix/client/v3/createRoom", map[string]any{"room_alias_name": "pub"}, 400, "M_ROOM_IN_USE"},
		{"event too large", alice, "PUT", "/_matrix/client/v3/rooms/" + esc + "/send/m.room.message/big", map[string]any{"body": strings.Repeat("x", 70000)}, 413, "M_TOO_LARGE"},
		{"txnId too long", alice, "PUT", "/_matrix/client/v3/rooms/" + esc + "/send/m.room.message/" + strings.Repeat("t", 300), map[string]any{"body": "x"}, 400, "M_INVALID_PARAM"},
		{"state key too long", alice, "PUT", "/_matrix/client/v3/rooms/" + esc + "/state/m.room.topic/" + strings.Repeat("k", 300), map[string]any{"topic": "x"}, 400, "M_INVALID_PARAM"},
		{"bad dir", alice, "GET", "/_matrix/client/v3/rooms/" + esc + "/messages?dir=x", nil, 400, "M_INVALID_PARAM"},
		{"bad since", alice, "GET", "/_matrix/client/v3/sync?since=garbage", nil, 400, "M_INVALID_PARAM"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, res := tc.c.Do(tc.method, tc.path, tc.body)
			if st != tc.status || res.Get("errcode").String() != tc.code {
				t.Errorf("%s %s = %d %s, want %d %s", tc.method, tc.path, st, res.Get("errcode"), tc.status, tc.code)
			}
			if res.Get("error").String() == "" {
				t.Errorf("error message is empty: %s", res.Raw)
			}
		})
	}
	// Nothing refused above reached the room.
	for _, b := range pageAll(t, alice, room) {
		t.Errorf("refused send stored a message: %q", b)
	}
	// CORS preflight.
	req, _ := http.NewRequest("OPTIONS", srv.URL+"/_matrix/client/v3/sync", bytes.NewReader(nil))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("CORS Allow-Origin = %q, want *", resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

func TestPowerLevelsAndKick(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
	bob.Join(room)
	esc := hstest.Esc(room)
	since := bob.Sync("", 0).Get("next_batch").String()
	alice.MustDo("POST", "/_matrix/client/v3/rooms/"+esc+"/kick", map[string]any{"user_id": bob.UserID, "reason": "bye"})
	left := hstest.Room(bob.Sync(since, 0), "leave", room)
	if evs := left.Get("timeline.events").Array(); len(evs) == 0 || evs[len(evs)-1].Get("content.membership").String() != "leave" {
		t.Errorf("kicked user's sync leave section = %s, want the kick as the last event", left.Raw)
	}
	if st, _ := bob.Do("PUT", "/_matrix/client/v3/rooms/"+esc+"/send/m.room.message/x", map[string]any{"body": "still here?"}); st != 403 {
		t.Errorf("kicked user send = %d, want 403", st)
	}
	bob.Join(room) // public: may rejoin after a kick
	alice.MustDo("POST", "/_matrix/client/v3/rooms/"+esc+"/ban", map[string]any{"user_id": bob.UserID})
	if st, res := bob.Do("POST", "/_matrix/client/v3/join/"+esc, map[string]any{}); st != 403 {
		t.Errorf("banned join = %d %s, want 403", st, res.Raw)
	}
	alice.MustDo("POST", "/_matrix/client/v3/rooms/"+esc+"/unban", map[string]any{"user_id": bob.UserID})
	bob.Join(room)
	members := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+esc+"/joined_members", nil)
	if !members.Get("joined." + strings.ReplaceAll(bob.UserID, ".", `\.`)).Exists() {
		t.Errorf("bob not joined after unban: %s", members.Raw)
	}
}

// TestRedactionSurvivesRestart: redacting a state event, then restarting,
// leaves a room that still loads and accepts sends; the redacted event
// shows no content.
func TestRedactionSurvivesRestart(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			dir := t.TempDir()
			srv := hstest.Start(t, hstest.Options{Store: store, DataDir: dir})
			alice := srv.Register(t, "alice")
			room := alice.CreateRoom(map[string]any{"topic": "secret topic"})
			esc := hstest.Esc(room)
			topic := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+esc+"/state/m.room.topic?format=event", nil).Get("event_id").String()
			msg := alice.Send(room, "m1", "regret this")
			for _, id := range []string{topic, msg} {
				alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+esc+"/redact/"+hstest.Esc(id)+"/r"+id[1:6], map[string]any{"reason": "oops"})
			}
			srv.Stop()
			srv = hstest.Start(t, hstest.Options{Store: store, DataDir: dir})
			alice = srv.Login(t, "alice")
			alice.Send(room, "m2", "still works")
			ev := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+esc+"/event/"+hstest.Esc(msg), nil)
			if ev.Get("content.body").Exists() || !ev.Get("unsigned.redacted_because").Exists() {
				t.Errorf("redacted event = %s, want empty content and redacted_because", ev.Raw)
			}
		})
	}
}

// TestRedactionThroughSend: the spec lets clients send m.room.redaction
// through /send with content.redacts (room version 11).
func TestRedactionThroughSend(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{})
	msg := alice.Send(room, "m", "oops")
	esc := hstest.Esc(room)
	alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+esc+"/send/m.room.redaction/r1", map[string]any{"redacts": msg})
	if ev := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+esc+"/event/"+hstest.Esc(msg), nil); ev.Get("content.body").Exists() {
		t.Errorf("event after redaction via /send = %s, want its content gone", ev.Raw)
	}
	if st, res := alice.Do("PUT", "/_matrix/client/v3/rooms/"+esc+"/send/m.room.redaction/r2", map[string]any{}); st != 400 {
		t.Errorf("redaction without redacts = %d %s, want 400", st, res.Raw)
	}
}
