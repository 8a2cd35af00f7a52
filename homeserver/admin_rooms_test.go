package homeserver_test

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// backwardBodies pages /messages backwards from the end in pages of 2 and
// returns the message bodies, oldest first: paging across a purge must
// end cleanly.
func backwardBodies(t *testing.T, c *hstest.Client, room string) []string {
	t.Helper()
	var out []string
	from := ""
	for page := 0; page < 100; page++ {
		q := "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/messages?dir=b&limit=2"
		if from != "" {
			q += "&from=" + url.QueryEscape(from)
		}
		res := c.MustDo("GET", q, nil)
		for _, e := range res.Get("chunk").Array() {
			if e.Get("type").String() == "m.room.message" {
				out = append([]string{e.Get("content.body").String()}, out...)
			}
		}
		if !res.Get("end").Exists() || len(res.Get("chunk").Array()) == 0 {
			return out
		}
		from = res.Get("end").String()
	}
	t.Fatalf("backward paging in %s did not end", room)
	return nil
}

// TestAdminPurgeHistory: purging a room's history before a time deletes
// the older messages only; state stays, the room stays usable, and sync
// (initial and incremental), /messages both ways and /context answer
// correctly afterwards, on both stores.
func TestAdminPurgeHistory(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv, boss := adminServer(t, store)
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "name": "Archive"})
			bob.Join(room)
			bobBefore := bob.Sync("", 0).Get("next_batch").String()
			var oldIDs []string
			for i := range 5 {
				oldIDs = append(oldIDs, alice.Send(room, fmt.Sprint("o", i), fmt.Sprint("old", i)))
			}
			last := alice.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/event/"+hstest.Esc(oldIDs[4]), nil).Get("origin_server_ts").Int()
			cut := last + 1
			hstest.Eventually(t, "the clock to pass the old messages", func() bool { return time.Now().UnixMilli() > cut })
			bobSince := bob.Sync("", 0).Get("next_batch").String()
			for i := range 3 {
				alice.Send(room, fmt.Sprint("n", i), fmt.Sprint("new", i))
			}
			if got := hstest.Bodies(bob.Sync(bobBefore, 0), room); len(got) != 8 { // sync's timeline cache now holds them
				t.Fatalf("bob's sync before the purge = %v, want all 8 messages", got)
			}
			r := hstest.Esc(room)
			for _, c := range []struct {
				name    string
				cl      *hstest.Client
				path    string
				body    any
				status  int
				errcode string
			}{
				{"non-admin", alice, "/rooms/" + r + "/purge_history", map[string]any{"before_ts": cut}, 403, "M_FORBIDDEN"},
				{"unknown room", boss, "/rooms/" + hstest.Esc("!nope:localhost") + "/purge_history", map[string]any{"before_ts": cut}, 404, "M_NOT_FOUND"},
				{"no before_ts", boss, "/rooms/" + r + "/purge_history", map[string]any{}, 400, "M_MISSING_PARAM"},
				{"future before_ts", boss, "/rooms/" + r + "/purge_history", map[string]any{"before_ts": time.Now().Add(time.Hour).UnixMilli()}, 400, "M_INVALID_PARAM"},
				{"zero before_ts", boss, "/rooms/" + r + "/purge_history", map[string]any{"before_ts": 0}, 400, "M_INVALID_PARAM"},
			} {
				if st, res := c.cl.Do("POST", adminAPI+c.path, c.body); st != c.status || res.Get("errcode").String() != c.errcode {
					t.Errorf("%s: got %d %s, want %d %s", c.name, st, res.Raw, c.status, c.errcode)
				}
			}
			if got := alice.MessageBodies(room); len(got) != 8 {
				t.Fatalf("messages after refusals = %v, want all 8", got)
			}

			res := boss.MustDo("POST", adminAPI+"/rooms/"+r+"/purge_history", map[string]any{"before_ts": cut})
			if got := res.Get("purged_events").Int(); got != 5 {
				t.Errorf("purged_events = %d, want 5", got)
			}
			want := []string{"new0", "new1", "new2"}
			if got := alice.MessageBodies(room); !slices.Equal(got, want) {
				t.Errorf("/messages forwards after purge = %v, want %v", got, want)
			}
			if got := backwardBodies(t, bob, room); !slices.Equal(got, want) {
				t.Errorf("/messages backwards after purge = %v, want %v", got, want)
			}
			if st, res := alice.Do("GET", "/_matrix/client/v3/rooms/"+r+"/context/"+hstest.Esc(oldIDs[0]), nil); st != 404 {
				t.Errorf("/context of a purged event = %d %s, want 404", st, res.Raw)
			}
			fresh := srv.Login(t, "bob")
			init := fresh.Sync("", 0)
			if got := hstest.Bodies(init, room); !slices.Equal(got, want) {
				t.Errorf("initial sync timeline after purge = %v, want %v", got, want)
			}
			name := ""
			for _, e := range hstest.Room(init, "join", room).Get("state.events").Array() {
				if e.Get("type").String() == "m.room.name" {
					name = e.Get("content.name").String()
				}
			}
			if name == "" {
				for _, e := range hstest.Room(init, "join", room).Get("timeline.events").Array() {
					if e.Get("type").String() == "m.room.name" {
						name = e.Get("content.name").String()
					}
				}
			}
			if name != "Archive" {
				t.Errorf("room name in initial sync after purge = %q, want Archive (state kept)", name)
			}
			if got := hstest.Bodies(bob.Sync(bobBefore, 0), room); !slices.Equal(got, want) {
				t.Errorf("sync from before the old messages, after purge = %v, want %v (no cached purged events)", got, want)
			}
			if got := hstest.Bodies(bob.Sync(bobSince, 0), room); !slices.Equal(got, want) {
				t.Errorf("incremental sync after purge = %v, want %v", got, want)
			}
			// The room goes on: a new message reaches sync and /messages.
			alice.Send(room, "a", "after")
			if got := hstest.Bodies(fresh.Sync(init.Get("next_batch").String(), 0), room); !slices.Equal(got, []string{"after"}) {
				t.Errorf("sync of a send after the purge = %v, want [after]", got)
			}
			if got := alice.MessageBodies(room); !slices.Equal(got, append(want, "after")) {
				t.Errorf("/messages after a new send = %v, want %v", got, append(want, "after"))
			}
			wantActions(t, auditActions(t, boss, room), "room.purge_history")
		})
	}
}

// TestAdminDeleteRoom: deleting a room blocks it and makes every local
// member and invitee leave (their syncs show it); with purge the room is
// gone from the store. Refusals change nothing; each deletion is audited.
func TestAdminDeleteRoom(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv, boss := adminServer(t, store)
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			carol := srv.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/invite", map[string]any{"user_id": carol.UserID})
			alice.Send(room, "1", "hello")
			r := hstest.Esc(room)
			if st, res := alice.Do("DELETE", adminAPI+"/rooms/"+r, map[string]any{}); st != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("non-admin delete = %d %s, want 403 M_FORBIDDEN", st, res.Raw)
			}
			if st, res := boss.Do("DELETE", adminAPI+"/rooms/"+hstest.Esc("!nope:localhost"), map[string]any{}); st != 404 || res.Get("errcode").String() != "M_NOT_FOUND" {
				t.Errorf("delete of an unknown room = %d %s, want 404 M_NOT_FOUND", st, res.Raw)
			}
			if st, res := boss.Do("DELETE", adminAPI+"/rooms/"+hstest.Esc("#alias:localhost"), map[string]any{}); st != 400 || res.Get("errcode").String() != "M_INVALID_PARAM" {
				t.Errorf("delete of a non-room ID = %d %s, want 400 M_INVALID_PARAM", st, res.Raw)
			}
			since := bob.Sync("", 0).Get("next_batch").String()

			res := boss.MustDo("DELETE", adminAPI+"/rooms/"+r, map[string]any{})
			var kicked []string
			for _, u := range res.Get("kicked_users").Array() {
				kicked = append(kicked, u.String())
			}
			slices.Sort(kicked)
			if want := []string{alice.UserID, bob.UserID, carol.UserID}; !slices.Equal(kicked, want) {
				t.Errorf("kicked_users = %v, want %v", kicked, want)
			}
			if !hstest.Room(bob.Sync(since, 0), "leave", room).Exists() {
				t.Errorf("bob's sync after the delete has no leave for the room")
			}
			if st, res := bob.Do("POST", "/_matrix/client/v3/join/"+r, map[string]any{}); st != 403 {
				t.Errorf("join after delete = %d %s, want 403", st, res.Raw)
			}
			if d := boss.MustDo("GET", adminAPI+"/rooms/"+r, nil); !d.Get("blocked").Bool() || d.Get("joined_members").Int() != 0 {
				t.Errorf("room after delete = %s, want blocked with no members", d.Raw)
			}

			// With purge the room is gone from the store.
			gone := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_alias_name": "gone"})
			bob.Join(gone)
			alice.Send(gone, "2", "soon gone")
			res = boss.MustDo("DELETE", adminAPI+"/rooms/"+hstest.Esc(gone), map[string]any{"purge": true})
			if got := res.Get("purged_events").Int(); got < 5 {
				t.Errorf("purged_events = %d, want the room's events", got)
			}
			if st, res := boss.Do("GET", adminAPI+"/rooms/"+hstest.Esc(gone), nil); st != 404 {
				t.Errorf("purged room details = %d %s, want 404", st, res.Raw)
			}
			if st, res := alice.Do("GET", "/_matrix/client/v3/directory/room/"+hstest.Esc("#gone:localhost"), nil); st != 404 {
				t.Errorf("alias of a purged room = %d %s, want 404", st, res.Raw)
			}
			init := srv.Login(t, "alice").Sync("", 0)
			if hstest.Room(init, "join", gone).Exists() {
				t.Errorf("alice's initial sync still shows the purged room as joined")
			}
			alice.MustDo("GET", "/_matrix/client/v3/account/whoami", nil)
			wantActions(t, auditActions(t, boss, room), "room.delete")
			wantActions(t, auditActions(t, boss, gone), "room.delete")
		})
	}
}

// TestAdminMakeRoomAdmin: a local user is made a room's admin by a power
// levels event from its most powerful local member, joining first (by
// invite in a private room); in version 11 and 12 rooms. A room with no
// local member able to change power levels is refused with 400.
func TestAdminMakeRoomAdmin(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv, boss := adminServer(t, store)
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			carol := srv.Register(t, "carol")
			levels := func(room string) gjson.Result {
				return bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.power_levels", nil).Get("users")
			}
			for _, version := range []string{"11", "12"} {
				room := alice.CreateRoom(map[string]any{"preset": "private_chat", "room_version": version})
				alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/invite", map[string]any{"user_id": bob.UserID})
				bob.Join(room)
				boss.MustDo("POST", adminAPI+"/rooms/"+hstest.Esc(room)+"/make_room_admin", map[string]any{"user_id": carol.UserID})
				if got := levels(room).Get(gjsonKey(carol.UserID)).Int(); got != 100 {
					t.Errorf("v%s: carol's level = %d (%s), want 100", version, got, levels(room).Raw)
				}
				m := bob.MustDo("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(carol.UserID), nil)
				if got := m.Get("membership").String(); got != "join" {
					t.Errorf("v%s: carol's membership = %q, want join", version, got)
				}
				wantActions(t, auditActions(t, boss, room), "room.make_admin")
			}
			// Nobody local may change the levels: the creator left.
			orphan := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_version": "11"})
			bob.Join(orphan)
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(orphan)+"/leave", map[string]any{})
			o := hstest.Esc(orphan)
			for _, c := range []struct {
				name    string
				cl      *hstest.Client
				room    string
				body    any
				status  int
				errcode string
			}{
				{"no local admin", boss, o, map[string]any{"user_id": carol.UserID}, 400, "M_INVALID_PARAM"},
				{"non-admin", alice, o, map[string]any{"user_id": alice.UserID}, 403, "M_FORBIDDEN"},
				{"unknown user", boss, o, map[string]any{"user_id": "@nobody:localhost"}, 404, "M_NOT_FOUND"},
				{"unknown room", boss, hstest.Esc("!nope:localhost"), map[string]any{"user_id": carol.UserID}, 404, "M_NOT_FOUND"},
				{"no user", boss, o, map[string]any{}, 400, "M_MISSING_PARAM"},
			} {
				if st, res := c.cl.Do("POST", adminAPI+"/rooms/"+c.room+"/make_room_admin", c.body); st != c.status || res.Get("errcode").String() != c.errcode {
					t.Errorf("%s: got %d %s, want %d %s", c.name, st, res.Raw, c.status, c.errcode)
				}
			}
			if got := levels(orphan).Get(gjsonKey(carol.UserID)); got.Exists() {
				t.Errorf("refused make_room_admin changed the levels: carol has %s", got.Raw)
			}
		})
	}
}
