package clientapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/parley-im/parley/apierr"
)

func TestReadJSON(t *testing.T) {
	a := &API{cfg: Config{MaxBodyBytes: 64}}
	cases := []struct {
		body string
		code string
	}{
		{`{"a":1}`, ""},
		{``, ""},
		{`{nope`, "M_NOT_JSON"},
		{`[1,2]`, "M_BAD_JSON"},
		{`{"a":"` + strings.Repeat("x", 100) + `"}`, "M_TOO_LARGE"},
	}
	for _, c := range cases {
		var v map[string]any
		err := a.readJSON(httptest.NewRequest("POST", "/", strings.NewReader(c.body)), &v)
		var ae *apierr.Error
		got := ""
		if errors.As(err, &ae) {
			got = ae.Code
		}
		if got != c.code {
			t.Errorf("readJSON(%.20q) = %v, want %q", c.body, err, c.code)
		}
	}
}

// FuzzReadJSON: no request body makes the parser panic, and whatever it
// accepts is valid JSON no deeper than the limit.
func FuzzReadJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,{"b":"\"}"}]}`, `[[[[`, `"\\"`, strings.Repeat("[", 70) + strings.Repeat("]", 70)} {
		f.Add([]byte(s))
	}
	a := &API{cfg: Config{MaxBodyBytes: 1 << 16}}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v any
		if err := a.readJSON(httptest.NewRequest("POST", "/", bytes.NewReader(body)), &v); err != nil {
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Status >= 500 {
				t.Fatalf("readJSON error is not a client error: %v", err)
			}
			return
		}
		if len(body) > 0 && !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
	})
}

func TestClientIP(t *testing.T) {
	cases := []struct {
		remote, xff, want string
	}{
		{"10.0.0.5:1234", "", "10.0.0.5"},
		{"10.0.0.5:1234", "1.2.3.4", "10.0.0.5"},          // not from a local proxy: header ignored
		{"127.0.0.1:1234", "9.9.9.9, 1.2.3.4", "1.2.3.4"}, // the proxy's own view is the last entry
		{"[::1]:1234", "2001:db8::1", "2001:db8::1"},      // IPv6 loopback proxy
		{"127.0.0.1:1234", "", "127.0.0.1"},               // local tool, no proxy
		{"127.0.0.1:1234", "not-an-ip", "127.0.0.1"},      // garbage header
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := clientIP(r); got != c.want {
			t.Errorf("clientIP(%s, XFF %q) = %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
	if k, _ := limitKey("2001:db8:1:2:3:4:5:6"); k != "2001:db8:1:2::/64" {
		t.Errorf("limitKey(IPv6) = %s, want the /64", k)
	}
}
