package homeserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// postFrom posts a JSON body as if from addr (loopback peers are trusted for
// X-Forwarded-For, as behind a reverse proxy).
func postFrom(t *testing.T, base, path, addr string, body any) (int, gjson.Result) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if addr != "" {
		req.Header.Set("X-Forwarded-For", addr)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, gjson.ParseBytes(out)
}

func loginBody(user, pw string) map[string]any {
	return map[string]any{"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": user}, "password": pw}
}

// TestFailedLoginLimitPerAccount guesses one account's password from a new
// address each time. After the burst of 3 wrong passwords the account's
// logins get 429 M_LIMIT_EXCEEDED with retry_after_ms, even the right
// password, while another account is untouched; unknown accounts behave
// the same, so the limit does not reveal which accounts exist. Before the
// limit, every guess was answered 403.
func TestFailedLoginLimitPerAccount(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store, Mutate: func(c *config.Config) { c.RateLimit.Enabled = true }})
			srv.Register(t, "alice")
			srv.Register(t, "bob")
			for _, user := range []string{"alice", "nobody"} {
				for i := range 3 {
					addr := fmt.Sprintf("198.51.100.%d", i+1)
					if st, res := postFrom(t, srv.URL, "/_matrix/client/v3/login", addr, loginBody(user, "wrong")); st != 403 {
						t.Errorf("%s: wrong password %d = %d %s, want 403", user, i+1, st, res.Raw)
					}
				}
				st, res := postFrom(t, srv.URL, "/_matrix/client/v3/login", "203.0.113.9", loginBody(user, "wrong"))
				if st != 429 || res.Get("errcode").String() != "M_LIMIT_EXCEEDED" || res.Get("retry_after_ms").Int() <= 0 {
					t.Errorf("%s: 4th wrong password = %d %s, want 429 M_LIMIT_EXCEEDED with retry_after_ms", user, st, res.Raw)
				}
			}
			if st, res := postFrom(t, srv.URL, "/_matrix/client/v3/login", "", loginBody("alice", "pw-alice")); st != 429 {
				t.Errorf("alice's right password while limited = %d %s, want 429", st, res.Raw)
			}
			// Successful logins do not count: bob logs in more than the burst.
			for i := range 5 {
				if st, res := postFrom(t, srv.URL, "/_matrix/client/v3/login", "", loginBody("bob", "pw-bob")); st != 200 {
					t.Fatalf("bob's login %d = %d %s, want 200", i+1, st, res.Raw)
				}
			}
		})
	}
}

// TestRegistrationLimitPerAddress registers from one address until it is
// refused with 429, and checks another address still may. Before the
// limit, one address could create accounts without end.
func TestRegistrationLimitPerAddress(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) { c.RateLimit.Enabled = true }})
	register := func(name, addr string) (int, gjson.Result) {
		return postFrom(t, srv.URL, "/_matrix/client/v3/register", addr, map[string]any{
			"username": name, "password": "pw", "auth": map[string]any{"type": "m.login.dummy"}})
	}
	for i := range 3 {
		if st, res := register(fmt.Sprintf("u%d", i), "198.51.100.7"); st != 200 {
			t.Fatalf("registration %d = %d %s, want 200", i+1, st, res.Raw)
		}
	}
	st, res := register("u3", "198.51.100.7")
	if st != 429 || res.Get("errcode").String() != "M_LIMIT_EXCEEDED" || res.Get("retry_after_ms").Int() <= 0 {
		t.Errorf("4th registration from one address = %d %s, want 429 M_LIMIT_EXCEEDED with retry_after_ms", st, res.Raw)
	}
	if st, res := register("u3", "198.51.100.8"); st != 200 {
		t.Errorf("registration from another address = %d %s, want 200", st, res.Raw)
	}
}
