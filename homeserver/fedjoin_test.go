package homeserver_test

import (
	"context"
	"net/url"
	"slices"
	"sort"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms/pdu"
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

// TestFederationInvite, in both directions: a user invites another
// server's user (invite v2: the invitee's server runs its invite policy,
// signs, and gives the invitee the invite with the stripped state in
// /sync), through /invite, createRoom's invite list and the state PUT; the
// invitee accepts one invite (a join through the inviter's server) and
// rejects another (a leave through make_leave/send_leave); the inviter's
// server sees both.
func TestFederationInvite(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			bob := b.Register(t, "bob")
			for _, dir := range []struct {
				name             string
				inviter, invitee *hstest.Client
			}{{"A to B", alice, bob}, {"B to A", bob, alice}} {
				inviter, invitee := dir.inviter, dir.invitee
				// The invitee's server runs its invite policy: no such user.
				nobody := "@nobody:" + pdu.Domain(invitee.UserID)
				probe := inviter.CreateRoom(map[string]any{"preset": "private_chat"})
				if code, res := inviter.Do("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(probe)+"/invite", map[string]any{"user_id": nobody}); code != 404 || res.Get("errcode").String() != "M_NOT_FOUND" {
					t.Errorf("%s: invite of an unknown remote user = %d %s, want 404 M_NOT_FOUND from its server", dir.name, code, res.Raw)
				}
				if got := memberOn(inviter, probe, nobody); got != "" {
					t.Errorf("%s: a refused remote invite was written: membership %q", dir.name, got)
				}
				accept := inviter.CreateRoom(map[string]any{"preset": "private_chat", "name": "Accept me", "invite": []string{invitee.UserID}, "is_direct": true})
				reject := inviter.CreateRoom(map[string]any{"preset": "private_chat", "name": "Reject me"})
				inviter.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(reject)+"/invite", map[string]any{"user_id": invitee.UserID})
				byState := inviter.CreateRoom(map[string]any{"preset": "private_chat"})
				inviter.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(byState)+"/state/m.room.member/"+hstest.Esc(invitee.UserID), map[string]any{"membership": "invite"})
				for _, room := range []string{accept, reject, byState} {
					if got := memberOn(inviter, room, invitee.UserID); got != "invite" {
						t.Fatalf("%s: the invitee's membership on the inviter's server = %q, want invite", dir.name, got)
					}
				}
				sync := invitee.Sync("", 0)
				for _, room := range []string{reject, byState} {
					if !sync.Get("rooms.invite." + apiKey(room)).Exists() {
						t.Errorf("%s: no invite to %s in the invitee's sync", dir.name, room)
					}
				}
				names := map[string]string{}
				for _, e := range sync.Get("rooms.invite." + apiKey(accept) + ".invite_state.events").Array() {
					names[e.Get("type").String()+"|"+e.Get("state_key").String()] = e.Get("content.name").String() + e.Get("content.membership").String()
				}
				if names["m.room.name|"] != "Accept me" || names["m.room.member|"+invitee.UserID] != "invite" || names["m.room.member|"+inviter.UserID] != "join" {
					t.Errorf("%s: invite_state = %v, want the room name, the invite and the inviter's join", dir.name, names)
				}
				if _, ok := names["m.room.create|"]; !ok {
					t.Errorf("%s: invite_state lacks the create event: %v", dir.name, names)
				}

				invitee.MustDo("POST", "/_matrix/client/v3/join/"+hstest.Esc(accept), map[string]any{})
				hstest.Eventually(t, dir.name+": the accepted invite on the inviter's server", func() bool { return memberOn(inviter, accept, invitee.UserID) == "join" })
				inviter.Send(accept, "w-"+dir.name, "welcome "+dir.name)
				hstest.Eventually(t, dir.name+": a message after the accept", func() bool { return hasBody(invitee, accept, "welcome "+dir.name) })

				invitee.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(reject)+"/leave", map[string]any{})
				hstest.Eventually(t, dir.name+": the rejection on the inviter's server", func() bool { return memberOn(inviter, reject, invitee.UserID) == "leave" })
				if sync := invitee.Sync("", 0); sync.Get("rooms.invite." + apiKey(reject)).Exists() {
					t.Errorf("%s: the rejected invite is still in the invitee's sync", dir.name)
				}
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
				remoteSrv     *hstest.Server
			}{
				{"A to B", alice, bob, a.FedName, b.FedName, carol, b},
				{"B to A", bob, alice, b.FedName, a.FedName, nil, a},
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
				spans, err := dir.remoteSrv.Srv.Store.FedOpenSpans(context.Background())
				if err != nil {
					t.Fatalf("FedOpenSpans: %v", err)
				}
				open := 0
				for _, sp := range spans {
					if sp.RoomID == room && sp.Server == dir.via {
						open++
					}
				}
				if open != 1 {
					t.Errorf("%s: after the rejoin the remote server has %d open spans for the room's server, want 1 (events would go twice)", dir.name, open)
				}

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

// TestFederationJoinByAlias: B resolves A's alias with federation
// query/directory (the servers it names are tried) and joins without
// server_name. It needs A to serve query/directory (federation/query); it
// is skipped on a tree without it.
func TestFederationJoinByAlias(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			bob := b.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_alias_name": "lobby"})
			alias := "#lobby:" + a.FedName
			if _, err := b.Srv.Fed.Client.Client.QueryDirectory(context.Background(), id.RoomAlias(alias)); err != nil {
				if status, errcode := fedErr(err); status == 404 && errcode != "M_NOT_FOUND" {
					t.Skipf("A does not serve query/directory (%d %s): needs federation/query", status, errcode)
				}
			}
			if got := bob.Join(alias); got != room {
				t.Fatalf("join by alias = room %q, want %q", got, room)
			}
			hstest.Eventually(t, "bob's join on A", func() bool { return memberOn(alice, room, bob.UserID) == "join" })
			alice.Send(room, "a1", "hello alias")
			hstest.Eventually(t, "A's message on B", func() bool { return hasBody(bob, room, "hello alias") })
		})
	}
}

// TestFederationRestrictedJoin: a restricted room on A admits bob from B
// only once he is in the room its allow list names; A then names a local
// authoriser in the template and signs the join (the auth rules want its
// signature), and B stores the join as A returned it.
func TestFederationRestrictedJoin(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice := a.Register(t, "alice")
			bob := b.Register(t, "bob")
			space := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			room := alice.CreateRoom(map[string]any{"preset": "private_chat", "initial_state": []map[string]any{{
				"type": "m.room.join_rules", "state_key": "",
				"content": map[string]any{"join_rule": "restricted", "allow": []map[string]any{{"type": "m.room_membership", "room_id": space}}},
			}}})
			code, res := bob.Do("POST", "/_matrix/client/v3/join/"+hstest.Esc(room)+"?server_name="+url.QueryEscape(a.FedName), map[string]any{})
			if code != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("restricted join before joining the allowed room = %d %s, want 403 M_FORBIDDEN", code, res.Raw)
			}
			joinVia(t, bob, space, a.FedName)
			hstest.Eventually(t, "bob in the allowed room on A", func() bool { return memberOn(alice, space, bob.UserID) == "join" })
			joinVia(t, bob, room, a.FedName)
			ev := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(bob.UserID), nil)
			if ev.Get("membership").String() != "join" || ev.Get("join_authorised_via_users_server").String() != alice.UserID {
				t.Errorf("bob's member event on A = %s, want a join authorised by alice", ev.Raw)
			}
			if got := memberOn(bob, room, bob.UserID); got != "join" {
				t.Errorf("bob's membership on B = %q, want join", got)
			}
		})
	}
}
