package homeserver_test

// Room version 12 (issue 10 item 5): MSC4291 room IDs derived from the
// create event, MSC4289 creators with unlimited power.

import (
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

func TestRoomVersion12(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")

			caps := alice.MustDo("GET", "/_matrix/client/v3/capabilities", nil).Get(apiPath("capabilities", "m.room_versions"))
			if caps.Get("available.12").String() != "stable" || caps.Get("default").String() != "12" {
				t.Errorf("m.room_versions = %s, want 12 stable and the default", caps.Raw)
			}

			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_version": "12", "name": "v12", "topic": "t"})
			if len(room) != 44 || room[0] != '!' || strings.Contains(room, ":") {
				t.Fatalf("room ID = %q, want \"!\" and a 43-character hash without a server", room)
			}
			rp := "/_matrix/client/v3/rooms/" + hstest.Esc(room)

			// The room ID is the create event's ID with "!" for "$".
			var create, pl map[string]any
			for _, ev := range alice.MustDo("GET", rp+"/state", nil).Array() {
				switch ev.Get("type").String() {
				case "m.room.create":
					create = ev.Value().(map[string]any)
				case "m.room.power_levels":
					pl = ev.Get("content").Value().(map[string]any)
				}
			}
			if create == nil || create["event_id"] != "$"+room[1:] || create["room_id"] != room {
				t.Fatalf("create event = %v, want event_id $%s and room_id %s", create, room[1:], room)
			}
			if v := create["content"].(map[string]any)["room_version"]; v != "12" {
				t.Errorf("create content room_version = %v, want 12", v)
			}
			// The creator is not listed; only creators can tombstone.
			users, _ := pl["users"].(map[string]any)
			if _, listed := users[alice.UserID]; listed {
				t.Errorf("default power levels list the creator: %v", pl)
			}
			if tomb := pl["events"].(map[string]any)["m.room.tombstone"]; tomb != float64(150) {
				t.Errorf("m.room.tombstone level = %v, want 150", tomb)
			}

			// The directory's own power check counts the creator too.
			alice.MustDo("PUT", "/_matrix/client/v3/directory/list/room/"+hstest.Esc(room), map[string]any{"visibility": "public"})
			if v := alice.MustDo("GET", "/_matrix/client/v3/directory/list/room/"+hstest.Esc(room), nil).Get("visibility").String(); v != "public" {
				t.Errorf("directory visibility after the creator published = %q, want public", v)
			}

			// Everyday use: join by room ID, send, sync, /messages.
			if got := bob.Join(room); got != room {
				t.Fatalf("join returned %q, want %q", got, room)
			}
			alice.Send(room, "a1", "hello from alice")
			bobMsg := bob.Send(room, "b1", "hello from bob")
			hstest.Eventually(t, "bob's sync shows both messages", func() bool {
				b := hstest.Bodies(bob.Sync("", 0), room)
				return slices.Contains(b, "hello from alice") && slices.Contains(b, "hello from bob")
			})
			if got := alice.MessageBodies(room); !slices.Equal(got, []string{"hello from alice", "hello from bob"}) {
				t.Errorf("/messages bodies = %v, want both messages in order", got)
			}

			// The creator outranks a user at 100, who cannot touch her.
			alice.MustDo("PUT", rp+"/state/m.room.power_levels/", map[string]any{"users": map[string]any{bob.UserID: 100}})
			alice.MustDo("PUT", rp+"/state/m.room.topic/", map[string]any{"topic": "changed"})
			alice.MustDo("PUT", rp+"/redact/"+hstest.Esc(bobMsg)+"/r1", map[string]any{"reason": "creator redacts"})
			expectErrors(t, []errorCase{
				{"PL-100 user kicks the creator", bob, "POST", rp + "/kick", map[string]any{"user_id": alice.UserID}, 403, "M_FORBIDDEN"},
				{"PL-100 user bans the creator", bob, "POST", rp + "/ban", map[string]any{"user_id": alice.UserID}, 403, "M_FORBIDDEN"},
				{"power levels listing the creator", alice, "PUT", rp + "/state/m.room.power_levels/",
					map[string]any{"users": map[string]any{alice.UserID: 100, bob.UserID: 100}}, 403, "M_FORBIDDEN"},
			})
			if u := alice.MustDo("GET", rp+"/state/m.room.power_levels/", nil).Get("users"); u.Get(apiKey(alice.UserID)).Exists() {
				t.Errorf("a refused power levels change was applied: users = %s", u.Raw)
			}
			alice.MustDo("POST", rp+"/invite", map[string]any{"user_id": carol.UserID})
			carol.Join(room)
			alice.MustDo("POST", rp+"/ban", map[string]any{"user_id": carol.UserID})
			alice.MustDo("POST", rp+"/unban", map[string]any{"user_id": carol.UserID})
			alice.MustDo("POST", rp+"/kick", map[string]any{"user_id": bob.UserID, "reason": "creator outranks 100"})
			if m := alice.MustDo("GET", rp+"/state/m.room.member/"+hstest.Esc(bob.UserID), nil).Get("membership").String(); m != "leave" {
				t.Errorf("bob's membership after the creator's kick = %q, want leave", m)
			}

			// trusted_private_chat makes the invitees creators too.
			trusted := alice.CreateRoom(map[string]any{"preset": "trusted_private_chat", "room_version": "12", "invite": []string{bob.UserID}})
			tp := "/_matrix/client/v3/rooms/" + hstest.Esc(trusted)
			if got := alice.MustDo("GET", tp+"/state/m.room.create/", nil).Get("additional_creators").Array(); len(got) != 1 || got[0].String() != bob.UserID {
				t.Errorf("additional_creators = %v, want [%s]", got, bob.UserID)
			}
			bob.Join(trusted)
			bob.MustDo("PUT", tp+"/state/m.room.power_levels/", map[string]any{"users": map[string]any{carol.UserID: 100}})

			expectErrors(t, []errorCase{
				{"bad additional_creators", alice, "POST", "/_matrix/client/v3/createRoom",
					map[string]any{"room_version": "12", "creation_content": map[string]any{"additional_creators": []any{"bob"}}}, 400, "M_BAD_JSON"},
				{"override listing the creator", alice, "POST", "/_matrix/client/v3/createRoom",
					map[string]any{"room_version": "12", "power_level_content_override": map[string]any{"users": map[string]any{alice.UserID: 100}}}, 400, "M_BAD_JSON"},
				{"unknown version", alice, "POST", "/_matrix/client/v3/createRoom", map[string]any{"room_version": "13"}, 400, "M_UNSUPPORTED_ROOM_VERSION"},
			})

			// Version 11 is unchanged: a server part, the creator at 100.
			old := alice.CreateRoom(map[string]any{"room_version": "11"})
			if !strings.HasSuffix(old, ":"+strings.SplitN(alice.UserID, ":", 2)[1]) {
				t.Errorf("v11 room ID = %q, want one on the server", old)
			}
			if lvl := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(old)+"/state/m.room.power_levels/", nil).Get("users." + apiKey(alice.UserID)).Int(); lvl != 100 {
				t.Errorf("v11 creator level = %d, want 100", lvl)
			}
		})
	}
}

// TestRoomVersion12AfterRestart: the writer reloads a version 12 room
// from the store (its create event has no room_id) and still counts the
// creator's unlimited power.
func TestRoomVersion12AfterRestart(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			dir := t.TempDir()
			srv := hstest.Start(t, hstest.Options{Store: store, DataDir: dir})
			alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_version": "12"})
			bob.Join(room)
			rp := "/_matrix/client/v3/rooms/" + hstest.Esc(room)
			alice.MustDo("PUT", rp+"/state/m.room.power_levels/", map[string]any{"users": map[string]any{bob.UserID: 100}})
			srv.Stop()

			srv = hstest.Start(t, hstest.Options{Store: store, DataDir: dir})
			alice, bob = srv.Login(t, "alice"), srv.Login(t, "bob")
			alice.Send(room, "after", "after the restart")
			expectErrors(t, []errorCase{
				{"PL-100 user kicks the creator after a restart", bob, "POST", rp + "/kick", map[string]any{"user_id": alice.UserID}, 403, "M_FORBIDDEN"},
			})
			alice.MustDo("POST", rp+"/kick", map[string]any{"user_id": bob.UserID})
			if got := alice.MessageBodies(room); !slices.Equal(got, []string{"after the restart"}) {
				t.Errorf("/messages bodies = %v, want [after the restart]", got)
			}
		})
	}
}

// TestRoomVersion12RestrictedJoin: the server names a creator, who is
// never listed in the power levels, as the authoriser of a restricted join.
func TestRoomVersion12RestrictedJoin(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
			allowed := alice.CreateRoom(map[string]any{"preset": "private_chat", "room_version": "12", "invite": []string{bob.UserID}})
			bob.Join(allowed)
			room := alice.CreateRoom(map[string]any{"preset": "private_chat", "room_version": "12",
				"power_level_content_override": map[string]any{"invite": 50},
				"initial_state": []any{map[string]any{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{
					"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": allowed}}}}}})
			rp := "/_matrix/client/v3/rooms/" + hstest.Esc(room)
			if st, res := bob.Do("POST", rp+"/join", map[string]any{}); st != 200 {
				t.Fatalf("/join by a member of the allowed room = %d %s, want 200", st, res.Raw)
			}
			if via := alice.MustDo("GET", rp+"/state/m.room.member/"+hstest.Esc(bob.UserID), nil).Get("join_authorised_via_users_server").String(); via != alice.UserID {
				t.Errorf("join_authorised_via_users_server = %q, want the creator %s", via, alice.UserID)
			}
		})
	}
}
