package synapse_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestSynapseMembership: leave, kick, ban (a banned user cannot rejoin)
// and a power-level change, each both ways: once in a room Parley holds
// with a Synapse guest, once in a room Synapse holds with a Parley guest.
func TestSynapseMembership(t *testing.T) {
	syn := needSynapse(t)
	for _, st := range stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			p := startParley(t, st)
			alice := p.Register(t, "alice")
			bob := syn.Register(t, uniq("bob"))
			for _, dir := range []struct {
				name        string
				home, guest *hstest.Client
				homeServer  string
				guestServer string
			}{
				{"in a Parley room", alice, bob, p.FedName, syn.Name},
				{"in a Synapse room", bob, alice, syn.Name, p.FedName},
			} {
				t.Run(dir.name, func(t *testing.T) {
					home, guest := dir.home.WithT(t), dir.guest.WithT(t)

					t.Run("leave, kick, ban, power levels", func(t *testing.T) {
						home, guest := home.WithT(t), guest.WithT(t)
						room := home.CreateRoom(map[string]any{"preset": "public_chat"})
						join := func() {
							t.Helper()
							if st, res := joinVia(guest, room, dir.homeServer); st != 200 {
								t.Fatalf("%s joins %s = %d %s, want 200", guest.UserID, room, st, res.Raw)
							}
							waitMembership(t, home, room, guest.UserID, "join")
						}
						roomPath := "/_matrix/client/v3/rooms/" + hstest.Esc(room)

						// A power-level change takes effect on the guest's server.
						join()
						if st, _ := guest.Do("PUT", roomPath+"/state/m.room.topic/", map[string]any{"topic": "guest's"}); st == 200 {
							t.Fatalf("%s (power 0) set the topic; want it refused", guest.UserID)
						}
						pl := home.MustDo("GET", roomPath+"/state/m.room.power_levels/", nil)
						users := pl.Get("users").Value().(map[string]any)
						users[guest.UserID] = 50
						plBody := pl.Value().(map[string]any)
						plBody["users"] = users
						home.MustDo("PUT", roomPath+"/state/m.room.power_levels/", plBody)
						hstest.Eventually(t, guest.UserID+" may set the topic", func() bool {
							st, _ := guest.Do("PUT", roomPath+"/state/m.room.topic/", map[string]any{"topic": "guest's"})
							return st == 200
						})
						hstest.Eventually(t, home.UserID+" sees the guest's topic", func() bool {
							st, res := home.Do("GET", roomPath+"/state/m.room.topic/", nil)
							return st == 200 && res.Get("topic").String() == "guest's"
						})

						// Leave.
						guest.MustDo("POST", roomPath+"/leave", map[string]any{})
						waitMembership(t, home, room, guest.UserID, "leave")

						// Kick: the guest's server learns it.
						join()
						home.MustDo("POST", roomPath+"/kick", map[string]any{"user_id": guest.UserID, "reason": "test"})
						waitLeft(t, guest, room, "leave")

						// Ban: the guest's server learns it, and a rejoin is refused.
						join()
						home.MustDo("POST", roomPath+"/ban", map[string]any{"user_id": guest.UserID, "reason": "test"})
						waitLeft(t, guest, room, "ban")
						if st, res := joinVia(guest, room, dir.homeServer); st == 200 {
							t.Errorf("banned %s rejoined %s: %s; want a refusal", guest.UserID, room, res.Raw)
						}
						if got := membership(home, room, guest.UserID); got != "ban" {
							t.Errorf("%s's membership at the resident server = %q, want ban", guest.UserID, got)
						}
					})
				})
			}
		})
	}
}

// TestSynapseInvites: invites both ways, accepted and rejected: a Parley
// user invites a Synapse user into a Parley room, and the other way.
func TestSynapseInvites(t *testing.T) {
	syn := needSynapse(t)
	for _, st := range stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			p := startParley(t, st)
			alice := p.Register(t, "alice")
			bob := syn.Register(t, uniq("bob"))
			for _, dir := range []struct {
				name        string
				home, guest *hstest.Client
				homeServer  string
				guestServer string
			}{
				{"in a Parley room", alice, bob, p.FedName, syn.Name},
				{"in a Synapse room", bob, alice, syn.Name, p.FedName},
			} {
				t.Run(dir.name, func(t *testing.T) {
					home, guest := dir.home.WithT(t), dir.guest.WithT(t)

					t.Run("invite accepted", func(t *testing.T) {
						home, guest := home.WithT(t), guest.WithT(t)
						room := home.CreateRoom(map[string]any{"preset": "private_chat"})
						home.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/invite", map[string]any{"user_id": guest.UserID})
						waitInvited(t, guest, room)
						if st, res := joinVia(guest, room, dir.homeServer); st != 200 {
							t.Fatalf("%s accepts the invite to %s = %d %s, want 200", guest.UserID, room, st, res.Raw)
						}
						waitMembership(t, home, room, guest.UserID, "join")
						sameState(t, home, guest, room)
					})

					t.Run("invite rejected", func(t *testing.T) {
						home, guest := home.WithT(t), guest.WithT(t)
						room := home.CreateRoom(map[string]any{"preset": "private_chat"})
						home.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/invite", map[string]any{"user_id": guest.UserID})
						waitInvited(t, guest, room)
						guest.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/leave", map[string]any{})
						waitMembership(t, home, room, guest.UserID, "leave")
					})

				})
			}
		})
	}
}

// waitInvited waits until c's /sync shows an invite to room.
func waitInvited(t *testing.T, c *hstest.Client, room string) {
	t.Helper()
	syncUntil(t, c, "", c.UserID+" sees the invite to "+room, func(sync gjson.Result) bool {
		return hstest.Room(sync, "invite", room).Exists()
	})
}

// includeLeave is a /sync filter that lists the rooms the user left.
var includeLeave = "&filter=" + url.QueryEscape(`{"room":{"include_leave":true}}`)

// waitLeft waits until c's own server shows c's membership of room as want
// (leave or ban) in the leave section of /sync.
func waitLeft(t *testing.T, c *hstest.Client, room, want string) {
	t.Helper()
	syncUntil(t, c, includeLeave, c.UserID+" sees itself "+want+" in "+room, func(sync gjson.Result) bool {
		for _, ev := range hstest.Room(sync, "leave", room).Get("timeline.events").Array() {
			if ev.Get("type").String() == "m.room.member" && ev.Get("state_key").String() == c.UserID &&
				ev.Get("content.membership").String() == want {
				return true
			}
		}
		return false
	})
}

// syncUntil runs an initial /sync and then incremental ones until cond
// holds on one of them. Repeating initial syncs would not do: Synapse
// answers the same initial sync from a cache for minutes.
func syncUntil(t *testing.T, c *hstest.Client, query, what string, cond func(gjson.Result) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	res := c.MustDo("GET", "/_matrix/client/v3/sync?timeout=0"+query, nil)
	for !cond(res) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		res = c.MustDo("GET", "/_matrix/client/v3/sync?timeout=500"+query+"&since="+url.QueryEscape(res.Get("next_batch").String()), nil)
	}
}
