// Package interop holds the helpers Parley's interoperability tests share
// (tests/synapse, tests/dendrite): making users on another homeserver through the
// shared-secret registration API that Synapse and Dendrite both serve, and
// the checks a joined room must pass on both sides (same /state event IDs,
// messages seen both ways). It only speaks the client-server API, so it
// fits any homeserver. tests/synapse and tests/dendrite use it.
package interop

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// runID and seq keep names unique across runs against one kept server and
// across subtests.
var (
	runID = fmt.Sprintf("%x", rand.Uint32())
	seq   atomic.Int64
)

// Uniq returns a name (user localpart, alias, message body) unique to this
// run and call.
func Uniq(name string) string { return fmt.Sprintf("%s-%s-%d", name, runID, seq.Add(1)) }

// Register makes a user on the homeserver whose client API is at base,
// through /_synapse/admin/v1/register and its shared secret (the HMAC-SHA1
// of nonce, name, password and "notadmin"), and returns a logged-in client.
func Register(t testing.TB, base, secret, name string) *hstest.Client {
	t.Helper()
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	call(t, base, "GET", "/_synapse/admin/v1/register", nil, &nonce)
	password := "pw-" + name
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(nonce.Nonce + "\x00" + name + "\x00" + password + "\x00notadmin"))
	var reg struct {
		UserID   string `json:"user_id"`
		DeviceID string `json:"device_id"`
		Token    string `json:"access_token"`
	}
	call(t, base, "POST", "/_synapse/admin/v1/register", map[string]any{
		"nonce": nonce.Nonce, "username": name, "password": password, "admin": false, "mac": hex.EncodeToString(mac.Sum(nil)),
	}, &reg)
	if reg.Token == "" {
		t.Fatalf("register %s on %s: no access token", name, base)
	}
	return hstest.ClientFor(t, base, reg.UserID, reg.DeviceID, reg.Token)
}

// call sends an unauthenticated JSON request to a client API.
func call(t testing.TB, base, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, base, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("%s %s%s = %d %s, want 200", method, base, path, res.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s %s%s: %v in %s", method, base, path, err, raw)
	}
}

// Within polls cond every 20 ms until it holds, and fails the test if that
// takes longer than d. It returns how long it took.
func Within(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
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

// JoinVia joins a room by ID or alias through the given server.
func JoinVia(c *hstest.Client, room, server string) (int, gjson.Result) {
	return c.Do("POST", "/_matrix/client/v3/join/"+hstest.Esc(room)+"?server_name="+url.QueryEscape(server), map[string]any{})
}

// Membership is user's membership in room as c's server sees it ("" if
// none or if c may not read the state).
func Membership(c *hstest.Client, room, user string) string {
	st, res := c.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/m.room.member/"+hstest.Esc(user), nil)
	if st != 200 {
		return ""
	}
	return res.Get("membership").String()
}

// WaitMembership waits until c's server sees user's membership as want.
func WaitMembership(t testing.TB, c *hstest.Client, room, user, want string) {
	t.Helper()
	hstest.Eventually(t, c.UserID+" sees "+user+" "+want+" in "+room, func() bool { return Membership(c, room, user) == want })
}

// StateIDs is the event ID of each piece of room state c's server holds,
// sorted, as "type|state_key=event_id".
func StateIDs(c *hstest.Client, room string) []string {
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

// SameState waits (up to 20 s, polled) until both servers hold the same
// room state, event IDs included, and fails with both lists if they do not.
func SameState(t testing.TB, a, b *hstest.Client, room string) {
	t.Helper()
	var sa, sb []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		sa, sb = StateIDs(a, room), StateIDs(b, room)
		if len(sa) > 0 && slices.Equal(sa, sb) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/state of %s differs:\n%s sees %q\n%s sees %q", room, a.UserID, sa, b.UserID, sb)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RecentBodies lists the bodies of the room's last limit m.room.message
// events as c's server sees them, newest first.
func RecentBodies(c *hstest.Client, room string, limit int) []string {
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

// Sees reports whether c's server has a message with this body among the
// room's last 50.
func Sees(c *hstest.Client, room, body string) bool {
	return slices.Contains(RecentBodies(c, room, 50), body)
}

// MessagesBothWays sends a message from each side and checks the other
// side's server shows it within d (polled, not slept).
func MessagesBothWays(t testing.TB, a, b *hstest.Client, room string, d time.Duration) {
	t.Helper()
	for _, dir := range []struct{ from, to *hstest.Client }{{a, b}, {b, a}} {
		body := Uniq("hello from " + dir.from.UserID)
		dir.from.Send(room, body, body)
		took := Within(t, d, dir.to.UserID+" sees "+body, func() bool { return Sees(dir.to, room, body) })
		t.Logf("%s -> %s: seen after %v", dir.from.UserID, dir.to.UserID, took.Round(time.Millisecond))
	}
}
