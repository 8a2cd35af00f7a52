package homeserver_test

import (
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestFederationUnreadCounts: a message that arrives over federation counts
// in the receiving user's unread badge, and a mention of them highlights,
// as a local message would. (Federated events were stored without the
// notify flag, so they counted nowhere and pushed nothing.)
func TestFederationUnreadCounts(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			bob := b.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			joinVia(t, bob, room, a.FedName)
			hstest.Eventually(t, "bob's join on A", func() bool { return memberOn(alice, room, bob.UserID) == "join" })

			alice.Send(room, "plain", "hello from A")
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/mention", map[string]any{
				"msgtype": "m.text", "body": "are you there, bob?", "m.mentions": map[string]any{"user_ids": []string{bob.UserID}},
			})
			var notes, highlights int64
			hstest.Eventually(t, "unread counts on B", func() bool {
				un := hstest.Room(bob.Sync("", 0), "join", room).Get("unread_notifications")
				notes, highlights = un.Get("notification_count").Int(), un.Get("highlight_count").Int()
				return notes == 2 && highlights == 1
			})
			if notes != 2 || highlights != 1 {
				t.Errorf("bob's unread counts = %d notifications, %d highlights; want 2 and 1", notes, highlights)
			}
		})
	}
}
