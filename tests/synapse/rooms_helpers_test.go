package synapse_test

import (
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/tests/interop"
)

// The room checks live in tests/interop, shared with tests/dendrite; these
// short names keep the Synapse tests readable.

// within polls cond every 20 ms until it holds, and fails the test if that
// takes longer than d. It returns how long it took.
func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return interop.Within(t, d, what, cond)
}

// joinVia joins a room by ID or alias through the given server.
func joinVia(c *hstest.Client, room, server string) (int, gjson.Result) {
	return interop.JoinVia(c, room, server)
}

// membership is user's membership in room as c's server sees it.
func membership(c *hstest.Client, room, user string) string { return interop.Membership(c, room, user) }

// waitMembership waits until c's server sees user's membership as want.
func waitMembership(t *testing.T, c *hstest.Client, room, user, want string) {
	t.Helper()
	interop.WaitMembership(t, c, room, user, want)
}

// stateIDs is the room state c's server holds, sorted, as
// "type|state_key=event_id".
func stateIDs(c *hstest.Client, room string) []string { return interop.StateIDs(c, room) }

// sameState waits until both servers hold the same room state, event IDs
// included, and fails with both lists if they do not.
func sameState(t *testing.T, a, b *hstest.Client, room string) {
	t.Helper()
	interop.SameState(t, a, b, room)
}

// recentBodies lists the bodies of the room's last limit m.room.message
// events as c's server sees them, newest first.
func recentBodies(c *hstest.Client, room string, limit int) []string {
	return interop.RecentBodies(c, room, limit)
}

// sees reports whether c's server has a message with this body among the
// room's last 50.
func sees(c *hstest.Client, room, body string) bool { return interop.Sees(c, room, body) }
