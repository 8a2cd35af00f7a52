package homeserver_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestChatAcrossDevices is the core promise: a DM and a group, two users,
// one of them on two devices, every device sees every message in one order.
func TestChatAcrossDevices(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice1 := srv.Register(t, "alice")
			alice2 := srv.Login(t, "alice")
			bob := srv.Register(t, "bob")

			dm := alice1.CreateRoom(map[string]any{"preset": "trusted_private_chat", "is_direct": true, "invite": []string{bob.UserID}})
			bob.Join(dm)
			group := alice1.CreateRoom(map[string]any{"preset": "private_chat", "name": "Team", "room_alias_name": "team"})
			alice1.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(group)+"/invite", map[string]any{"user_id": bob.UserID})
			if got := bob.Join("#team:localhost"); got != group {
				t.Fatalf("join by alias = %s, want %s", got, group)
			}

			var want []string
			senders := []*hstest.Client{alice1, alice2, bob}
			for i := 0; i < 30; i++ {
				body := fmt.Sprintf("msg %02d", i)
				senders[i%3].Send(group, fmt.Sprintf("txn%d", i), body)
				want = append(want, body)
			}
			// A retried txnId returns the first event and adds nothing.
			first := alice1.Send(dm, "same", "hello once")
			if again := alice1.Send(dm, "same", "hello once"); again != first {
				t.Errorf("retried txn = %s, want %s", again, first)
			}
			for _, c := range []*hstest.Client{alice1, alice2, bob} {
				got := pageAll(t, c, group)
				if !slices.Equal(got, want) {
					t.Errorf("%s/%s sees %v, want %v", c.UserID, c.DeviceID, got, want)
				}
				if dmBodies := pageAll(t, c, dm); !slices.Equal(dmBodies, []string{"hello once"}) {
					t.Errorf("%s/%s DM = %v, want one message", c.UserID, c.DeviceID, dmBodies)
				}
			}
			// Initial sync on every device: same tail, same order.
			var tails [][]string
			for _, c := range []*hstest.Client{alice1, alice2, bob} {
				s := c.MustDo("GET", `/_matrix/client/v3/sync?filter={"room":{"timeline":{"limit":50}}}`, nil)
				tails = append(tails, hstest.Bodies(s, group))
			}
			for i := 1; i < len(tails); i++ {
				if !slices.Equal(tails[i], tails[0]) {
					t.Errorf("device %d sync timeline = %v, want %v", i, tails[i], tails[0])
				}
			}
			if !slices.Equal(tails[0], want) {
				t.Errorf("sync timeline = %v, want %v", tails[0], want)
			}
		})
	}
}

// pageAll reads a room's messages with /messages, backwards in pages of 7,
// and returns the bodies oldest first.
func pageAll(t *testing.T, c *hstest.Client, roomID string) []string {
	t.Helper()
	var out []string
	from := ""
	for page := 0; page < 100; page++ {
		q := "/_matrix/client/v3/rooms/" + hstest.Esc(roomID) + "/messages?dir=b&limit=7"
		if from != "" {
			q += "&from=" + from
		}
		res := c.MustDo("GET", q, nil)
		chunk := res.Get("chunk").Array()
		for _, e := range chunk {
			if e.Get("type").String() == "m.room.message" {
				out = append(out, e.Get("content.body").String())
			}
		}
		if len(chunk) == 0 || !res.Get("end").Exists() {
			break
		}
		from = res.Get("end").String()
	}
	slices.Reverse(out)
	return out
}

func TestUnreadCountsClearedByReceipt(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			bob2 := srv.Login(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			var last string
			for i := 0; i < 30; i++ {
				last = alice.Send(room, fmt.Sprint(i), fmt.Sprint("unread ", i))
			}
			alice.Send(room, "mention", "hey bob") // no m.mentions: not a highlight
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/m2",
				map[string]any{"msgtype": "m.text", "body": "bob!", "m.mentions": map[string]any{"user_ids": []string{bob.UserID}}})
			for _, c := range []*hstest.Client{bob, bob2} {
				s := c.Sync("", 0)
				un := hstest.Room(s, "join", room).Get("unread_notifications")
				if n, h := un.Get("notification_count").Int(), un.Get("highlight_count").Int(); n != 32 || h != 1 {
					t.Errorf("%s unread = %d/%d, want 32/1", c.DeviceID, n, h)
				}
			}
			_ = last
			s := bob.Sync("", 0)
			evs := hstest.Room(s, "join", room).Get("timeline.events").Array()
			newest := evs[len(evs)-1].Get("event_id").String()
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/receipt/m.read/"+hstest.Esc(newest), map[string]any{})
			// An older receipt afterwards must not bring the count back.
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/receipt/m.read/"+hstest.Esc(last), map[string]any{})
			for _, c := range []*hstest.Client{bob, bob2} {
				un := hstest.Room(c.Sync("", 0), "join", room).Get("unread_notifications")
				if n := un.Get("notification_count").Int(); n != 0 {
					t.Errorf("%s unread after receipt = %d, want 0", c.DeviceID, n)
				}
			}
			// Alice's own messages never count for her.
			if n := hstest.Room(alice.Sync("", 0), "join", room).Get("unread_notifications.notification_count").Int(); n != 0 {
				t.Errorf("sender's own unread = %d, want 0", n)
			}
		})
	}
}

// TestMentionNotifiesTheOthersToo: a message that mentions one member (as
// every reply does, m.mentions naming the parent's sender) highlights that
// member and still counts as unread for the rest of the room, as the
// default rules' .m.rule.message says.
func TestMentionNotifiesTheOthersToo(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			carol.Join(room)
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/m1",
				map[string]any{"msgtype": "m.text", "body": "bob: yes", "m.mentions": map[string]any{"user_ids": []string{bob.UserID}}})
			for _, tc := range []struct {
				c                   *hstest.Client
				notified, highlight int64
			}{{bob, 1, 1}, {carol, 1, 0}} {
				un := hstest.Room(tc.c.Sync("", 0), "join", room).Get("unread_notifications")
				if n, h := un.Get("notification_count").Int(), un.Get("highlight_count").Int(); n != tc.notified || h != tc.highlight {
					t.Errorf("%s unread = %d/%d, want %d/%d", tc.c.UserID, n, h, tc.notified, tc.highlight)
				}
			}
		})
	}
}

// TestMutedRoomCountsOnlyMentions: a room muted with a room push rule
// (actions []) shows no unread count except mentions; the initial sync
// carries the ruleset.
func TestMutedRoomCountsOnlyMentions(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
	bob.Join(room)
	s := bob.Sync("", 0)
	found := false
	for _, e := range s.Get("account_data.events").Array() {
		if e.Get("type").String() == "m.push_rules" && e.Get("content.global.underride").IsArray() {
			found = true
		}
	}
	if !found {
		t.Errorf("initial sync lacks m.push_rules: %s", s.Get("account_data").Raw)
	}
	bob.MustDo("PUT", "/_matrix/client/v3/pushrules/global/room/"+hstest.Esc(room), map[string]any{"actions": []any{}})
	for i := 0; i < 5; i++ {
		alice.Send(room, fmt.Sprint(i), "chatter")
	}
	alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/m", map[string]any{
		"msgtype": "m.text", "body": "bob?", "m.mentions": map[string]any{"user_ids": []string{bob.UserID}}})
	un := hstest.Room(bob.Sync("", 0), "join", room).Get("unread_notifications")
	if n, h := un.Get("notification_count").Int(), un.Get("highlight_count").Int(); n != 1 || h != 1 {
		t.Errorf("muted room unread = %d/%d, want 1/1 (the mention only)", n, h)
	}
}
