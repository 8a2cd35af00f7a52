package hstest

import (
	"net/http"
	"testing"
	"time"
)

// ClientFor is a Client for a user of any homeserver reached at base (for
// example a Synapse in the interop tests of tests/synapse), with a token the
// test got some other way. Its helpers speak only the Matrix client API, so
// they work there too.
func ClientFor(t testing.TB, base, userID, deviceID, token string) *Client {
	return &Client{t: t, Base: base, UserID: userID, DeviceID: deviceID, Token: token,
		http: &http.Client{Timeout: 90 * time.Second}}
}

// WithT returns a copy of c that reports to t: a subtest must not fail
// through the parent test's t (Go's testing forbids FailNow on a parent).
func (c *Client) WithT(t testing.TB) *Client {
	cc := *c
	cc.t = t
	return &cc
}
