package homeserver_test

// The authorization matrix for membership routes (issue 15, items 1-3): a
// membership change must get the same answer, and leave the room in the
// same state, whether it comes through its own endpoint (/invite, /join,
// /kick, /ban, /unban, /leave) or through PUT /state/m.room.member/{user}
// or createRoom's initial_state, where the client writes the content.
// Content fields only the server may write are refused on every route.

import (
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// memberWorld is one server's users. Each case gets a fresh room built by
// memberRoom, so the cases cannot disturb one another.
type memberWorld struct {
	srv   *hstest.Server
	users map[string]*hstest.Client // by role
	ids   map[string]string         // role → user ID, ghost included
}

// Roles: alice creates the room (power 100); mod has power 50; member,
// banned and left joined (banned was then banned, left left); invited is
// invited; outsider was never in the room; blocker blocked alice;
// friendsonly accepts invites from friends only; ghost has no account.
func memberSetup(t *testing.T, store hstest.Store) *memberWorld {
	t.Helper()
	srv := hstest.Start(t, hstest.Options{Store: store})
	w := &memberWorld{srv: srv, users: map[string]*hstest.Client{}, ids: map[string]string{}}
	for _, role := range []string{"alice", "mod", "member", "banned", "left", "invited", "outsider", "blocker", "friendsonly"} {
		w.users[role] = srv.Register(t, "m-"+role)
		w.ids[role] = w.users[role].UserID
	}
	w.ids["ghost"] = "@m-ghost:" + srv.Cfg.ServerName
	w.users["blocker"].MustDo("PUT", "/_parley/client/v1/blocks/"+hstest.Esc(w.ids["alice"]), map[string]any{})
	w.users["friendsonly"].MustDo("PUT", "/_parley/client/v1/privacy", map[string]any{"dm_policy": "friends"})
	return w
}

// memberRoom builds a private room with every role in place.
func (w *memberWorld) memberRoom(t *testing.T) string {
	t.Helper()
	alice := w.users["alice"]
	// alice creates the room (version 12 by default), so her power is
	// unlimited and the override may not list her.
	room := alice.CreateRoom(map[string]any{
		"preset":                       "private_chat",
		"invite":                       []string{w.ids["mod"], w.ids["member"], w.ids["banned"], w.ids["left"], w.ids["invited"]},
		"power_level_content_override": map[string]any{"users": map[string]any{w.ids["mod"]: 50}},
	})
	for _, role := range []string{"mod", "member", "banned", "left"} {
		w.users[role].Join(room)
	}
	rp := "/_matrix/client/v3/rooms/" + hstest.Esc(room)
	alice.MustDo("POST", rp+"/ban", map[string]any{"user_id": w.ids["banned"]})
	w.users["left"].MustDo("POST", rp+"/leave", map[string]any{})
	return room
}

// membershipOf reads target's membership as alice sees it ("" for none).
func (w *memberWorld) membershipOf(t *testing.T, room, target string) string {
	t.Helper()
	st, res := w.users["alice"].Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(target), nil)
	if st != 200 {
		return ""
	}
	return res.Get("membership").String()
}

// memberRouteCase is one membership change, tried through each route.
type memberRouteCase struct {
	name           string
	actor, target  string // roles
	membership     string // the state PUT's membership
	extra          map[string]any
	dedicated      string // the endpoint's own route ("" when none): invite, join, kick, ban, unban, leave
	wantStatus     int
	wantCode       string
	wantMembership string // target's membership afterwards, on success
}

var memberRouteCases = []memberRouteCase{
	// Invites: the invite policy (user exists, blocks, dm_policy) on every route.
	{name: "invite outsider", actor: "alice", target: "outsider", membership: "invite", dedicated: "invite", wantStatus: 200, wantMembership: "invite"},
	{name: "invite by a member at invite level 0", actor: "member", target: "outsider", membership: "invite", dedicated: "invite", wantStatus: 200, wantMembership: "invite"},
	{name: "invite a user who does not exist", actor: "alice", target: "ghost", membership: "invite", dedicated: "invite", wantStatus: 404, wantCode: "M_NOT_FOUND"},
	{name: "invite a user who blocked the inviter", actor: "alice", target: "blocker", membership: "invite", dedicated: "invite", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "invite a friends-only user who is not a friend", actor: "alice", target: "friendsonly", membership: "invite", dedicated: "invite", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "invite by an outsider", actor: "outsider", target: "left", membership: "invite", dedicated: "invite", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "invite by an invitee", actor: "invited", target: "outsider", membership: "invite", dedicated: "invite", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "invite a member", actor: "alice", target: "member", membership: "invite", dedicated: "invite", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "invite a banned user", actor: "alice", target: "banned", membership: "invite", dedicated: "invite", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "re-invite a user who left", actor: "alice", target: "left", membership: "invite", dedicated: "invite", wantStatus: 200, wantMembership: "invite"},

	// Joins of oneself: the join rule (invite) decides.
	{name: "invitee joins", actor: "invited", target: "invited", membership: "join", dedicated: "join", wantStatus: 200, wantMembership: "join"},
	{name: "outsider joins an invite-only room", actor: "outsider", target: "outsider", membership: "join", dedicated: "join", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "banned user joins", actor: "banned", target: "banned", membership: "join", dedicated: "join", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "user who left joins again", actor: "left", target: "left", membership: "join", dedicated: "join", wantStatus: 403, wantCode: "M_FORBIDDEN"},

	// Leaves of oneself.
	{name: "member leaves", actor: "member", target: "member", membership: "leave", dedicated: "leave", wantStatus: 200, wantMembership: "leave"},
	{name: "invitee rejects", actor: "invited", target: "invited", membership: "leave", dedicated: "leave", wantStatus: 200, wantMembership: "leave"},
	{name: "outsider leaves", actor: "outsider", target: "outsider", membership: "leave", dedicated: "leave", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "banned user leaves", actor: "banned", target: "banned", membership: "leave", dedicated: "leave", wantStatus: 403, wantCode: "M_FORBIDDEN"},

	// Kicks, bans and unbans of others.
	{name: "moderator kicks a member", actor: "mod", target: "member", membership: "leave", dedicated: "kick", wantStatus: 200, wantMembership: "leave"},
	{name: "member kicks the moderator", actor: "member", target: "mod", membership: "leave", dedicated: "kick", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "outsider kicks a member", actor: "outsider", target: "member", membership: "leave", dedicated: "kick", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "moderator withdraws an invite", actor: "mod", target: "invited", membership: "leave", dedicated: "kick", wantStatus: 200, wantMembership: "leave"},
	{name: "admin bans a member", actor: "alice", target: "member", membership: "ban", dedicated: "ban", wantStatus: 200, wantMembership: "ban"},
	{name: "admin bans an outsider", actor: "alice", target: "outsider", membership: "ban", dedicated: "ban", wantStatus: 200, wantMembership: "ban"},
	{name: "member bans a member", actor: "member", target: "left", membership: "ban", dedicated: "ban", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "outsider bans a member", actor: "outsider", target: "member", membership: "ban", dedicated: "ban", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "admin unbans", actor: "alice", target: "banned", membership: "leave", dedicated: "unban", wantStatus: 200, wantMembership: "leave"},
	{name: "member unbans", actor: "member", target: "banned", membership: "leave", dedicated: "unban", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "outsider unbans", actor: "outsider", target: "banned", membership: "leave", dedicated: "unban", wantStatus: 403, wantCode: "M_FORBIDDEN"},

	// Changes of oneself through the endpoints meant for others.
	{name: "member invites themselves", actor: "member", target: "member", membership: "invite", dedicated: "invite", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "outsider invites themselves", actor: "outsider", target: "outsider", membership: "invite", dedicated: "invite", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "member bans themselves", actor: "member", target: "member", membership: "ban", dedicated: "ban", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "admin bans themselves", actor: "alice", target: "alice", membership: "ban", dedicated: "ban", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "banned user unbans themselves", actor: "banned", target: "banned", membership: "leave", dedicated: "unban", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "invitee kicks themselves (a rejection)", actor: "invited", target: "invited", membership: "leave", dedicated: "kick", wantStatus: 200, wantMembership: "leave"},

	// Memberships no endpoint makes: the state PUT alone.
	{name: "member joins on behalf of an outsider", actor: "member", target: "outsider", membership: "join", wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "admin joins on behalf of an invitee", actor: "alice", target: "invited", membership: "join", wantStatus: 403, wantCode: "M_FORBIDDEN"},

	// Fields only the server writes: refused even where the change itself
	// would be allowed.
	{name: "invitee joins naming an authoriser", actor: "invited", target: "invited", membership: "join",
		extra: map[string]any{"join_authorised_via_users_server": "alice"}, wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "outsider joins naming an authoriser", actor: "outsider", target: "outsider", membership: "join",
		extra: map[string]any{"join_authorised_via_users_server": "alice"}, wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "member leaves naming an authoriser", actor: "member", target: "member", membership: "leave",
		extra: map[string]any{"join_authorised_via_users_server": "alice"}, wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "invite with a third-party invite", actor: "alice", target: "outsider", membership: "invite",
		extra:      map[string]any{"third_party_invite": map[string]any{"display_name": "o", "signed": map[string]any{"mxid": "outsider", "token": "t"}}},
		wantStatus: 403, wantCode: "M_FORBIDDEN"},
	{name: "self-invite with a third-party invite after leaving", actor: "left", target: "left", membership: "invite",
		extra:      map[string]any{"third_party_invite": map[string]any{"display_name": "l", "signed": map[string]any{"mxid": "left", "token": "t"}}},
		wantStatus: 403, wantCode: "M_FORBIDDEN"},
}

// resolve replaces role names in a forged field's value with user IDs.
func (w *memberWorld) resolve(v any) any {
	switch v := v.(type) {
	case string:
		if id, ok := w.ids[v]; ok {
			return id
		}
		return v
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			out[k] = w.resolve(x)
		}
		return out
	}
	return v
}

func (w *memberWorld) dedicatedRequest(c memberRouteCase, room string) (string, string, any) {
	rp := "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/"
	switch c.dedicated {
	case "join":
		return "POST", rp + "join", map[string]any{}
	case "leave":
		return "POST", rp + "leave", map[string]any{}
	}
	return "POST", rp + c.dedicated, map[string]any{"user_id": w.ids[c.target]}
}

func (w *memberWorld) statePutRequest(c memberRouteCase, room string) (string, string, any) {
	content := map[string]any{"membership": c.membership}
	for k, v := range c.extra {
		content[k] = w.resolve(v)
	}
	return "PUT", "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/state/m.room.member/" + hstest.Esc(w.ids[c.target]), content
}

func TestMembershipRoutesMatrix(t *testing.T) {
	for _, store := range hstest.GraphStores(t) {
		t.Run(store.Name, func(t *testing.T) {
			w := memberSetup(t, store)
			for _, c := range memberRouteCases {
				t.Run(c.name, func(t *testing.T) {
					routes := map[string]func(memberRouteCase, string) (string, string, any){"state PUT": w.statePutRequest}
					if c.dedicated != "" {
						routes["/"+c.dedicated] = w.dedicatedRequest
					}
					for route, build := range routes {
						room := w.memberRoom(t)
						before := w.membershipOf(t, room, w.ids[c.target])
						method, path, body := build(c, room)
						st, res := w.users[c.actor].Do(method, path, body)
						if st != c.wantStatus || res.Get("errcode").String() != c.wantCode {
							t.Errorf("%s: %s %s as %s = %d %s, want %d %s", route, method, path, c.actor, st, res.Raw, c.wantStatus, c.wantCode)
						}
						want := c.wantMembership
						if c.wantStatus != 200 {
							want = before
						}
						if got := w.membershipOf(t, room, w.ids[c.target]); got != want {
							t.Errorf("%s: %s's membership afterwards = %q, want %q", route, c.target, got, want)
						}
					}
				})
			}
			t.Run("initial_state", func(t *testing.T) { testInitialStateMembers(t, w) })
		})
	}
}

// testInitialStateMembers checks createRoom's initial_state and invite list
// answer like /invite, and refuse the fields only the server writes. A
// refused createRoom makes no room at all.
func testInitialStateMembers(t *testing.T, w *memberWorld) {
	alice := w.users["alice"]
	member := func(target string, content map[string]any) map[string]any {
		return map[string]any{"type": "m.room.member", "state_key": w.ids[target], "content": content}
	}
	cases := []struct {
		name       string
		state      map[string]any
		invite     string // role for the invite list, "" for none
		wantStatus int
		wantCode   string
	}{
		{"invite outsider", member("outsider", map[string]any{"membership": "invite"}), "outsider", 200, ""},
		{"invite a user who does not exist", member("ghost", map[string]any{"membership": "invite"}), "ghost", 404, "M_NOT_FOUND"},
		{"invite a user who blocked the creator", member("blocker", map[string]any{"membership": "invite"}), "blocker", 403, "M_FORBIDDEN"},
		{"invite a friends-only user", member("friendsonly", map[string]any{"membership": "invite"}), "friendsonly", 403, "M_FORBIDDEN"},
		{"creator's own member event", member("alice", map[string]any{"membership": "join", "displayname": "A"}), "", 200, ""},
		{"join on behalf of another", member("outsider", map[string]any{"membership": "join"}), "", 403, "M_FORBIDDEN"},
		{"creator's join naming an authoriser", member("alice", map[string]any{"membership": "join", "join_authorised_via_users_server": w.ids["alice"]}), "", 403, "M_FORBIDDEN"},
		{"invite with a third-party invite", member("outsider", map[string]any{"membership": "invite",
			"third_party_invite": map[string]any{"display_name": "o", "signed": map[string]any{"mxid": w.ids["outsider"], "token": "t"}}}), "", 403, "M_FORBIDDEN"},
		{"m.room.third_party_invite", map[string]any{"type": "m.room.third_party_invite", "state_key": "t",
			"content": map[string]any{"display_name": "o", "public_key": "AAAA", "key_validity_url": "https://id.example/"}}, "", 403, "M_FORBIDDEN"},
	}
	rooms := func() int {
		return len(alice.MustDo("GET", "/_matrix/client/v3/joined_rooms", nil).Get("joined_rooms").Array())
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bodies := map[string]map[string]any{"initial_state": {"preset": "private_chat", "initial_state": []any{c.state}}}
			if c.invite != "" {
				bodies["invite list"] = map[string]any{"preset": "private_chat", "invite": []string{w.ids[c.invite]}}
			}
			for route, body := range bodies {
				n := rooms()
				st, res := alice.Do("POST", "/_matrix/client/v3/createRoom", body)
				if st != c.wantStatus || res.Get("errcode").String() != c.wantCode {
					t.Errorf("%s: createRoom = %d %s, want %d %s", route, st, res.Raw, c.wantStatus, c.wantCode)
				}
				wantRooms := n
				if c.wantStatus == 200 {
					wantRooms++
				}
				if got := rooms(); got != wantRooms {
					t.Errorf("%s: creator is in %d rooms afterwards, want %d", route, got, wantRooms)
				}
			}
		})
	}
}
