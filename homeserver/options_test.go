package homeserver_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

func TestCreateRoomOptions(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{
		"name": "Options", "topic": "all of them", "room_version": "10", "preset": "public_chat",
		"initial_state":                []map[string]any{{"type": "m.room.guest_access", "state_key": "", "content": map[string]any{"guest_access": "forbidden"}}},
		"power_level_content_override": map[string]any{"events_default": 50},
		"creation_content":             map[string]any{"m.federate": false},
	})
	esc := hstest.Esc(room)
	checks := []struct{ path, field, want string }{
		{"m.room.name", "name", "Options"},
		{"m.room.topic", "topic", "all of them"},
		{"m.room.create", "room_version", "10"},
		{"m.room.join_rules", "join_rule", "public"},
		{"m.room.power_levels", "events_default", "50"},
	}
	for _, c := range checks {
		got := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+esc+"/state/"+c.path, nil).Get(c.field).String()
		if got != c.want {
			t.Errorf("%s.%s = %q, want %q", c.path, c.field, got, c.want)
		}
	}
	bob.Join(room)
	// events_default 50 from the override: a plain member may not talk.
	if st, res := bob.Do("PUT", "/_matrix/client/v3/rooms/"+esc+"/send/m.room.message/x", map[string]any{"body": "hi"}); st != 403 {
		t.Errorf("member send under events_default 50 = %d %s, want 403", st, res.Raw)
	}
	for _, bad := range []struct {
		body map[string]any
		code string
	}{
		{map[string]any{"room_version": "1"}, "M_UNSUPPORTED_ROOM_VERSION"},
		{map[string]any{"preset": "party"}, "M_BAD_JSON"},
		{map[string]any{"invite": []string{"not-a-user"}}, "M_INVALID_PARAM"},
		{map[string]any{"room_alias_name": "bad alias"}, "M_INVALID_PARAM"},
	} {
		if st, res := alice.Do("POST", "/_matrix/client/v3/createRoom", bad.body); st != 400 || res.Get("errcode").String() != bad.code {
			t.Errorf("createRoom(%v) = %d %s, want 400 %s", bad.body, st, res.Raw, bad.code)
		}
	}
}

func TestMessagesToAndFilter(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{})
	esc := hstest.Esc(room)
	for i := 0; i < 6; i++ {
		alice.Send(room, fmt.Sprint(i), fmt.Sprint("m", i))
		alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+esc+"/send/m.reaction/r"+fmt.Sprint(i), map[string]any{})
	}
	filter := url.QueryEscape(`{"types":["m.room.message"]}`)
	res := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+esc+"/messages?dir=b&limit=3&filter="+filter, nil)
	var got []string
	for _, e := range res.Get("chunk").Array() {
		got = append(got, e.Get("content.body").String())
	}
	if strings.Join(got, ",") != "m5,m4,m3" {
		t.Errorf("filtered page = %v, want m5,m4,m3", got)
	}
	// "to" stops paging at a token: forwards from the first page's end up to a bound.
	all := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+esc+"/messages?dir=f&limit=100&filter="+filter, nil)
	chunk := all.Get("chunk").Array()
	if len(chunk) != 6 {
		t.Fatalf("forward page = %d messages, want 6", len(chunk))
	}
	ctx := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+esc+"/context/"+hstest.Esc(chunk[2].Get("event_id").String())+"?limit=2", nil)
	to := ctx.Get("end").String()
	bounded := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+esc+"/messages?dir=f&limit=100&to="+to+"&filter="+filter, nil)
	if n := len(bounded.Get("chunk").Array()); n < 3 || n > 4 {
		t.Errorf("messages up to the context's end = %d, want 3 or 4 (m0..m2 and at most one after)", n)
	}
}

func TestPrivateReceiptsStayPrivate(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
	bob.Join(room)
	ev := alice.Send(room, "1", "read me")
	since := alice.Sync("", 0).Get("next_batch").String()
	bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/receipt/m.read.private/"+hstest.Esc(ev), map[string]any{})
	for _, e := range hstest.Room(alice.Sync(since, 0), "join", room).Get("ephemeral.events").Array() {
		if e.Get("type").String() == "m.receipt" {
			t.Errorf("alice sees bob's private receipt: %s", e.Raw)
		}
	}
	if n := hstest.Room(bob.Sync("", 0), "join", room).Get("unread_notifications.notification_count").Int(); n != 0 {
		t.Errorf("bob's unread after a private receipt = %d, want 0", n)
	}
}

func TestFullStateAndLazyMembers(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	room := alice.CreateRoom(map[string]any{"preset": "public_chat", "name": "lazy"})
	var others []string
	for i := 0; i < 4; i++ {
		c := srv.Register(t, fmt.Sprint("m", i))
		c.Join(room)
		others = append(others, c.UserID)
	}
	talker := srv.Login(t, "m0")
	talker.Send(room, "t", "only m0 talks")
	since := alice.Sync("", 0).Get("next_batch").String()
	full := alice.MustDo("GET", "/_matrix/client/v3/sync?full_state=true&since="+since, nil)
	if n := len(hstest.Room(full, "join", room).Get("state.events").Array()); n < 8 {
		t.Errorf("full_state sync has %d state events, want the whole state (8 or more)", n)
	}
	lazy := alice.MustDo("GET", `/_matrix/client/v3/sync?filter={"room":{"state":{"lazy_load_members":true},"timeline":{"limit":1}}}`, nil)
	members := map[string]bool{}
	for _, e := range hstest.Room(lazy, "join", room).Get("state.events").Array() {
		if e.Get("type").String() == "m.room.member" {
			members[e.Get("state_key").String()] = true
		}
	}
	if !members[alice.UserID] || !members[others[0]] || members[others[3]] {
		t.Errorf("lazy-loaded members = %v, want alice and the sender m0 only", members)
	}
	if n := hstest.Room(lazy, "join", room).Get("summary.m\\.joined_member_count").Int(); n != 5 {
		t.Errorf("summary joined count = %d, want 5", n)
	}
}

func TestRateLimits(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) {
		c.RateLimit.Enabled = true
		c.RateLimit.PerDevice.PerSecond, c.RateLimit.PerDevice.Burst = 1, 3
	}})
	alice := srv.Register(t, "alice")
	var st int
	var body string
	for i := 0; i < 10 && st != 429; i++ {
		s, res := alice.Do("GET", "/_matrix/client/v3/account/whoami", nil)
		st, body = s, res.Raw
		if s == 429 && (res.Get("errcode").String() != "M_LIMIT_EXCEEDED" || res.Get("retry_after_ms").Int() <= 0) {
			t.Errorf("429 body = %s, want M_LIMIT_EXCEEDED with retry_after_ms", res.Raw)
		}
	}
	if st != 429 {
		t.Errorf("10 requests at a 1/s burst-3 limit: last = %d %s, want 429", st, body)
	}
	// /sync is outside the per-user bucket: a client's long-poll never starves.
	if s, _ := alice.Do("GET", "/_matrix/client/v3/sync?timeout=0", nil); s != 200 {
		t.Errorf("sync while limited = %d, want 200", s)
	}
}

// TestConcurrentCreatesRaceForOneAlias: several createRoom calls racing for
// one alias give exactly one room; the others get M_ROOM_IN_USE and leave
// no room behind.
func TestConcurrentCreatesRaceForOneAlias(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	type result struct {
		st   int
		code string
		room string
	}
	results := make(chan result, 8)
	for i := 0; i < 8; i++ {
		go func() {
			st, res := alice.Do("POST", "/_matrix/client/v3/createRoom", map[string]any{"room_alias_name": "contested"})
			results <- result{st, res.Get("errcode").String(), res.Get("room_id").String()}
		}()
	}
	var winners []string
	for i := 0; i < 8; i++ {
		r := <-results
		switch {
		case r.st == 200:
			winners = append(winners, r.room)
		case r.st != 400 || r.code != "M_ROOM_IN_USE":
			t.Errorf("losing create = %d %s, want 400 M_ROOM_IN_USE", r.st, r.code)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d creates won the alias, want exactly 1", len(winners))
	}
	if got := alice.MustDo("GET", "/_matrix/client/v3/directory/room/"+hstest.Esc("#contested:localhost"), nil).Get("room_id").String(); got != winners[0] {
		t.Errorf("alias points to %s, want the winner %s", got, winners[0])
	}
	if n := len(alice.MustDo("GET", "/_matrix/client/v3/joined_rooms", nil).Get("joined_rooms").Array()); n != 1 {
		t.Errorf("alice is in %d rooms, want 1: a losing create left a room behind", n)
	}
}
