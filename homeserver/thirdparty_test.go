package homeserver_test

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestThirdPartyLookups: Parley bridges no protocol, so user and location
// lookups answer 200 with an empty list (as Synapse does without application
// services) and a protocol's metadata 404 M_NOT_FOUND. Element Web asks
// /thirdparty/user/im.vector.protocol.sip_virtual on start; it used to get
// 404 M_UNRECOGNIZED (no such endpoint).
func TestThirdPartyLookups(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	anon := srv.Anon(t)
	cases := []struct {
		path    string
		status  int
		body    string
		errcode string
	}{
		{"/_matrix/client/v3/thirdparty/user/im.vector.protocol.sip_virtual?virtual_mxid=%40a%3Ab", 200, "[]", ""},
		{"/_matrix/client/v3/thirdparty/location/irc", 200, "[]", ""},
		{"/_matrix/client/v3/thirdparty/user?userid=%40alice%3Alocalhost", 200, "[]", ""},
		{"/_matrix/client/v3/thirdparty/location?alias=%23a%3Ab", 200, "[]", ""},
		{"/_matrix/client/r0/thirdparty/user/irc", 200, "[]", ""},
		{"/_matrix/client/v3/thirdparty/protocol/irc", 404, "", "M_NOT_FOUND"},
		{"/_matrix/client/v3/thirdparty/protocols", 200, "{}", ""},
	}
	for _, c := range cases {
		st, body := alice.Do("GET", c.path, nil)
		if st != c.status {
			t.Errorf("GET %s = %d %s, want %d", c.path, st, body.Raw, c.status)
			continue
		}
		if got := strings.TrimSpace(body.Raw); c.body != "" && got != c.body {
			t.Errorf("GET %s body = %s, want %s", c.path, got, c.body)
		}
		if got := body.Get("errcode").String(); got != c.errcode {
			t.Errorf("GET %s errcode = %q, want %q", c.path, got, c.errcode)
		}
	}
	if st, _ := anon.Do("GET", "/_matrix/client/v3/thirdparty/user/irc", nil); st != 401 {
		t.Errorf("thirdparty lookup without a token = %d, want 401", st)
	}
}
