package homeserver_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// pageHistory pages c's /messages backwards from the end of the room with
// limit per page, and returns the m.room.message bodies, oldest first, and
// every event ID seen (to find duplicates).
func pageHistory(t *testing.T, c *hstest.Client, room string, limit int) (bodies, ids []string) {
	t.Helper()
	from := ""
	for page := 0; page < 1000; page++ {
		q := fmt.Sprintf("/_matrix/client/v3/rooms/%s/messages?dir=b&limit=%d", hstest.Esc(room), limit)
		if from != "" {
			q += "&from=" + url.QueryEscape(from)
		}
		res := c.MustDo("GET", q, nil)
		for _, ev := range res.Get("chunk").Array() {
			ids = append(ids, ev.Get("event_id").String())
			if ev.Get("type").String() == "m.room.message" {
				bodies = append(bodies, ev.Get("content.body").String())
			}
		}
		end := res.Get("end")
		if !end.Exists() {
			break
		}
		from = end.String()
	}
	slices.Reverse(bodies)
	return bodies, ids
}

// duplicates returns the IDs that occur more than once.
func duplicates(ids []string) []string {
	seen := map[string]int{}
	var out []string
	for _, id := range ids {
		if seen[id]++; seen[id] == 2 {
			out = append(out, id)
		}
	}
	return out
}

// TestFederationBackfill: a user of B joins a room of A after 500
// messages and pages back through all of them with /messages, which B
// fills from A through federation backfill: every message once, in order;
// none of them in B's /sync; paging again gives the same history without
// asking A again. In a room whose history is visible to joined members
// only, the late joiner gets none of it, as for local history.
func TestFederationBackfill(t *testing.T) {
	const n = 500
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			bob := b.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "name": "Old talk"})
			want := make([]string, n)
			for i := range want {
				want[i] = fmt.Sprintf("m-%04d", i)
				alice.Send(room, want[i], want[i])
			}
			hidden := alice.CreateRoom(map[string]any{"preset": "public_chat", "initial_state": []map[string]any{
				{"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "joined"}}}})
			for i := 0; i < 30; i++ {
				alice.Send(hidden, fmt.Sprintf("h-%d", i), fmt.Sprintf("secret-%d", i))
			}
			// History visible to invited members: B may read it (carol, of
			// B, is invited), but bob, who joins later, may not.
			carol := b.Register(t, "carol")
			invited := alice.CreateRoom(map[string]any{"preset": "public_chat", "invite": []string{carol.UserID}, "initial_state": []map[string]any{
				{"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": "invited"}}}})
			hstest.Eventually(t, "carol's invite on B", func() bool {
				return memberOn(carol, invited, carol.UserID) == "invite" || carol.Sync("", 0).Get("rooms.invite").Exists()
			})
			for i := 0; i < 30; i++ {
				alice.Send(invited, fmt.Sprintf("i-%d", i), fmt.Sprintf("secret-%d", i))
			}
			unread := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			for i := 0; i < 20; i++ {
				alice.Send(unread, fmt.Sprintf("u-%d", i), fmt.Sprintf("unread-%d", i))
			}
			since := bob.Sync("", 0).Get("next_batch").String()
			joinVia(t, bob, room, a.FedName)
			joinVia(t, bob, hidden, a.FedName)
			joinVia(t, bob, invited, a.FedName)
			joinVia(t, bob, unread, a.FedName)
			alice.Send(room, "after", "after the join")
			hstest.Eventually(t, "A's message after the join on B", func() bool { return hasBody(bob, room, "after the join") })

			for _, limit := range []int{100, 37} { // the second pass reads what the first stored
				got, ids := pageHistory(t, bob, room, limit)
				want := append(slices.Clone(want), "after the join")
				if !slices.Equal(got, want) {
					t.Errorf("limit %d: bob reads %d messages (first %q, last %q), want %d from m-0000 to %q in order",
						limit, len(got), first(got), last(got), len(want), want[len(want)-1])
				}
				if d := duplicates(ids); len(d) > 0 {
					t.Errorf("limit %d: events served twice: %q", limit, d)
				}
			}
			for _, r := range []string{hidden, invited} {
				got, _ := pageHistory(t, bob, r, 50)
				for _, body := range got {
					if strings.HasPrefix(body, "secret-") {
						t.Errorf("bob reads %q from before his join in a room whose history he may not see", body)
					}
				}
			}
			sync := bob.Sync(since, 0)
			for _, r := range []string{room, hidden, invited} {
				for _, body := range hstest.Bodies(sync, r) {
					if strings.HasPrefix(body, "m-") || strings.HasPrefix(body, "secret-") {
						t.Errorf("bob's /sync holds backfilled history %q", body)
					}
				}
			}
			if next := sync.Get("next_batch").String(); next != "" {
				if bodies := hstest.Bodies(bob.Sync(next, 0), room); len(bodies) > 0 {
					t.Errorf("bob's incremental /sync after paging = %q, want nothing new", bodies)
				}
			}
			// A down: /messages answers with what B holds, not an error.
			a.Stop()
			got, _ := pageHistory(t, bob, unread, 10)
			for _, body := range got {
				if strings.HasPrefix(body, "unread-") {
					t.Errorf("bob reads %q with A down, before any backfill", body)
				}
			}
		})
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// TestFederationBackfillContextAndForward: history B lacks is fetched
// from A (federation backfill, as backwards /messages does) also by
// /context around the oldest event B holds (its neighbours sit in the gap
// before it) and by /messages paging forwards from the room's beginning
// across that gap: every message once, in order.
func TestFederationBackfillContextAndForward(t *testing.T) {
	const n = 300
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			bob := b.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			want := make([]string, n)
			ids := make([]string, n)
			for i := range want {
				want[i] = fmt.Sprintf("m-%04d", i)
				ids[i] = alice.Send(room, want[i], want[i])
			}
			joinVia(t, bob, room, a.FedName)
			// One backwards page: B fills one /backfill's worth, and the
			// gap before it stays.
			bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=b&limit=10", nil)
			held := func(i int) bool {
				code, _ := bob.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/event/"+hstest.Esc(ids[i]), nil)
				return code == 200
			}
			// The oldest message held: what B holds is a suffix of them.
			lo, hi := 0, n-1
			for lo < hi {
				mid := (lo + hi) / 2
				if held(mid) {
					hi = mid
				} else {
					lo = mid + 1
				}
			}
			k := lo
			if k < 10 || !held(k) {
				t.Fatalf("the oldest message B holds after one page is m-%04d (held: %v), want one well after m-0010", k, held(k))
			}

			ctx := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/context/"+hstest.Esc(ids[k])+"?limit=10", nil)
			var before []string
			for _, ev := range ctx.Get("events_before").Array() {
				before = append(before, ev.Get("content.body").String())
			}
			if wantBefore := []string{want[k-1], want[k-2], want[k-3], want[k-4], want[k-5]}; !slices.Equal(before, wantBefore) {
				t.Errorf("/context of m-%04d: events_before = %q, want %q", k, before, wantBefore)
			}

			var got []string
			var seen []string
			from := ""
			for page := 0; page < 100; page++ {
				q := "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/messages?dir=f&limit=50"
				if from != "" {
					q += "&from=" + url.QueryEscape(from)
				}
				res := bob.MustDo("GET", q, nil)
				chunk := res.Get("chunk").Array()
				for _, ev := range chunk {
					seen = append(seen, ev.Get("event_id").String())
					if ev.Get("type").String() == "m.room.message" {
						got = append(got, ev.Get("content.body").String())
					}
				}
				if len(chunk) == 0 || !res.Get("end").Exists() {
					break
				}
				from = res.Get("end").String()
			}
			if !slices.Equal(got, want) {
				t.Errorf("paging forwards bob reads %d messages (first %q, last %q), want %d from m-0000 to m-%04d in order",
					len(got), first(got), last(got), n, n-1)
			}
			if d := duplicates(seen); len(d) > 0 {
				t.Errorf("paging forwards: events served twice: %q", d)
			}
		})
	}
}
