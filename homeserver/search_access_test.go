package homeserver_test

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// readableSecrets lists the bodies containing "secret" that c reads in
// roomID through /messages, or none when /messages refuses.
func readableSecrets(c *hstest.Client, roomID string) []string {
	code, res := c.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(roomID)+"/messages?dir=b&limit=1000", nil)
	if code != 200 {
		return nil
	}
	var out []string
	for _, e := range res.Get("chunk").Array() {
		if b := e.Get("content.body").String(); e.Get("type").String() == "m.room.message" && strings.Contains(b, "secret") {
			out = append(out, b)
		}
	}
	sort.Strings(out)
	return out
}

// searchSecrets lists the bodies a search for "secret" finds, sorted;
// rooms limits it when not nil.
func searchSecrets(t *testing.T, c *hstest.Client, rooms []string) []string {
	t.Helper()
	extra := map[string]any{"filter": map[string]any{"limit": 100}}
	if rooms != nil {
		extra["filter"] = map[string]any{"limit": 100, "rooms": rooms}
	}
	_, re := searchIDs(t, c, "secret", extra, "")
	var out []string
	for _, r := range re.Get("results").Array() {
		out = append(out, r.Get("result.content.body").String())
	}
	sort.Strings(out)
	return out
}

// TestSearchNeverLeaks: a search shows exactly what /messages shows, room
// by room: nothing of a room never joined (even named in filter.rooms),
// history up to the leave of a room left or banned from, nothing of a room
// only invited to, nothing before the join under "joined" visibility,
// nothing of a forgotten room; a world_readable room is searched when
// named, as /messages reads it, and not otherwise.
func TestSearchNeverLeaks(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			const aliceID = "@alice:localhost"
			vis := func(v string) map[string]any {
				return map[string]any{"preset": "public_chat", "initial_state": []any{map[string]any{
					"type": "m.room.history_visibility", "state_key": "", "content": map[string]any{"history_visibility": v}}}}
			}
			roomPath := func(r, rest string) string { return "/_matrix/client/v3/rooms/" + hstest.Esc(r) + "/" + rest }

			never := bob.CreateRoom(map[string]any{"preset": "private_chat"})
			bob.Send(never, "n1", "secret never")

			left := bob.CreateRoom(map[string]any{"preset": "public_chat"})
			alice.Join(left)
			bob.Send(left, "l1", "secret left-before")
			alice.MustDo("POST", roomPath(left, "leave"), map[string]any{})
			bob.Send(left, "l2", "secret left-after")

			banned := bob.CreateRoom(map[string]any{"preset": "public_chat"})
			alice.Join(banned)
			bob.Send(banned, "b1", "secret banned-before")
			bob.MustDo("POST", roomPath(banned, "ban"), map[string]any{"user_id": aliceID})
			bob.Send(banned, "b2", "secret banned-after")

			invited := bob.CreateRoom(map[string]any{"preset": "private_chat"})
			bob.Send(invited, "i1", "secret invited-before")
			bob.MustDo("POST", roomPath(invited, "invite"), map[string]any{"user_id": aliceID})
			bob.Send(invited, "i2", "secret invited-after")

			joinedVis := bob.CreateRoom(vis("joined"))
			bob.Send(joinedVis, "j1", "secret joined-before")
			alice.Join(joinedVis)
			bob.Send(joinedVis, "j2", "secret joined-after")

			world := bob.CreateRoom(vis("world_readable"))
			bob.Send(world, "w1", "secret world")

			forgot := bob.CreateRoom(map[string]any{"preset": "public_chat"})
			alice.Join(forgot)
			bob.Send(forgot, "f1", "secret forgot-before")
			alice.MustDo("POST", roomPath(forgot, "leave"), map[string]any{})
			alice.MustDo("POST", roomPath(forgot, "forget"), map[string]any{})

			for _, tc := range []struct {
				name, room string
				want       []string
			}{
				{"never joined", never, nil},
				{"left", left, []string{"secret left-before"}},
				{"banned", banned, []string{"secret banned-before"}},
				{"invited only", invited, nil},
				{"joined visibility", joinedVis, []string{"secret joined-after"}},
				{"world_readable, named", world, []string{"secret world"}},
				{"forgotten", forgot, nil},
			} {
				got := searchSecrets(t, alice, []string{tc.room})
				if !slices.Equal(got, tc.want) {
					t.Errorf("%s: search finds %q, want %q", tc.name, got, tc.want)
				}
				if msgs := readableSecrets(alice, tc.room); !slices.Equal(got, msgs) {
					t.Errorf("%s: search finds %q, /messages shows %q: they must agree", tc.name, got, msgs)
				}
			}
			want := []string{"secret banned-before", "secret joined-after", "secret left-before"}
			if got := searchSecrets(t, alice, nil); !slices.Equal(got, want) {
				t.Errorf("search of all rooms finds %q, want %q", got, want)
			}
			// The owner, for contrast, finds every secret of their rooms.
			if got := searchSecrets(t, bob, nil); len(got) != 11 {
				t.Errorf("bob finds %d secrets (%q), want 11", len(got), got)
			}
		})
	}
}
