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
