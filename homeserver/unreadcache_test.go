package homeserver_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"testing"

	"github.com/tidwall/gjson"

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
// (public, private, threaded, older than the current one), thread replies,
// receipts in threads and redactions, the count each incremental sync shows
// equals storage.UnreadCounts as of the sync's token; for the user whose
// filter asks for thread counts, the main and each thread's count equal
// storage.UnreadCountsByThread's.
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
			sent := map[string][]string{}              // room -> event IDs of main-timeline messages
			inThread := map[string]map[string]string{} // room -> thread reply -> root
			check := func(step int, what string) {
				t.Helper()
				for i, u := range users {
					byThread := i == 0 // alice asks for thread counts
					var s gjson.Result
					if byThread {
						s = u.MustDo("GET", "/_matrix/client/v3/sync?timeout=0&since="+url.QueryEscape(since[i])+"&filter="+url.QueryEscape(threadFilter), nil)
					} else {
						s = u.Sync(since[i], 0)
					}
					since[i] = s.Get("next_batch").String()
					tok, err := inbox.ParseToken(since[i])
					if err != nil {
						t.Fatalf("parse %q: %v", since[i], err)
					}
					want, err := srv.Srv.Store.UnreadCountsByThread(context.Background(), u.UserID, roomIDs, tok.Pos)
					if err != nil {
						t.Fatal(err)
					}
					for _, r := range roomIDs {
						room := hstest.Room(s, "join", r)
						un := room.Get("unread_notifications")
						if !un.Exists() {
							continue // no news in the room: no count sent
						}
						pair := func(g gjson.Result) [2]int64 {
							return [2]int64{g.Get("notification_count").Int(), g.Get("highlight_count").Int()}
						}
						w := want[r].Total()
						if byThread {
							w = want[r].Main
						}
						if got := pair(un); got != [2]int64{w.Notifications, w.Highlights} {
							t.Fatalf("step %d (%s): %s's unread in %s = %v, want %v (the query's)", step, what, u.UserID, r, got, w)
						}
						if !byThread {
							continue
						}
						threads := room.Get("unread_thread_notifications").Map()
						for root, wt := range want[r].Threads {
							if got := pair(threads[root]); got != [2]int64{wt.Notifications, wt.Highlights} {
								t.Fatalf("step %d (%s): %s's unread in thread %s = %v, want %v (the query's)", step, what, u.UserID, root, got, wt)
							}
						}
						for root := range threads {
							if _, ok := want[r].Threads[root]; !ok {
								t.Fatalf("step %d (%s): thread %s has a count, the query none", step, what, root)
							}
						}
					}
				}
			}
			for step := range 60 {
				u := users[rng.IntN(len(users))]
				room := roomIDs[rng.IntN(len(roomIDs))]
				path := "/_matrix/client/v3/rooms/" + hstest.Esc(room)
				txn := fmt.Sprint("t", step)
				var what string
				send := func(content map[string]any) {
					id := u.MustDo("PUT", path+"/send/m.room.message/"+txn, content).Get("event_id").String()
					sent[room] = append(sent[room], id)
				}
				switch op := rng.IntN(11); {
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
				case op == 7 && len(sent[room]) > 0:
					root := sent[room][rng.IntN(len(sent[room]))]
					what = "thread reply to " + root
					content := map[string]any{"msgtype": "m.text", "body": "in thread",
						"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}}
					if rng.IntN(3) == 0 {
						content["m.mentions"] = map[string]any{"user_ids": []string{users[rng.IntN(len(users))].UserID}}
					}
					id := u.MustDo("PUT", path+"/send/m.room.message/"+txn, content).Get("event_id").String()
					if inThread[room] == nil {
						inThread[room] = map[string]string{}
					}
					inThread[room][id] = root
				case op <= 9 && len(inThread[room]) > 0:
					replies := slices.Sorted(maps.Keys(inThread[room]))
					ev := replies[rng.IntN(len(replies))]
					body := map[string]any{"thread_id": inThread[room][ev]}
					if rng.IntN(3) == 0 {
						body = map[string]any{} // unthreaded, at a thread reply
					}
					typ := []string{"m.read", "m.read.private"}[rng.IntN(2)]
					what = fmt.Sprintf("%s receipt %v at a thread reply by %s", typ, body, u.UserID)
					u.MustDo("POST", path+"/receipt/"+typ+"/"+hstest.Esc(ev), body)
				case op == 10 && len(sent[room]) > 0:
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
