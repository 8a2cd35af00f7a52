package homeserver_test

import (
	"net/url"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestFederationKnock, in both directions: a user knocks on another
// server's knock (or knock_restricted) room through it (make_knock,
// send_knock): the knock shows in the knocker's sync under rooms.knock
// with the room's name, and on the resident server with its reason; the
// resident's member approves it with an invite and the knocker joins. A
// knock on a room whose rule does not allow it is refused with the
// resident's 403 and leaves nothing behind.
func TestFederationKnock(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			bob := b.Register(t, "bob")
			for _, dir := range []struct {
				name              string
				resident, knocker *hstest.Client
				residentServer    string
				version, rule     string
			}{
				{"B knocks on A", alice, bob, a.FedName, "11", "knock"},
				{"A knocks on B", bob, alice, b.FedName, "12", "knock_restricted"},
			} {
				resident, knocker := dir.resident, dir.knocker
				room := resident.CreateRoom(knockRoom(dir.version, dir.rule))
				knock := "/_matrix/client/v3/knock/" + hstest.Esc(room) + "?server_name=" + url.QueryEscape(dir.residentServer)
				code, res := knocker.Do("POST", knock, map[string]any{"reason": "let me in"})
				if code != 200 || res.Get("room_id").String() != room {
					t.Fatalf("%s: knock = %d %s, want 200 with the room ID", dir.name, code, res.Raw)
				}
				k := hstest.Room(knocker.Sync("", 0), "knock", room)
				if !k.Exists() {
					t.Fatalf("%s: no rooms.knock entry in the knocker's sync", dir.name)
				}
				if got := k.Get(`knock_state.events.#(type=="m.room.name").content.name`).String(); got != "Knockers" {
					t.Errorf("%s: knock_state room name = %q, want Knockers", dir.name, got)
				}
				if got := k.Get(`knock_state.events.#(state_key==` + quote(knocker.UserID) + `).content.membership`).String(); got != "knock" {
					t.Errorf("%s: knock_state own membership = %q, want knock", dir.name, got)
				}
				if got := memberOn(resident, room, knocker.UserID); got != "knock" {
					t.Fatalf("%s: the knocker's membership on the resident server = %q, want knock", dir.name, got)
				}
				reason := resident.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(knocker.UserID), nil).Get("reason").String()
				if reason != "let me in" {
					t.Errorf("%s: the knock's reason on the resident server = %q, want %q", dir.name, reason, "let me in")
				}
				resident.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/invite", map[string]any{"user_id": knocker.UserID})
				hstest.Eventually(t, dir.name+": the approving invite on the knocker's server", func() bool {
					return hstest.Room(knocker.Sync("", 0), "invite", room).Exists()
				})
				joinVia(t, knocker, room, dir.residentServer)
				hstest.Eventually(t, dir.name+": the knocker joined on the resident server", func() bool {
					return memberOn(resident, room, knocker.UserID) == "join"
				})

				// Refused: a public room's rule does not allow knocking.
				public := resident.CreateRoom(map[string]any{"preset": "public_chat", "room_version": dir.version})
				code, res = knocker.Do("POST", "/_matrix/client/v3/knock/"+hstest.Esc(public)+"?server_name="+url.QueryEscape(dir.residentServer), map[string]any{})
				if code != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
					t.Errorf("%s: knock on a public room = %d %s, want 403 M_FORBIDDEN", dir.name, code, res.Raw)
				}
				if got := memberOn(resident, public, knocker.UserID); got != "" {
					t.Errorf("%s: a refused knock left membership %q on the resident server", dir.name, got)
				}
				if hstest.Room(knocker.Sync("", 0), "knock", public).Exists() {
					t.Errorf("%s: a refused knock shows in the knocker's sync", dir.name)
				}
			}
		})
	}
}

func quote(s string) string { return `"` + s + `"` }

// TestFederationKnockDeniedByKick: the resident server's kick of a
// remote user's knock goes to the knocker's server, though that server
// has nobody in the room (the room's servers miss it), and the knocker's
// sync then shows the room under "leave", not "knock". An invite
// rescinded the same way reaches the invitee's server too.
func TestFederationKnockDeniedByKick(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			bob := b.Register(t, "bob")
			for _, tc := range []struct {
				name   string
				before string // bob's membership the kick ends
			}{{"knock denied", "knock"}, {"invite rescinded", "invite"}} {
				room := alice.CreateRoom(knockRoom("11", "knock"))
				if tc.before == "knock" {
					bob.MustDo("POST", "/_matrix/client/v3/knock/"+hstest.Esc(room)+"?server_name="+url.QueryEscape(a.FedName), map[string]any{})
				} else {
					alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/invite", map[string]any{"user_id": bob.UserID})
				}
				var since string
				hstest.Eventually(t, tc.name+": bob's "+tc.before+" on his own server", func() bool {
					s := bob.Sync("", 0)
					since = s.Get("next_batch").String()
					return hstest.Room(s, tc.before, room).Exists()
				})
				if got := memberOn(alice, room, bob.UserID); got != tc.before {
					t.Fatalf("%s: bob's membership on A = %q, want %s", tc.name, got, tc.before)
				}
				alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/kick", map[string]any{"user_id": bob.UserID, "reason": "no"})
				hstest.Eventually(t, tc.name+": the room under leave in bob's sync", func() bool {
					if !hstest.Room(bob.Sync(since, 0), "leave", room).Exists() {
						return false
					}
					return !hstest.Room(bob.Sync("", 0), tc.before, room).Exists()
				})
			}
		})
	}
}
