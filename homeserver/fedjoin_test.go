package homeserver_test

import (
	"net/url"
	"slices"
	"sort"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// stateIDs returns a room's /state event IDs, sorted.
func stateIDs(t *testing.T, c *hstest.Client, roomID string) []string {
	t.Helper()
	var out []string
	for _, e := range c.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(roomID)+"/state", nil).Array() {
		out = append(out, e.Get("type").String()+"|"+e.Get("state_key").String()+"|"+e.Get("event_id").String())
	}
	sort.Strings(out)
	return out
}

// joinVia joins c to roomID through server (server_name).
func joinVia(t *testing.T, c *hstest.Client, idOrAlias, server string) {
	t.Helper()
	c.MustDo("POST", "/_matrix/client/v3/join/"+hstest.Esc(idOrAlias)+"?server_name="+url.QueryEscape(server), map[string]any{})
}

// hasBody reports whether c's room log holds a message with body.
func hasBody(c *hstest.Client, roomID, body string) bool {
	return slices.Contains(c.MessageBodies(roomID), body)
}

// TestFederationJoinByRoomID: a public room made on A is joined from B by
// its ID with server_name (make_join, send_join v2, the answer checked and
// stored on B); messages go both ways and reach /sync and /messages on
// both; both servers end with the same /state event IDs.
func TestFederationJoinByRoomID(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			bob := b.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "name": "Across"})
			joinVia(t, bob, room, a.FedName)

			hstest.Eventually(t, "bob's join on A", func() bool {
				return alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(bob.UserID), nil).Get("membership").String() == "join"
			})
			t.Logf("B state: %v", stateIDs(t, bob, room))
			if got := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.name/", nil).Get("name").String(); got != "Across" {
				t.Errorf("room name on B = %q, want Across", got)
			}
			alice.Send(room, "a1", "from A")
			hstest.Eventually(t, "A's message on B", func() bool { return hasBody(bob, room, "from A") })
			bob.Send(room, "b1", "from B")
			hstest.Eventually(t, "B's message on A", func() bool { return hasBody(alice, room, "from B") })
			sync := bob.Sync("", 0)
			if bodies := hstest.Bodies(sync, room); !slices.Contains(bodies, "from A") || !slices.Contains(bodies, "from B") {
				t.Errorf("bob's sync timeline bodies = %q, want both messages", bodies)
			}
			hstest.Eventually(t, "same /state on both", func() bool {
				return slices.Equal(stateIDs(t, alice, room), stateIDs(t, bob, room))
			})
		})
	}
}

// memberOn reads user's membership in roomID as c's server holds it ("" when none).
func memberOn(c *hstest.Client, roomID, user string) string {
	code, res := c.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(roomID)+"/state/m.room.member/"+hstest.Esc(user), nil)
	if code != 200 {
		return ""
	}
	return res.Get("membership").String()
}

// TestFederationInvite: alice on A invites bob on B (invite v2: B runs its
// invite policy, signs, and gives bob the invite with the stripped state in
// /sync); bob accepts one invite (a join through A) and rejects another (a
// leave through A's make_leave/send_leave); A sees both.
func TestFederationInvite(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			bob := b.Register(t, "bob")
			accept := alice.CreateRoom(map[string]any{"preset": "private_chat", "name": "Accept me"})
			reject := alice.CreateRoom(map[string]any{"preset": "private_chat", "name": "Reject me"})
			for _, room := range []string{accept, reject} {
				alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/invite", map[string]any{"user_id": bob.UserID})
				if got := memberOn(alice, room, bob.UserID); got != "invite" {
					t.Fatalf("bob's membership on A after the invite = %q, want invite", got)
				}
			}
			sync := bob.Sync("", 0)
			inv := sync.Get("rooms.invite." + apiKey(accept) + ".invite_state.events")
			names := map[string]string{}
			for _, e := range inv.Array() {
				names[e.Get("type").String()+"|"+e.Get("state_key").String()] = e.Get("content.name").String() + e.Get("content.membership").String()
			}
			if names["m.room.name|"] != "Accept me" || names["m.room.member|"+bob.UserID] != "invite" || names["m.room.member|"+alice.UserID] != "join" {
				t.Errorf("bob's invite_state = %v, want the room name, his invite and alice's join", names)
			}
			if _, ok := names["m.room.create|"]; !ok {
				t.Errorf("bob's invite_state lacks the create event: %v", names)
			}

			bob.MustDo("POST", "/_matrix/client/v3/join/"+hstest.Esc(accept), map[string]any{})
			hstest.Eventually(t, "bob's join on A", func() bool { return memberOn(alice, accept, bob.UserID) == "join" })
			alice.Send(accept, "a1", "welcome")
			hstest.Eventually(t, "A's message on B", func() bool { return hasBody(bob, accept, "welcome") })

			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(reject)+"/leave", map[string]any{})
			hstest.Eventually(t, "bob's rejection on A", func() bool { return memberOn(alice, reject, bob.UserID) == "leave" })
			sync = bob.Sync("", 0)
			if sync.Get("rooms.invite." + apiKey(reject)).Exists() {
				t.Errorf("the rejected invite is still in bob's sync: %s", sync.Get("rooms.invite").Raw)
			}
		})
	}
}

// joinedRooms is c's /joined_rooms.
func joinedRooms(c *hstest.Client) []string {
	var out []string
	for _, r := range c.MustDo("GET", "/_matrix/client/v3/joined_rooms", nil).Get("joined_rooms").Array() {
		out = append(out, r.String())
	}
	return out
}

// TestFederationLeaveKickBan: in a room made on one server and joined from
// the other, in both directions: a power-level change takes effect on both
// (the promoted remote user then changes the topic); a kick and a ban by
// the room's server reach the remote user's server; the kicked user rejoins
// through the resident server; the banned user cannot rejoin; a plain leave
// of the remote user reaches the room's server.
func TestFederationLeaveKickBan(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			bob := b.Register(t, "bob")
			carol := b.Register(t, "carol")
			for _, dir := range []struct {
				name          string
				owner, remote *hstest.Client
				via, remoteHS string
				leaver        *hstest.Client // a second remote user who leaves
			}{
				{"A to B", alice, bob, a.FedName, b.FedName, carol},
				{"B to A", bob, alice, b.FedName, a.FedName, nil},
			} {
				owner, remote := dir.owner, dir.remote
				room := owner.CreateRoom(map[string]any{"preset": "public_chat"})
				joinVia(t, remote, room, dir.via)
				hstest.Eventually(t, dir.name+": the join on the room's server", func() bool { return memberOn(owner, room, remote.UserID) == "join" })

				// Power levels: the remote user gets 50 and sets the topic.
				pl := owner.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.power_levels/", nil)
				users := map[string]any{}
				for k, v := range pl.Get("users").Map() {
					users[k] = v.Int()
				}
				users[remote.UserID] = 50
				content := map[string]any{}
				for k, v := range pl.Map() {
					content[k] = v.Value()
				}
				content["users"] = users
				owner.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.power_levels/", content)
				hstest.Eventually(t, dir.name+": the power levels on the remote side", func() bool {
					code, res := remote.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.power_levels/", nil)
					return code == 200 && res.Get("users."+gjsonKey(remote.UserID)).Int() == 50
				})
				remote.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.topic/", map[string]any{"topic": "set remotely"})
				hstest.Eventually(t, dir.name+": the remote topic on the room's server", func() bool {
					code, res := owner.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.topic/", nil)
					return code == 200 && res.Get("topic").String() == "set remotely"
				})

				// Kick: the remote server learns it; the user rejoins.
				owner.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/kick", map[string]any{"user_id": remote.UserID})
				hstest.Eventually(t, dir.name+": the kick on the remote side", func() bool { return !slices.Contains(joinedRooms(remote), room) })
				joinVia(t, remote, room, dir.via)
				hstest.Eventually(t, dir.name+": the rejoin on the room's server", func() bool { return memberOn(owner, room, remote.UserID) == "join" })

				// A plain leave of another remote user.
				if l := dir.leaver; l != nil {
					joinVia(t, l, room, dir.via)
					hstest.Eventually(t, dir.name+": the second join", func() bool { return memberOn(owner, room, l.UserID) == "join" })
					l.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/leave", map[string]any{})
					hstest.Eventually(t, dir.name+": the leave on the room's server", func() bool { return memberOn(owner, room, l.UserID) == "leave" })
				}

				// Ban: the remote server learns it; no rejoin.
				owner.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/ban", map[string]any{"user_id": remote.UserID})
				hstest.Eventually(t, dir.name+": the ban on the remote side", func() bool { return !slices.Contains(joinedRooms(remote), room) })
				code, res := remote.Do("POST", "/_matrix/client/v3/join/"+hstest.Esc(room)+"?server_name="+url.QueryEscape(dir.via), map[string]any{})
				if code != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
					t.Errorf("%s: a banned user's rejoin = %d %s, want 403 M_FORBIDDEN", dir.name, code, res.Raw)
				}
				if got := memberOn(owner, room, remote.UserID); got != "ban" {
					t.Errorf("%s: the banned user's membership on the room's server = %q, want ban", dir.name, got)
				}
			}
		})
	}
}
