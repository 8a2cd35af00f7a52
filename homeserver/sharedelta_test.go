package homeserver_test

import (
	"fmt"
	"net/url"
	"regexp"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// agePattern matches the per-member part of a shared room delta.
var agePattern = regexp.MustCompile(`"age":[0-9]+`)

// roomHead is a room's timeline and state as a member's sync shows them,
// ages blanked: what members woken by one commit share (inbox/delta.go).
func roomHead(s gjson.Result, room string) string {
	r := hstest.Room(s, "join", room)
	return agePattern.ReplaceAllString(r.Get("timeline").Raw+r.Get("state").Raw, `"age":_`)
}

// TestSharedRoomDelta (issue 15 item 21): the members woken by one commit
// share one rendered room delta. Two members get the same bytes (but for
// each event's age, which stays theirs); the sending device still gets its
// transaction_id and the sender's other device does not; a member event in
// the timeline is shared too; and after a redaction a sync from the same
// token shows the redacted event, not a stale rendered copy. With no filter
// and with Element's lazy-loading filter, on both stores.
func TestSharedRoomDelta(t *testing.T) {
	for _, filter := range []string{"", lazyFilter} {
		for _, st := range hstest.Stores(t) {
			t.Run(fmt.Sprintf("%s/filter=%.20s", st.Name, filter), func(t *testing.T) {
				srv := hstest.Start(t, hstest.Options{Store: st})
				alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
				alice2 := srv.Login(t, "alice")
				room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
				bob.Join(room)
				carol.Join(room)
				sync := func(c *hstest.Client, since string) gjson.Result {
					q := url.Values{"timeout": {"0"}}
					if filter != "" {
						q.Set("filter", filter)
					}
					if since != "" {
						q.Set("since", since)
					}
					return c.MustDo("GET", "/_matrix/client/v3/sync?"+q.Encode(), nil)
				}
				clients := []*hstest.Client{alice, alice2, bob, carol}
				since := map[*hstest.Client]string{}
				for _, c := range clients {
					since[c] = sync(c, "").Get("next_batch").String()
				}

				before := map[*hstest.Client]string{bob: since[bob], carol: since[carol]}
				eventID := alice.Send(room, "txn-one", "one")
				hits0, _ := srv.Srv.Notifier.DeltaStats()
				got := map[*hstest.Client]gjson.Result{}
				for _, c := range []*hstest.Client{bob, carol, alice, alice2} {
					got[c] = sync(c, since[c])
				}
				if hits, _ := srv.Srv.Notifier.DeltaStats(); hits <= hits0 {
					t.Errorf("shared delta hits went from %d to %d, want more: carol's sync did not reuse bob's", hits0, hits)
				}
				if b, c := roomHead(got[bob], room), roomHead(got[carol], room); b != c || b == "" {
					t.Errorf("bob's and carol's room differ:\nbob   %s\ncarol %s", b, c)
				}
				if b, a2 := roomHead(got[bob], room), roomHead(got[alice2], room); b != a2 {
					t.Errorf("alice's other device's room differs from bob's:\nalice2 %s\nbob    %s", a2, b)
				}
				for _, c := range clients {
					evs := hstest.Room(got[c], "join", room).Get("timeline.events").Array()
					if len(evs) != 1 || evs[0].Get("event_id").String() != eventID {
						t.Fatalf("%s's timeline = %s, want only %s", c.DeviceID, hstest.Room(got[c], "join", room).Get("timeline").Raw, eventID)
					}
					txn := evs[0].Get("unsigned.transaction_id")
					if want := c == alice; txn.Exists() != want || (want && txn.String() != "txn-one") {
						t.Errorf("%s's event has unsigned.transaction_id %s, want it only on the sending device", c.DeviceID, txn.Raw)
					}
					if age := evs[0].Get("unsigned.age"); age.Type != gjson.Number || age.Int() < 0 {
						t.Errorf("%s's event has unsigned.age %s, want a non-negative number", c.DeviceID, age.Raw)
					}
				}

				// A later message makes a new delta: a sync from the old
				// token gets both messages, not the first one's copy.
				alice.Send(room, "txn-two", "two")
				if got := hstest.Bodies(sync(carol, before[carol]), room); len(got) != 2 || got[0] != "one" || got[1] != "two" {
					t.Errorf("carol's sync from before both messages has bodies %v, want [one two]", got)
				}
				for _, c := range []*hstest.Client{bob, carol} {
					got[c] = sync(c, since[c])
				}

				// A member event in the timeline (and, lazy-loading, its
				// member in the state) is shared too.
				for _, c := range []*hstest.Client{bob, carol} {
					since[c] = got[c].Get("next_batch").String()
				}
				dave := srv.Register(t, "dave")
				dave.Join(room)
				db, dc := sync(bob, since[bob]), sync(carol, since[carol])
				if b, c := roomHead(db, room), roomHead(dc, room); b != c {
					t.Errorf("after dave's join bob's and carol's room differ:\nbob   %s\ncarol %s", b, c)
				}
				if typ := hstest.Room(db, "join", room).Get("timeline.events.0.state_key").String(); typ != dave.UserID {
					t.Errorf("bob's timeline after dave's join = %s, want dave's member event", hstest.Room(db, "join", room).Get("timeline").Raw)
				}

				// A redaction: a sync from the token before the message must
				// show the redacted copy, whoever rendered it first.
				alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/redact/"+hstest.Esc(eventID)+"/r1",
					map[string]any{"reason": "oops"})
				for _, c := range []*hstest.Client{bob, carol} {
					s := sync(c, before[c])
					found := false
					for _, e := range hstest.Room(s, "join", room).Get("timeline.events").Array() {
						if e.Get("event_id").String() != eventID {
							continue
						}
						found = true
						if body := e.Get("content.body"); body.Exists() {
							t.Errorf("%s sees the redacted event with body %s, want its content gone", c.UserID, body.Raw)
						}
					}
					if !found {
						t.Errorf("%s's sync from before the message lacks it: %s", c.UserID, hstest.Room(s, "join", room).Get("timeline").Raw)
					}
				}
			})
		}
	}
}
