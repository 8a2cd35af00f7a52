package homeserver_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/inbox"
)

// TestWokenMemberUnreadFromMemory (issue 15 item 21): a member woken by a
// message reads its unread count from memory. Before the unread cache every
// woken member made one unread-counts query.
func TestWokenMemberUnreadFromMemory(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			carol.Join(room)
			bobSince := bob.Sync("", 0).Get("next_batch").String()
			carolSince := carol.Sync("", 0).Get("next_batch").String()
			alice.Send(room, "m0", "zero")
			bobSince = bob.Sync(bobSince, 0).Get("next_batch").String()
			carolSince = carol.Sync(carolSince, 0).Get("next_batch").String()
			alice.Send(room, "m1", "one")
			alice.Send(room, "m2", "two")

			bob.Sync(bobSince, 0) // reads the timeline into the shared cache
			q0 := srv.Srv.Store.Queries()
			un := hstest.Room(carol.Sync(carolSince, 0), "join", room).Get("unread_notifications")
			q1 := srv.Srv.Store.Queries()
			if got := q1 - q0; got != 0 {
				t.Errorf("the second woken member's sync made %d queries, want 0", got)
			}
			if n, h := un.Get("notification_count").Int(), un.Get("highlight_count").Int(); n != 3 || h != 0 {
				t.Errorf("carol's unread = %d/%d, want 3/0", n, h)
			}
		})
	}
}

// TestUnreadCacheMatchesQuery (issue 15 item 21): over random sequences of
// sends (plain, notices, mentions, @room, by each member), read receipts
// (public, private, threaded, older than the current one) and redactions,
// the count each incremental sync shows equals storage.UnreadCounts as of
// the sync's token.
func TestUnreadCacheMatchesQuery(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			seed := uint64(rand.Int64())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			srv := hstest.Start(t, hstest.Options{Store: st})
			users := []*hstest.Client{srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")}
			alice := users[0]
			var roomIDs []string
			for range 2 {
				r := alice.CreateRoom(map[string]any{"preset": "public_chat"})
				users[1].Join(r)
				users[2].Join(r)
				roomIDs = append(roomIDs, r)
			}
			since := make([]string, len(users))
			for i, u := range users {
				since[i] = u.Sync("", 0).Get("next_batch").String()
			}
			sent := map[string][]string{} // room -> event IDs of messages
			check := func(step int, what string) {
				t.Helper()
				for i, u := range users {
					s := u.Sync(since[i], 0)
					since[i] = s.Get("next_batch").String()
					tok, err := inbox.ParseToken(since[i])
					if err != nil {
						t.Fatalf("parse %q: %v", since[i], err)
					}
					want, err := srv.Srv.Store.UnreadCounts(context.Background(), u.UserID, roomIDs, tok.Pos)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range roomIDs {
						un := hstest.Room(s, "join", r).Get("unread_notifications")
						if !un.Exists() {
							continue // no news in the room: no count sent
						}
						got := [2]int64{un.Get("notification_count").Int(), un.Get("highlight_count").Int()}
						if w := [2]int64{want[r].Notifications, want[r].Highlights}; got != w {
							t.Fatalf("step %d (%s): %s's unread in %s = %v, want %v (the query's)", step, what, u.UserID, r, got, w)
						}
					}
				}
			}
			for step := range 40 {
				u := users[rng.IntN(len(users))]
				room := roomIDs[rng.IntN(len(roomIDs))]
				path := "/_matrix/client/v3/rooms/" + hstest.Esc(room)
				txn := fmt.Sprint("t", step)
				var what string
				send := func(content map[string]any) {
					id := u.MustDo("PUT", path+"/send/m.room.message/"+txn, content).Get("event_id").String()
					sent[room] = append(sent[room], id)
				}
				switch op := rng.IntN(8); {
				case op <= 1:
					what = "message"
					send(map[string]any{"msgtype": "m.text", "body": "hi"})
				case op == 2:
					what = "notice"
					send(map[string]any{"msgtype": "m.notice", "body": "note"})
				case op == 3:
					target := users[rng.IntN(len(users))].UserID
					what = "mention of " + target
					send(map[string]any{"msgtype": "m.text", "body": "hey", "m.mentions": map[string]any{"user_ids": []string{target}}})
				case op == 4:
					what = "@room"
					send(map[string]any{"msgtype": "m.text", "body": "@room look"})
				case op <= 6 && len(sent[room]) > 0:
					ev := sent[room][rng.IntN(len(sent[room]))]
					typ := []string{"m.read", "m.read.private", "m.read"}[rng.IntN(3)]
					body := map[string]any{}
					if rng.IntN(4) == 0 {
						body["thread_id"] = "main"
					}
					what = fmt.Sprintf("%s receipt %v by %s", typ, body, u.UserID)
					u.MustDo("POST", path+"/receipt/"+typ+"/"+hstest.Esc(ev), body)
				case len(sent[room]) > 0:
					ev := sent[room][rng.IntN(len(sent[room]))]
					what = "redaction by alice"
					alice.MustDo("PUT", path+"/redact/"+hstest.Esc(ev)+"/"+txn, map[string]any{})
				default:
					what = "message"
					send(map[string]any{"msgtype": "m.text", "body": "hi"})
				}
				check(step, what)
			}
		})
	}
}
