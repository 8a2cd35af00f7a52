package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"maunium.net/go/mautrix/federation"
)

// staticKeys knows one key of one server.
type staticKeys struct {
	server, keyID string
	pub           ed25519.PublicKey
}

func (s staticKeys) VerifyKey(_ context.Context, server, keyID string, _ int64, _ string) (ed25519.PublicKey, error) {
	if server == s.server && keyID == s.keyID {
		return s.pub, nil
	}
	return nil, errors.New("no such key")
}

const testDest = "dest.example:8448"

func newAuthServer(t testing.TB) (*httptest.Server, ed25519.PrivateKey) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	a := NewAuthenticator(testDest, staticKeys{"origin.example", "ed25519:k1", priv.Public().(ed25519.PublicKey)}, 1024)
	srv := httptest.NewServer(a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s|%s", Origin(r.Context()), body)
	})))
	t.Cleanup(srv.Close)
	return srv, priv
}

func sign(t testing.TB, priv ed25519.PrivateKey, method, uri, origin, dest, body string) string {
	obj := map[string]any{"method": method, "uri": uri, "origin": origin, "destination": dest}
	if body != "" {
		obj["content"] = json.RawMessage(body)
	}
	sig, err := (&federation.SigningKey{ID: "ed25519:k1", Priv: priv}).SignJSON(obj)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestAuthenticate(t *testing.T) {
	srv, priv := newAuthServer(t)
	uri := "/_matrix/federation/v1/send/1?x=a%20b"
	body := `{"pdus":[],"b":1,"a":2}`
	sig := sign(t, priv, "PUT", uri, "origin.example", testDest, body)
	for _, tc := range []struct {
		name, header, body string
		wantStatus         int
	}{
		{"quoted", fmt.Sprintf(`X-Matrix origin="origin.example",destination="%s",key="ed25519:k1",sig="%s"`, testDest, sig), body, 200},
		{"unquoted values with colons, spaces, any case", fmt.Sprintf(`X-Matrix Origin=origin.example, destination=%s, KEY=ed25519:k1, sig=%s`, testDest, sig), body, 200},
		{"wrong destination", fmt.Sprintf(`X-Matrix origin="origin.example",destination="dest.example",key="ed25519:k1",sig="%s"`, sig), body, 401},
		{"missing destination", fmt.Sprintf(`X-Matrix origin="origin.example",key="ed25519:k1",sig="%s"`, sig), body, 401},
		{"other body", fmt.Sprintf(`X-Matrix origin="origin.example",destination="%s",key="ed25519:k1",sig="%s"`, testDest, sig), `{"pdus":[]}`, 401},
		{"unknown key", fmt.Sprintf(`X-Matrix origin="origin.example",destination="%s",key="ed25519:k2",sig="%s"`, testDest, sig), body, 401},
		{"bad sig encoding", fmt.Sprintf(`X-Matrix origin="origin.example",destination="%s",key="ed25519:k1",sig="!!"`, testDest), body, 401},
		{"bearer", "Bearer abc", body, 401},
		{"body too large", fmt.Sprintf(`X-Matrix origin="origin.example",destination="%s",key="ed25519:k1",sig="%s"`, testDest, sig), `{"a":"` + strings.Repeat("x", 2000) + `"}`, 413},
		{"body not JSON", fmt.Sprintf(`X-Matrix origin="origin.example",destination="%s",key="ed25519:k1",sig="%s"`, testDest, sig), `{nope`, 400},
	} {
		req, _ := http.NewRequest("PUT", srv.URL+uri, strings.NewReader(tc.body))
		req.Header.Set("Authorization", tc.header)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.wantStatus {
			t.Errorf("%s: status %d %s, want %d", tc.name, res.StatusCode, got, tc.wantStatus)
			continue
		}
		if tc.wantStatus == 200 && string(got) != "origin.example|"+tc.body {
			t.Errorf("%s: handler saw %q, want origin and body", tc.name, got)
		}
		if tc.wantStatus == 401 && !strings.Contains(string(got), `"M_UNAUTHORIZED"`) {
			t.Errorf("%s: body %s, want errcode M_UNAUTHORIZED", tc.name, got)
		}
	}
}

// FuzzAuthenticate feeds arbitrary Authorization headers and bodies to the
// X-Matrix check: it must never panic, and must let nothing through that
// the one known key did not sign.
func FuzzAuthenticate(f *testing.F) {
	f.Add(`X-Matrix origin="origin.example",destination="dest.example:8448",key="ed25519:k1",sig="AAAA"`, `{}`)
	f.Add(`X-Matrix origin=a,origin=b,,=,destination=`, ``)
	f.Add(`X-Matrix key="ed25519:k1",sig=="`, `[1,2]`)
	f.Add("X-Matrix \x00", "\xff")
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	a := NewAuthenticator(testDest, staticKeys{"origin.example", "ed25519:k1", priv.Public().(ed25519.PublicKey)}, 1024)
	f.Fuzz(func(t *testing.T, header, body string) {
		req := httptest.NewRequest("PUT", "/_matrix/federation/v1/send/1", strings.NewReader(body))
		req.Header.Set("Authorization", header)
		if _, err := a.Authenticate(req); err == nil {
			t.Fatalf("Authenticate(%q, %q) passed without a valid signature", header, body)
		}
	})
}
