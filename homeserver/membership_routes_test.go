package homeserver_test

// Membership defects of issue 15: restricted joins (item 1), self-made
// third-party invites (item 3) and probing through /unban and /send
// (item 7). The invite policy on every route (item 2) is in the matrix of
// authz_membership_test.go.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"slices"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

func TestRestrictedJoin(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, bob, carol, dave := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol"), srv.Register(t, "dave")
			// A is the room whose members may join the restricted rooms.
			allowed := alice.CreateRoom(map[string]any{"preset": "private_chat", "invite": []string{bob.UserID, dave.UserID}})
			bob.Join(allowed)
			dave.Join(allowed)
			memberOf := func(room, user string) (string, string) {
				st, res := alice.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(user), nil)
				if st != 200 {
					return "", ""
				}
				return res.Get("membership").String(), res.Get("join_authorised_via_users_server").String()
			}
			for _, tc := range []struct{ version, rule string }{{"10", "restricted"}, {"11", "restricted"}, {"11", "knock_restricted"}} {
				t.Run(tc.version+"/"+tc.rule, func(t *testing.T) {
					room := alice.CreateRoom(map[string]any{"preset": "private_chat", "room_version": tc.version,
						"initial_state": []any{map[string]any{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{
							"join_rule": tc.rule, "allow": []any{map[string]any{"type": "m.room_membership", "room_id": allowed}}}}}})
					rp := "/_matrix/client/v3/rooms/" + hstest.Esc(room)
					memberPath := func(c *hstest.Client) string { return rp + "/state/m.room.member/" + hstest.Esc(c.UserID) }

					// A member of the allowed room joins through /join, and the
					// server names alice, the local user with invite power.
					if st, res := bob.Do("POST", rp+"/join", map[string]any{}); st != 200 {
						t.Fatalf("/join by a member of the allowed room = %d %s, want 200", st, res.Raw)
					}
					if m, via := memberOf(room, bob.UserID); m != "join" || via != alice.UserID {
						t.Errorf("bob's member event: membership %q, join_authorised_via_users_server %q; want join, %s", m, via, alice.UserID)
					}
					// The state PUT of one's own join is a join too.
					if st, res := dave.Do("PUT", memberPath(dave), map[string]any{"membership": "join"}); st != 200 {
						t.Errorf("state PUT join by a member of the allowed room = %d %s, want 200 as /join", st, res.Raw)
					}
					if m, via := memberOf(room, dave.UserID); m != "join" || via != alice.UserID {
						t.Errorf("dave's member event: membership %q, via %q; want join, %s", m, via, alice.UserID)
					}

					// Carol is in no allowed room: refused on every route,
					// whatever she names.
					expectErrors(t, []errorCase{
						{"/join by an outsider", carol, "POST", rp + "/join", map[string]any{}, 403, "M_FORBIDDEN"},
						{"state PUT join naming alice", carol, "PUT", memberPath(carol),
							map[string]any{"membership": "join", "join_authorised_via_users_server": alice.UserID}, 403, "M_FORBIDDEN"},
						{"state PUT join", carol, "PUT", memberPath(carol), map[string]any{"membership": "join"}, 403, "M_FORBIDDEN"},
						{"state PUT join naming alice, by a member of the allowed room", dave, "PUT", memberPath(dave),
							map[string]any{"membership": "join", "join_authorised_via_users_server": alice.UserID}, 403, "M_FORBIDDEN"},
					})
					if m, _ := memberOf(room, carol.UserID); m != "" {
						t.Errorf("carol's membership = %q, want none", m)
					}
					st, res := carol.Do("GET", rp+"/messages?dir=b", nil)
					if st != 403 {
						t.Errorf("carol reads the restricted room: /messages = %d %s, want 403", st, res.Raw)
					}
				})
			}

			// Leaving the allowed room ends the right to join.
			room := alice.CreateRoom(map[string]any{"preset": "private_chat",
				"initial_state": []any{map[string]any{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{
					"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": allowed}}}}}})
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(allowed)+"/leave", map[string]any{})
			if st, res := bob.Do("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/join", map[string]any{}); st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("/join after leaving the allowed room = %d %s, want 403 M_FORBIDDEN", st, res.Raw)
			}

			// After a restart the allowed room is not in the writer's cache:
			// its memberships come from the store.
			srv.Stop()
			srv2 := hstest.Start(t, hstest.Options{Store: store, DataDir: srv.Cfg.DataDir})
			for _, c := range []*hstest.Client{alice, bob, carol, dave} {
				c.Base = srv2.URL
			}
			room = alice.CreateRoom(map[string]any{"preset": "private_chat",
				"initial_state": []any{map[string]any{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{
					"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": allowed}}}}}})
			expectErrors(t, []errorCase{
				{"/join after a restart by a member of the allowed room", dave, "POST", "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/join", map[string]any{}, 200, ""},
				{"/join after a restart by a former member of the allowed room", bob, "POST", "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/join", map[string]any{}, 403, "M_FORBIDDEN"},
				{"/join after a restart by an outsider", carol, "POST", "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/join", map[string]any{}, 403, "M_FORBIDDEN"},
			})
		})
	}
}

// TestSelfMadeThirdPartyInviteRefused replays the attack of issue 15 item 3:
// a member plants an m.room.third_party_invite holding their own key, is
// kicked, then signs their own invite with it and walks back in.
func TestSelfMadeThirdPartyInviteRefused(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, mallory := srv.Register(t, "alice"), srv.Register(t, "mallory")
			room := alice.CreateRoom(map[string]any{"preset": "private_chat", "invite": []string{mallory.UserID}})
			mallory.Join(room)
			rp := "/_matrix/client/v3/rooms/" + hstest.Esc(room)

			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			st, res := mallory.Do("PUT", rp+"/state/m.room.third_party_invite/tok", map[string]any{
				"display_name": "m...", "public_key": base64.RawStdEncoding.EncodeToString(pub), "key_validity_url": "https://id.example/",
			})
			if st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("planting m.room.third_party_invite = %d %s, want 403 M_FORBIDDEN", st, res.Raw)
			}
			alice.MustDo("POST", rp+"/kick", map[string]any{"user_id": mallory.UserID})

			signed, _ := json.Marshal(map[string]string{"mxid": mallory.UserID, "token": "tok"}) // sorted keys: canonical
			sig := base64.RawStdEncoding.EncodeToString(ed25519.Sign(priv, signed))
			st, res = mallory.Do("PUT", rp+"/state/m.room.member/"+hstest.Esc(mallory.UserID), map[string]any{
				"membership": "invite",
				"third_party_invite": map[string]any{"display_name": "m...", "signed": map[string]any{
					"mxid": mallory.UserID, "token": "tok", "signatures": map[string]any{"id.example": map[string]any{"ed25519:0": sig}}}},
			})
			if st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("self-invite with the planted key = %d %s, want 403 M_FORBIDDEN", st, res.Raw)
			}
			if st, res := mallory.Do("POST", rp+"/join", map[string]any{}); st != 403 {
				t.Errorf("/join after the self-invite = %d %s, want 403", st, res.Raw)
			}
			m := alice.MustDo("GET", rp+"/state/m.room.member/"+hstest.Esc(mallory.UserID), nil)
			if got := m.Get("membership").String(); got != "leave" {
				t.Errorf("mallory's membership = %q, want leave (kicked, and kept out)", got)
			}
		})
	}
}

// TestMembershipProbesAnswerAlike: an outsider cannot tell a banned user
// from another by /unban, nor an existing room from an unknown one by
// /send, /unban, /kick, /ban or /invite: the status, errcode and text are
// the same.
func TestMembershipProbesAnswerAlike(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, bob, carol, eve, member := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol"),
				srv.Register(t, "eve"), srv.Register(t, "member")
			room := alice.CreateRoom(map[string]any{"preset": "private_chat", "invite": []string{bob.UserID, member.UserID}})
			bob.Join(room)
			member.Join(room)
			rp := "/_matrix/client/v3/rooms/" + hstest.Esc(room)
			alice.MustDo("POST", rp+"/ban", map[string]any{"user_id": bob.UserID})
			unknown := "/_matrix/client/v3/rooms/" + hstest.Esc("!nosuchroom:"+srv.Cfg.ServerName)
			target := func(u string) map[string]any { return map[string]any{"user_id": u} }
			msg := map[string]any{"msgtype": "m.text", "body": "probe"}

			type probe struct {
				name, method, path string
				body               any
			}
			groups := []struct {
				name   string
				caller *hstest.Client
				probes []probe
			}{
				{"outsider /unban", eve, []probe{
					{"banned user", "POST", rp + "/unban", target(bob.UserID)},
					{"never-joined user", "POST", rp + "/unban", target(carol.UserID)},
					{"unknown room", "POST", unknown + "/unban", target(bob.UserID)},
				}},
				{"banned user /unban of themselves", bob, []probe{
					{"existing room", "POST", rp + "/unban", target(bob.UserID)},
					{"unknown room", "POST", unknown + "/unban", target(bob.UserID)},
				}},
				{"member without ban power /unban", member, []probe{
					{"banned user", "POST", rp + "/unban", target(bob.UserID)},
					{"never-joined user", "POST", rp + "/unban", target(carol.UserID)},
				}},
				{"outsider /send", eve, []probe{
					{"existing room", "PUT", rp + "/send/m.room.message/t1", msg},
					{"unknown room", "PUT", unknown + "/send/m.room.message/t1", msg},
				}},
				{"outsider /kick", eve, []probe{
					{"existing room", "POST", rp + "/kick", target(alice.UserID)},
					{"unknown room", "POST", unknown + "/kick", target(alice.UserID)},
				}},
				{"outsider /ban", eve, []probe{
					{"existing room", "POST", rp + "/ban", target(alice.UserID)},
					{"unknown room", "POST", unknown + "/ban", target(alice.UserID)},
				}},
				{"outsider /invite", eve, []probe{
					{"existing room", "POST", rp + "/invite", target(carol.UserID)},
					{"unknown room", "POST", unknown + "/invite", target(carol.UserID)},
				}},
			}
			for _, g := range groups {
				t.Run(g.name, func(t *testing.T) {
					var first string
					for i, p := range g.probes {
						st, res := g.caller.Do(p.method, p.path, p.body)
						if st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
							t.Errorf("%s: %s %s = %d %s, want 403 M_FORBIDDEN", p.name, p.method, p.path, st, res.Raw)
						}
						if i == 0 {
							first = res.Get("error").String()
						} else if got := res.Get("error").String(); got != first {
							t.Errorf("%s: error text %q, want %q, the answer for %s", p.name, got, first, g.probes[0].name)
						}
					}
				})
			}
			if m := alice.MustDo("GET", rp+"/state/m.room.member/"+hstest.Esc(bob.UserID), nil); m.Get("membership").String() != "ban" {
				t.Errorf("bob's membership = %s, want still banned", m.Raw)
			}
		})
	}
}

// TestDeskInvitesSkipThePeoplePolicy: a desk's invites are made by its
// service account for a customer who asked, or for an agent an operator
// assigned. They are not people's invites, so a friends-only dm_policy on
// either side must not break a consultation.
func TestDeskInvitesSkipThePeoplePolicy(t *testing.T) {
	w := newDeskShop(t, hstest.Options{}, "shop", map[string]any{"categories": []string{"presale"}})
	ann := w.agent("ann", map[string]any{"skills": []string{"presale"}})
	cust := w.srv.Register(t, "cust")
	for _, c := range []*hstest.Client{ann, cust} {
		c.MustDo("PUT", "/_parley/client/v1/privacy", map[string]any{"dm_policy": "friends"})
	}
	room := w.open(cust, "presale", "Is it waterproof?").Get("room_id").String()
	hstest.Eventually(t, "the customer and the agent joined to the consultation", func() bool {
		m := deskMembers(cust, room)
		return slices.Contains(m, cust.UserID) && slices.Contains(m, ann.UserID)
	})
}
