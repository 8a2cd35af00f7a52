package homeserver_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestPushFollowsUserRules: push delivery evaluates the user's whole
// ruleset: a keyword (content rule), a silenced sender, a room set to
// notify with a sound, an override on a custom event type, a default rule
// disabled (after the ruleset was already compiled and cached), the display
// name, an @room with and without the power to make one, a room of two and
// an invite; each pushed notification carries the matching
// rule's tweaks and the prio they imply.
func TestPushFollowsUserRules(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			gw := newGateway(t)
			srv := hstest.Start(t, pushOptions(st, ""))
			alice, bob, carol, room := threeInRoom(t, srv)
			group := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(group)
			carol.Join(group)
			dm := alice.CreateRoom(map[string]any{"preset": "private_chat", "invite": []string{bob.UserID}, "is_direct": true})
			bob.Join(dm)
			bob.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(bob.UserID),
				map[string]any{"membership": "join", "displayname": "Robert"})
			const rules = "/_matrix/client/v3/pushrules/global/"
			bob.MustDo("PUT", rules+"content/cake", map[string]any{"pattern": "cake",
				"actions": []any{"notify", map[string]any{"set_tweak": "highlight"}}})
			bob.MustDo("PUT", rules+"sender/"+hstest.Esc(carol.UserID), map[string]any{"actions": []any{"dont_notify"}})
			bob.MustDo("PUT", rules+"room/"+hstest.Esc(group), map[string]any{
				"actions": []any{"notify", map[string]any{"set_tweak": "sound", "value": "bell"}}})
			bob.MustDo("PUT", rules+"override/ping", map[string]any{
				"conditions": []any{map[string]any{"kind": "event_match", "key": "type", "pattern": "org.example.ping"}},
				"actions":    []any{"notify", map[string]any{"set_tweak": "sound", "value": "ping"}}})
			if st, res := setPusher(bob, gw.url(), "bobkey", nil); st != 200 {
				t.Fatalf("set pusher = %d %s", st, res.Raw)
			}

			type want struct{ id, rule, prio, tweaks string }
			var wants []want
			push := func(c *hstest.Client, roomID, body, rule, prio, tweaks string) {
				id := sendBody(c, roomID, fmt.Sprint("t", len(wants), body), map[string]any{"msgtype": "m.text", "body": body})
				if rule != "" {
					wants = append(wants, want{id, rule, prio, tweaks})
				}
			}
			push(alice, room, "hello all", ".m.rule.message", "low", `{}`)
			push(carol, room, "carol here", "", "", "") // silenced by the sender rule
			push(alice, room, "who wants cake?", "content cake", "high", `{"highlight":true}`)
			push(alice, room, "Robert, look", ".m.rule.contains_display_name", "high", `{"highlight":true,"sound":"default"}`)
			ping := alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/org.example.ping/p1", map[string]any{"x": 1}).Get("event_id").String()
			wants = append(wants, want{ping, "override ping", "high", `{"sound":"ping"}`})
			push(alice, dm, "just us", ".m.rule.room_one_to_one", "high", `{"sound":"default"}`)
			push(alice, group, "in the group", "room rule", "high", `{"sound":"bell"}`)
			push(carol, group, "carol in the group", "room rule before sender rule", "high", `{"sound":"bell"}`)
			// @room: the creator's power reaches notifications.room (50),
			// carol's (0) does not, so her @room falls through to her
			// sender rule.
			atRoom := func(c *hstest.Client, txn string) string {
				return sendBody(c, room, txn, map[string]any{"msgtype": "m.text", "body": "everyone!", "m.mentions": map[string]any{"room": true}})
			}
			wants = append(wants, want{atRoom(alice, "r1"), ".m.rule.is_room_mention", "high", `{"highlight":true}`})
			atRoom(carol, "r2")
			bob.MustDo("PUT", rules+"underride/.m.rule.message/enabled", map[string]any{"enabled": false})
			push(alice, room, "after the rule went off", "", "", "")
			push(alice, room, "cake again", "content cake", "high", `{"highlight":true}`)
			// An invite reaches the invitee, who is not joined, through
			// .m.rule.invite_for_me; nobody in the new room has a pusher.
			fresh := alice.CreateRoom(map[string]any{"preset": "private_chat"})
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(fresh)+"/invite", map[string]any{"user_id": bob.UserID})
			invite := ""
			for _, ev := range alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(fresh)+"/state", nil).Array() {
				if ev.Get("type").String() == "m.room.member" && ev.Get("state_key").String() == bob.UserID {
					invite = ev.Get("event_id").String()
				}
			}
			wants = append(wants, want{invite, ".m.rule.invite_for_me", "high", `{"sound":"default"}`})

			notes := gw.waitNotes(t, len(wants))
			var got, wanted []string
			for _, n := range notes {
				got = append(got, fmt.Sprintf("%s %s %s", n.Get("event_id").String(), n.Get("prio").String(), n.Get("devices.0.tweaks").Raw))
			}
			for _, w := range wants {
				wanted = append(wanted, fmt.Sprintf("%s %s %s", w.id, w.prio, w.tweaks))
			}
			if strings.Join(got, "\n") != strings.Join(wanted, "\n") {
				t.Errorf("pushed:\n%s\nwant (rules %v):\n%s", strings.Join(got, "\n"), wants, strings.Join(wanted, "\n"))
			}
		})
	}
}
