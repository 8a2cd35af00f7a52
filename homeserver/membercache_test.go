package homeserver_test

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

const lazyFilter = `{"room":{"state":{"lazy_load_members":true}}}`

func lazySync(c *hstest.Client, since string) gjson.Result {
	q := "/_matrix/client/v3/sync?timeout=0&filter=" + url.QueryEscape(lazyFilter)
	if since != "" {
		q += "&since=" + url.QueryEscape(since)
	}
	return c.MustDo("GET", q, nil)
}

// senderMember returns the content of the sender's member event in a room's
// lazy-loaded state.
func senderMember(s gjson.Result, room, sender string) gjson.Result {
	for _, e := range hstest.Room(s, "join", room).Get("state.events").Array() {
		if e.Get("type").String() == "m.room.member" && e.Get("state_key").String() == sender {
			return e.Get("content")
		}
	}
	return gjson.Result{}
}

// TestLazyMembersFromMemory (issue 15 item 21): with lazy-loaded members (as
// every member of a big room is), a woken member gets the sender's member
// event without a query once another member read it; a change of the
// sender's member event shows in the next sync.
func TestLazyMembersFromMemory(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			carol.Join(room)
			bobSince := lazySync(bob, "").Get("next_batch").String()
			carolSince := lazySync(carol, "").Get("next_batch").String()
			alice.Send(room, "m0", "zero")
			bobSince = lazySync(bob, bobSince).Get("next_batch").String()
			carolSince = lazySync(carol, carolSince).Get("next_batch").String()
			alice.Send(room, "m1", "one")

			bobSince = lazySync(bob, bobSince).Get("next_batch").String()
			q0 := srv.Srv.Store.Queries()
			s := lazySync(carol, carolSince)
			carolSince = s.Get("next_batch").String()
			if got := srv.Srv.Store.Queries() - q0; got != 0 {
				t.Errorf("the second woken member's lazy-loading sync made %d queries, want 0", got)
			}
			if m := senderMember(s, room, alice.UserID); m.Get("membership").String() != "join" {
				t.Errorf("carol's state lacks alice's member event: %s", hstest.Room(s, "join", room).Get("state").Raw)
			}

			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(alice.UserID),
				map[string]any{"membership": "join", "displayname": "Alice Two"})
			bobSince = lazySync(bob, bobSince).Get("next_batch").String()
			carolSince = lazySync(carol, carolSince).Get("next_batch").String()
			alice.Send(room, "m2", "two")
			for _, c := range []struct {
				cl    *hstest.Client
				since string
			}{{bob, bobSince}, {carol, carolSince}} {
				s := lazySync(c.cl, c.since)
				if got := senderMember(s, room, alice.UserID).Get("displayname").String(); got != "Alice Two" {
					t.Errorf("%s sees alice's displayname %q after the change, want %q", c.cl.UserID, got, "Alice Two")
				}
			}
		})
	}
}

// TestWokenMemberMakesNoQuery (issue 15 item 21): in a small room and in a
// large one (above room_tiers.large_above, where members are lazy-loaded and
// receipts stay with their owner), with no filter, Element's lazy-loading
// filter and cmd/parley-bench's long-poll filter, the second member woken
// by a message makes no query: the timeline, unread counts, member events,
// push rules and one-time-key counts all come from memory.
func TestWokenMemberMakesNoQuery(t *testing.T) {
	for _, large := range []bool{false, true} {
		for _, filter := range []string{"", lazyFilter, benchPollFilter} {
			for _, st := range hstest.Stores(t) { // a fresh database per case
				t.Run(fmt.Sprintf("%s/large=%v/filter=%.20s", st.Name, large, filter), func(t *testing.T) {
					var srv *hstest.Server
					if large {
						srv = tierServer(t, st, nil)
					} else {
						srv = hstest.Start(t, hstest.Options{Store: st})
					}
					alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
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
					bobSince := sync(bob, "").Get("next_batch").String()
					carolSince := sync(carol, "").Get("next_batch").String()
					alice.Send(room, "m0", "zero")
					bobSince = sync(bob, bobSince).Get("next_batch").String()
					carolSince = sync(carol, carolSince).Get("next_batch").String()
					alice.Send(room, "m1", "one")
					sync(bob, bobSince)
					q0 := srv.Srv.Store.Queries()
					s := sync(carol, carolSince)
					if got := srv.Srv.Store.Queries() - q0; got != 0 {
						t.Errorf("the second woken member's sync made %d queries, want 0", got)
					}
					if got := hstest.Bodies(s, room); len(got) != 1 || got[0] != "one" {
						t.Errorf("carol's sync bodies = %v, want [one]", got)
					}
				})
			}
		}
	}
}
