package synapse_test

import (
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// within polls cond every 20 ms until it holds, and fails the test if that
// takes longer than d. It returns how long it took.
func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// joinVia joins a room by ID or alias through the given server.
func joinVia(c *hstest.Client, room, server string) (int, gjson.Result) {
	return c.Do("POST", "/_matrix/client/v3/join/"+hstest.Esc(room)+"?server_name="+url.QueryEscape(server), map[string]any{})
}

// membership is user's membership in room as c's server sees it ("" if
// none or if c may not read the state).
func membership(c *hstest.Client, room, user string) string {
	st, res := c.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(user), nil)
	if st != 200 {
		return ""
	}
	return res.Get("membership").String()
}

// waitMembership waits until c's server sees user's membership as want.
func waitMembership(t *testing.T, c *hstest.Client, room, user, want string) {
	t.Helper()
	hstest.Eventually(t, c.UserID+" sees "+user+" "+want+" in "+room, func() bool { return membership(c, room, user) == want })
}

// stateIDs is the event ID of each piece of room state c's server holds,
// sorted, as "type|state_key=event_id".
func stateIDs(c *hstest.Client, room string) []string {
	st, res := c.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state", nil)
	if st != 200 {
		return nil
	}
	var out []string
	for _, ev := range res.Array() {
		out = append(out, ev.Get("type").String()+"|"+ev.Get("state_key").String()+"="+ev.Get("event_id").String())
	}
	slices.Sort(out)
	return out
}

// sameState waits until both servers hold the same room state, event IDs
// included, and fails with both lists if they do not.
func sameState(t *testing.T, a, b *hstest.Client, room string) {
	t.Helper()
	var sa, sb []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		sa, sb = stateIDs(a, room), stateIDs(b, room)
		if len(sa) > 0 && slices.Equal(sa, sb) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/state of %s differs:\n%s sees %q\n%s sees %q", room, a.UserID, sa, b.UserID, sb)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recentBodies lists the bodies of the last limit m.room.message events of
// room as c's server sees them, newest first.
func recentBodies(c *hstest.Client, room string, limit int) []string {
	st, res := c.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/messages?dir=b&limit="+strconv.Itoa(limit), nil)
	if st != 200 {
		return nil
	}
	var out []string
	for _, ev := range res.Get("chunk").Array() {
		if ev.Get("type").String() == "m.room.message" {
			out = append(out, ev.Get("content.body").String())
		}
	}
	return out
}

// sees reports whether c's server has a message with this body among the
// room's last 50.
func sees(c *hstest.Client, room, body string) bool {
	return slices.Contains(recentBodies(c, room, 50), body)
}
