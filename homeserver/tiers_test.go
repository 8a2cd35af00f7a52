package homeserver_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// tierServer starts a server whose rooms turn large above two members.
func tierServer(t *testing.T, st hstest.Store, mutate func(*config.RoomTiers)) *hstest.Server {
	return hstest.Start(t, hstest.Options{Store: st, Mutate: func(c *config.Config) {
		c.RoomTiers = config.RoomTiers{LargeAbove: 2, HugeAbove: 10}
		if mutate != nil {
			mutate(&c.RoomTiers)
		}
	}})
}

func syncFiltered(c *hstest.Client, since, filter string) gjson.Result {
	q := url.Values{"timeout": {"0"}, "filter": {filter}}
	if since != "" {
		q.Set("since", since)
	}
	return c.MustDo("GET", "/_matrix/client/v3/sync?"+q.Encode(), nil)
}

func ephemeral(s gjson.Result, room, typ string) []gjson.Result {
	var out []gjson.Result
	for _, e := range hstest.Room(s, "join", room).Get("ephemeral.events").Array() {
		if e.Get("type").String() == typ {
			out = append(out, e)
		}
	}
	return out
}

func typingUsers(s gjson.Result, room string) string {
	var us []string
	for _, e := range ephemeral(s, room, "m.typing") {
		for _, u := range e.Get("content.user_ids").Array() {
			us = append(us, u.String())
		}
	}
	return strings.Join(us, ",")
}

func receiptUsers(s gjson.Result, room string) string {
	var us []string
	for _, e := range ephemeral(s, room, "m.receipt") {
		e.Get("content").ForEach(func(_, ev gjson.Result) bool {
			ev.Get("m\\.read").ForEach(func(u, _ gjson.Result) bool {
				us = append(us, u.String())
				return true
			})
			return true
		})
	}
	return strings.Join(us, ",")
}

// TestTierTypingAndReceiptsStayWithSender (issue 15 item 20): in a room above
// the small tier, typing and read receipts reach only their sender's own
// devices; in a small room every member still sees them.
func TestTierTypingAndReceiptsStayWithSender(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := tierServer(t, st, nil)
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			small := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			big := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(small)
			bob.Join(big)
			carol.Join(big) // three joined: large
			msgSmall, msgBig := alice.Send(small, "s1", "hello small"), alice.Send(big, "b1", "hello big")
			bobSince := bob.Sync("", 0).Get("next_batch").String()
			aliceSince := alice.Sync("", 0).Get("next_batch").String()

			for _, room := range []string{small, big} {
				bob.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/typing/"+hstest.Esc(bob.UserID), map[string]any{"typing": true, "timeout": 30000})
			}
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(small)+"/receipt/m.read/"+hstest.Esc(msgSmall), map[string]any{})
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(big)+"/receipt/m.read/"+hstest.Esc(msgBig), map[string]any{})

			a := alice.Sync(aliceSince, 0)
			if got := typingUsers(a, small); got != bob.UserID {
				t.Errorf("alice sees typing %q in the small room, want %q", got, bob.UserID)
			}
			if got := receiptUsers(a, small); got != bob.UserID {
				t.Errorf("alice sees receipts of %q in the small room, want %q", got, bob.UserID)
			}
			if got := typingUsers(a, big); got != "" {
				t.Errorf("alice sees typing %q in the large room, want nobody", got)
			}
			if got := receiptUsers(a, big); got != "" {
				t.Errorf("alice sees receipts of %q in the large room, want none", got)
			}
			b := bob.Sync(bobSince, 0)
			if got := typingUsers(b, big); got != bob.UserID {
				t.Errorf("bob's own devices see typing %q in the large room, want %q", got, bob.UserID)
			}
			if got := receiptUsers(b, big); got != bob.UserID {
				t.Errorf("bob's own devices see receipts of %q in the large room, want %q", got, bob.UserID)
			}
			// Typing in the large room alone gives alice nothing to wake for.
			aliceSince = a.Get("next_batch").String()
			bob.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(big)+"/typing/"+hstest.Esc(bob.UserID), map[string]any{"typing": false})
			if got := alice.Sync(aliceSince, 0); hstest.Room(got, "join", big).Exists() {
				t.Errorf("alice's sync after typing in the large room carries the room: %s", hstest.Room(got, "join", big).Raw)
			}
		})
	}
}

func stateOfType(s gjson.Result, room, typ string) []gjson.Result {
	var out []gjson.Result
	for _, e := range hstest.Room(s, "join", room).Get("state.events").Array() {
		if e.Get("type").String() == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestTierShownInStateAndMembersLazy (issue 15 item 20): a room above the
// small tier carries io.parley.room.tier in its sync state, and its member
// list is lazy-loaded even when the filter does not ask for it; a small room
// has no tier event and its full member list.
func TestTierShownInStateAndMembersLazy(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := tierServer(t, st, func(c *config.RoomTiers) { c.MaxMembers = 50 })
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			small := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			big := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(small)
			bob.Join(big)
			carol.Join(big)
			alice.Send(small, "s1", "hello small")
			alice.Send(big, "b1", "hello big")

			s := syncFiltered(bob, "", `{"room":{"timeline":{"limit":1}}}`)
			tier := stateOfType(s, big, "io.parley.room.tier")
			if len(tier) != 1 || tier[0].Get("content.tier").String() != "large" || tier[0].Get("content.max_members").Int() != 10 ||
				tier[0].Get("state_key").String() != "" {
				t.Errorf("large room's tier state = %v, want one io.parley.room.tier {tier: large, max_members: 10}", tier)
			}
			if got := stateOfType(s, small, "io.parley.room.tier"); len(got) != 0 {
				t.Errorf("small room's tier state = %v, want none", got)
			}
			members := func(room string) []string {
				var out []string
				for _, e := range stateOfType(s, room, "m.room.member") {
					out = append(out, e.Get("state_key").String())
				}
				return out
			}
			if got := members(big); len(got) != 2 || strings.Contains(strings.Join(got, ","), carol.UserID) {
				t.Errorf("large room's members in state = %v, want only bob and alice (the timeline's sender): lazy-loaded", got)
			}
			if got := members(small); len(got) != 2 {
				t.Errorf("small room's members in state = %v, want both", got)
			}

			// State reads show it too.
			if got := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(big)+"/state/io.parley.room.tier", nil); got.Get("tier").String() != "large" {
				t.Errorf("GET state io.parley.room.tier of the large room = %s, want tier large", got.Raw)
			}
			if st, got := bob.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(small)+"/state/io.parley.room.tier", nil); st != 404 {
				t.Errorf("GET state io.parley.room.tier of the small room = %d %s, want 404", st, got.Raw)
			}

			// A member joining later sees the tier in the room's summary state.
			since := s.Get("next_batch").String()
			dave := srv.Register(t, "dave")
			dave.Join(big)
			s = syncFiltered(bob, since, `{"room":{"timeline":{"limit":5}}}`)
			if got := stateOfType(s, big, "io.parley.room.tier"); len(got) != 1 || got[0].Get("content.tier").String() != "large" {
				t.Errorf("after a join, bob's incremental sync carries tier state %v, want large", got)
			}
		})
	}
}

// TestTierCapRefusesJoins (issue 15 item 20): a join beyond max_members is
// refused with 403 M_FORBIDDEN on every route that writes a membership, and
// nothing is written; leaving makes room again.
func TestTierCapRefusesJoins(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := tierServer(t, st, func(c *config.RoomTiers) { c.MaxMembers = 3 })
			alice, bob, carol, dave := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol"), srv.Register(t, "dave")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			carol.Join(room)
			path := "/_matrix/client/v3/rooms/" + hstest.Esc(room)
			for _, c := range []struct {
				name, method, path string
				body               any
			}{
				{"join", "POST", "/_matrix/client/v3/join/" + hstest.Esc(room), map[string]any{}},
				{"rooms join", "POST", path + "/join", map[string]any{}},
				{"state PUT", "PUT", path + "/state/m.room.member/" + hstest.Esc(dave.UserID), map[string]any{"membership": "join"}},
			} {
				st, res := dave.Do(c.method, c.path, c.body)
				if st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" || !strings.Contains(res.Get("error").String(), "full") {
					t.Errorf("%s into a full room = %d %s, want 403 M_FORBIDDEN saying the room is full", c.name, st, res.Raw)
				}
			}
			if got := alice.MustDo("GET", path+"/joined_members", nil).Get("joined").Map(); len(got) != 3 {
				t.Errorf("joined members = %d, want 3", len(got))
			}
			carol.MustDo("POST", path+"/leave", map[string]any{})
			dave.Join(room)
		})
	}
}

// TestTierHugeModeratorsOnly (issue 15 item 20): with huge_moderators_only,
// in a huge room only moderators may post; members may still leave.
func TestTierHugeModeratorsOnly(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st, Mutate: func(c *config.Config) {
				c.RoomTiers = config.RoomTiers{LargeAbove: 1, HugeAbove: 2, HugeModeratorsOnly: true}
			}})
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			bob.Send(room, "b0", "two members: anyone posts")
			carol.Join(room) // three: huge
			st, res := bob.Do("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/b1", map[string]any{"msgtype": "m.text", "body": "x"})
			if st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("a member's post in a huge moderators-only room = %d %s, want 403 M_FORBIDDEN", st, res.Raw)
			}
			alice.Send(room, "a1", "the creator is a moderator")
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/leave", map[string]any{})
		})
	}
}

func presenceOf(s gjson.Result, user string) bool {
	for _, e := range s.Get("presence.events").Array() {
		if e.Get("sender").String() == user {
			return true
		}
	}
	return false
}

// TestTierPresenceStaysOutOfBigRooms (issue 15 item 20): a member's presence
// reaches peers who share a small room with them, not peers who share only a
// room above the small tier.
func TestTierPresenceStaysOutOfBigRooms(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := tierServer(t, st, nil)
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			small := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			big := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(small) // bob shares a small room with alice
			bob.Join(big)
			carol.Join(big) // carol shares only the large room
			bobSince := syncFiltered(bob, "", `{}`).Get("next_batch").String()
			carolSince := syncFiltered(carol, "", `{}`).Get("next_batch").String()
			dave := srv.Register(t, "dave")
			carolsOwn := carol.CreateRoom(map[string]any{"preset": "public_chat"})
			dave.Join(carolsOwn) // a small room: dave's presence reaches carol
			carolSince = syncFiltered(carol, carolSince, `{}`).Get("next_batch").String()
			alice.MustDo("PUT", "/_matrix/client/v3/presence/"+hstest.Esc(alice.UserID)+"/status", map[string]any{"presence": "online", "status_msg": "here"})
			// Dave's change gives carol presence news of her own, so her sync reads presence.
			dave.MustDo("PUT", "/_matrix/client/v3/presence/"+hstest.Esc(dave.UserID)+"/status", map[string]any{"presence": "online"})
			if !presenceOf(syncFiltered(bob, bobSince, `{}`), alice.UserID) {
				t.Errorf("bob, in a small room with alice, got no presence of hers")
			}
			cs := syncFiltered(carol, carolSince, `{}`)
			if !presenceOf(cs, dave.UserID) {
				t.Errorf("carol got no presence of dave, who shares a small room with her")
			}
			if presenceOf(cs, alice.UserID) {
				t.Errorf("carol, sharing only a large room with alice, got her presence")
			}
		})
	}
}
