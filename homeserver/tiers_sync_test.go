package homeserver_test

import (
	"regexp"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// validEventID is the shape of a room v4+ event ID: "$" and 43 characters of
// unpadded URL-safe base64.
var validEventID = regexp.MustCompile(`^\$[A-Za-z0-9_-]{43}$`)

// TestTierChangeReachesIncrementalSync (issue 15 item 20, follow-up): when a
// join, leave, kick or ban takes a room across large_above, in either
// direction, the next incremental sync of every device of an existing member
// carries io.parley.room.tier with the new tier in the room's state,
// "small" included, with a stable, valid event shape.
func TestTierChangeReachesIncrementalSync(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st, Mutate: func(c *config.Config) {
				c.RoomTiers = config.RoomTiers{LargeAbove: 3, HugeAbove: 10}
			}})
			alice := srv.Register(t, "alice")
			// The third device's filter drops member events from timelines:
			// it must learn the tier all the same.
			devices := []*hstest.Client{alice, srv.Login(t, "alice"), srv.Login(t, "alice")}
			filters := []string{`{}`, `{}`, `{"room":{"timeline":{"types":["m.room.message"]}}}`}
			bob, carol := srv.Register(t, "bob"), srv.Register(t, "carol")
			room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(room)
			carol.Join(room) // three joined: still small
			since := make([]string, len(devices))
			for i, d := range devices {
				since[i] = syncFiltered(d, "", filters[i]).Get("next_batch").String()
			}
			// tierIn syncs every device from its token and returns the tier
			// each saw in the room's state ("" for none).
			tierIn := func(step string) []gjson.Result {
				t.Helper()
				var out []gjson.Result
				for i, d := range devices {
					s := syncFiltered(d, since[i], filters[i])
					since[i] = s.Get("next_batch").String()
					got := stateOfType(s, room, "io.parley.room.tier")
					if len(got) != 1 {
						t.Errorf("%s: device %d's incremental sync carries %d tier events %v, want 1", step, i, len(got), got)
						out = append(out, gjson.Result{})
						continue
					}
					out = append(out, got[0])
				}
				return out
			}
			path := "/_matrix/client/v3/rooms/" + hstest.Esc(room)
			ids := map[string]string{} // tier -> event ID seen
			for _, c := range []struct {
				name, user string
				remove     func(u *hstest.Client)
			}{
				{"leave", "dave", func(u *hstest.Client) { u.MustDo("POST", path+"/leave", map[string]any{}) }},
				{"kick", "erin", func(u *hstest.Client) {
					alice.MustDo("POST", path+"/kick", map[string]any{"user_id": u.UserID})
				}},
				{"ban", "frank", func(u *hstest.Client) {
					alice.MustDo("POST", path+"/ban", map[string]any{"user_id": u.UserID})
				}},
			} {
				u := srv.Register(t, c.user)
				u.Join(room) // four joined: large
				for i, ev := range tierIn(c.name + ": join") {
					if got := ev.Get("content.tier").String(); got != "large" {
						t.Errorf("%s: after %s joins, device %d sees tier %q, want large", c.name, c.user, i, got)
					}
					checkTierShape(t, ev, room, alice.UserID, "large", ids)
				}
				// A state read shows the same event as sync.
				found := false
				for _, e := range alice.MustDo("GET", path+"/state", nil).Array() {
					if e.Get("type").String() == "io.parley.room.tier" {
						found = true
						checkTierShape(t, e, room, alice.UserID, "large", ids)
					}
				}
				if !found {
					t.Errorf("%s: GET /state of the large room has no io.parley.room.tier", c.name)
				}
				c.remove(u) // three joined: small again
				for i, ev := range tierIn(c.name) {
					if got := ev.Get("content.tier").String(); got != "small" {
						t.Errorf("%s: after %s goes, device %d sees tier %q, want small", c.name, c.user, i, got)
					}
					if got := ev.Get("content.max_members").Int(); got != 3 {
						t.Errorf("%s: small tier's max_members = %d, want 3", c.name, got)
					}
					checkTierShape(t, ev, room, alice.UserID, "small", ids)
				}
			}
			// A message after that carries no tier event: nothing changed.
			alice.Send(room, "m1", "quiet")
			for i, d := range devices {
				if got := stateOfType(syncFiltered(d, since[i], filters[i]), room, "io.parley.room.tier"); len(got) != 0 {
					t.Errorf("a message's sync on device %d carries tier state %v, want none", i, got)
				}
			}
			if ids["small"] == ids["large"] {
				t.Errorf("small and large tier events share the event ID %q, want one per tier", ids["small"])
			}
		})
	}
}

// checkTierShape checks the synthetic event looks like a real state event:
// the creator as sender, a valid event ID stable per (room, tier), a time.
func checkTierShape(t *testing.T, ev gjson.Result, room, creator, tier string, ids map[string]string) {
	t.Helper()
	if !ev.Exists() {
		return
	}
	if got := ev.Get("sender").String(); got != creator {
		t.Errorf("tier event sender = %q, want the creator %q", got, creator)
	}
	if got := ev.Get("origin_server_ts").Int(); got <= 0 {
		t.Errorf("tier event origin_server_ts = %d, want set", got)
	}
	if got := ev.Get("state_key"); !got.Exists() || got.String() != "" {
		t.Errorf("tier event state_key = %s, want \"\"", got.Raw)
	}
	id := ev.Get("event_id").String()
	if !validEventID.MatchString(id) {
		t.Errorf("tier event ID %q, want $ and 43 URL-safe base64 characters", id)
	}
	if prev, ok := ids[tier]; ok && prev != id {
		t.Errorf("tier %s event ID changed from %q to %q, want stable", tier, prev, id)
	}
	ids[tier] = id
}
