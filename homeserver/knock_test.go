package homeserver_test

import (
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

func knockRoom(version, rule string) map[string]any {
	return map[string]any{"preset": "private_chat", "room_version": version, "name": "Knockers",
		"initial_state": []map[string]any{{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{"join_rule": rule}}}}
}

// TestKnock (issue 14): a knock on a knock or knock_restricted room shows
// in the knocker's sync under rooms.knock with knock_state; the room's
// members see the knock; an invite approves it (the knocker then joins)
// and a kick denies it.
func TestKnock(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			for _, c := range []struct{ version, rule string }{{"10", "knock"}, {"10", "knock_restricted"}, {"11", "knock"}, {"12", "knock_restricted"}} {
				room := alice.CreateRoom(knockRoom(c.version, c.rule))
				what := c.version + "/" + c.rule
				res := bob.MustDo("POST", "/_matrix/client/v3/knock/"+hstest.Esc(room), map[string]any{"reason": "let me in"})
				if got := res.Get("room_id").String(); got != room {
					t.Fatalf("%s: knock answered room_id %q, want %q", what, got, room)
				}
				s := bob.Sync("", 0)
				k := hstest.Room(s, "knock", room)
				if !k.Exists() {
					t.Fatalf("%s: no rooms.knock entry in bob's sync: %s", what, s.Get("rooms").Raw)
				}
				if hstest.Room(s, "join", room).Exists() || hstest.Room(s, "invite", room).Exists() {
					t.Errorf("%s: the knocked room also shows as joined or invited", what)
				}
				var name, own string
				for _, e := range k.Get("knock_state.events").Array() {
					switch e.Get("type").String() {
					case "m.room.name":
						name = e.Get("content.name").String()
					case "m.room.member":
						if e.Get("state_key").String() == bob.UserID {
							own = e.Get("content.membership").String()
						}
					}
					if e.Get("event_id").Exists() {
						t.Errorf("%s: knock_state carries full events: %s", what, e.Raw)
					}
				}
				if name != "Knockers" || own != "knock" {
					t.Errorf("%s: knock_state name %q, own membership %q, want Knockers, knock", what, name, own)
				}
				if got := hstest.Room(alice.Sync("", 0), "join", room).Get(
					`timeline.events.#(content.membership=="knock").content.reason`).String(); got != "let me in" {
					t.Errorf("%s: alice sees the knock's reason %q, want %q", what, got, "let me in")
				}
				alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/invite", map[string]any{"user_id": bob.UserID})
				if !hstest.Room(bob.Sync("", 0), "invite", room).Exists() {
					t.Errorf("%s: the approved knock does not show as an invite", what)
				}
				bob.Join(room)

				// Denied: carol knocks, alice kicks her.
				carol.MustDo("POST", "/_matrix/client/v3/knock/"+hstest.Esc(room), map[string]any{})
				alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/kick", map[string]any{"user_id": carol.UserID})
				s = carol.Sync("", 0)
				if hstest.Room(s, "knock", room).Exists() {
					t.Errorf("%s: carol's denied knock still shows", what)
				}
				if code, _ := carol.Do("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/join", map[string]any{}); code != 403 {
					t.Errorf("%s: carol joined after a denied knock: %d, want 403", what, code)
				}
			}
		})
	}
}

// TestKnockRefused: knocks the room does not allow are refused and change
// nothing: a room whose rule is invite or public, a banned user, a member,
// an unknown room. (Parley serves room versions 10 to 12 only, which all
// allow knock and knock_restricted.)
func TestKnockRefused(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
			banned := alice.CreateRoom(knockRoom("11", "knock"))
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(banned)+"/ban", map[string]any{"user_id": bob.UserID})
			joined := alice.CreateRoom(knockRoom("11", "knock"))
			tests := []struct {
				name, room string
				code       int
				errcode    string
			}{
				{"invite rule", alice.CreateRoom(map[string]any{"preset": "private_chat"}), 403, "M_FORBIDDEN"},
				{"public rule", alice.CreateRoom(map[string]any{"preset": "public_chat"}), 403, "M_FORBIDDEN"},
				{"banned", banned, 403, "M_FORBIDDEN"},
				{"already joined", joined, 403, "M_FORBIDDEN"},
				{"unknown room", "!nowhere:localhost", 404, "M_NOT_FOUND"},
			}
			for _, tt := range tests {
				if tt.name == "already joined" {
					alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(joined)+"/invite", map[string]any{"user_id": bob.UserID})
					bob.Join(joined)
				}
				code, res := bob.Do("POST", "/_matrix/client/v3/knock/"+hstest.Esc(tt.room), map[string]any{})
				if code != tt.code || res.Get("errcode").String() != tt.errcode {
					t.Errorf("%s: got %d %s, want %d %s", tt.name, code, res.Raw, tt.code, tt.errcode)
				}
			}
			s := bob.Sync("", 0)
			if k := s.Get("rooms.knock"); len(k.Map()) != 0 {
				t.Errorf("refused knocks show in sync: %s", k.Raw)
			}
		})
	}
}
