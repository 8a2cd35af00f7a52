package homeserver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/federation/keys"
	"github.com/parley-im/parley/federation/transport"
	"github.com/parley-im/parley/homeserver"
	"github.com/parley-im/parley/homeserver/hstest"
)

// mountProbe adds an authenticated route that echoes the caller's origin
// and body, and a fake /send that answers per-PDU results, standing in for
// federation/inbound.
func mountProbe(f *homeserver.Federation) {
	f.Router.Authed.HandleFunc("/_matrix/federation/v1/parley_probe", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"origin": transport.Origin(r.Context()), "body": string(body),
			"content_type": r.Header.Get("Content-Type")})
	})
	f.Router.Authed.Put("/_matrix/federation/v1/send/{txnID}", func(w http.ResponseWriter, r *http.Request) {
		var txn struct {
			Origin string            `json:"origin"`
			PDUs   []json.RawMessage `json:"pdus"`
		}
		json.NewDecoder(r.Body).Decode(&txn)
		res := map[string]any{}
		for i := range txn.PDUs {
			if i%2 == 0 {
				res[fmt.Sprintf("$%s-%d", chi.URLParam(r, "txnID"), i)] = map[string]any{}
			} else {
				res[fmt.Sprintf("$%s-%d", chi.URLParam(r, "txnID"), i)] = map[string]any{"error": "rejected " + transport.Origin(r.Context())}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"pdus": res})
	})
}

func pubOf(s *hstest.Server) ed25519.PublicKey { return s.Srv.Key.Public() }

// TestFederationKeys runs three federating servers on 127.0.0.2-4: B
// publishes keys valid for 30 days; C fetches them directly; A fetches them
// through C as notary; the caches, the 7-day cap and X-Matrix checks hold.
func TestFederationKeys(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			b := hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.3", Mount: mountProbe,
				Options: hstest.Options{Store: st.Fresh(t), Mutate: func(c *config.Config) { c.Federation.KeyValidityHours = 30 * 24 }}})
			c := hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.4", Options: hstest.Options{Store: st.Fresh(t)}})
			a := hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.2", Options: hstest.Options{Store: st.Fresh(t),
				Mutate: func(cfg *config.Config) { cfg.Federation.KeyNotaries = c.FedName }}})
			ctx := context.Background()
			bKeyID := b.Srv.Key.KeyID
			now := time.Now()

			t.Run("key server", func(t *testing.T) {
				res, err := hstest.FedHTTP().Get(b.FedURL + "/_matrix/key/v2/server")
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				var skr federation.ServerKeyResponse
				if err := json.NewDecoder(res.Body).Decode(&skr); err != nil {
					t.Fatal(err)
				}
				if skr.ServerName != b.FedName || !skr.HasKey(id.KeyID(bKeyID)) {
					t.Errorf("key/v2/server = %s with keys %v, want %s with %s", skr.ServerName, skr.VerifyKeys, b.FedName, bKeyID)
				}
				if err := skr.VerifySelfSignature(); err != nil {
					t.Errorf("key/v2/server self-signature: %v", err)
				}
				if got, want := skr.ValidUntilTS.Sub(now), 29*24*time.Hour; got < want {
					t.Errorf("valid_until_ts is %v ahead, want about 30 days", got)
				}
			})

			t.Run("version", func(t *testing.T) {
				res, err := hstest.FedHTTP().Get(a.FedURL + "/_matrix/federation/v1/version")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if name := gjson.GetBytes(body, "server.name").String(); res.StatusCode != 200 || name != "Parley" || gjson.GetBytes(body, "server.version").String() == "" {
					t.Errorf("version = %d %s, want 200 with server.name Parley and a version", res.StatusCode, body)
				}
			})

			t.Run("direct fetch, cached", func(t *testing.T) {
				pub, err := c.Srv.Fed.Keys.VerifyKey(ctx, b.FedName, bKeyID, now.UnixMilli(), "11")
				if err != nil || !pub.Equal(pubOf(b)) {
					t.Fatalf("C.VerifyKey(B) = %x, %v; want B's key", pub, err)
				}
				direct, notary := c.Srv.Fed.Keys.Fetches()
				if direct != 1 || notary != 0 {
					t.Errorf("C fetches after one lookup = %d direct, %d notary; want 1, 0", direct, notary)
				}
				if _, err := c.Srv.Fed.Keys.VerifyKey(ctx, b.FedName, bKeyID, now.UnixMilli(), "11"); err != nil {
					t.Fatal(err)
				}
				if d, n := c.Srv.Fed.Keys.Fetches(); d != 1 || n != 0 {
					t.Errorf("C fetches after a second lookup = %d direct, %d notary; want 1, 0 (cached)", d, n)
				}
				// The store holds them too: a fresh keyring that cannot fetch finds them.
				ring := keys.New(keys.Config{Store: c.Srv.Store, Fetch: failingFetcher{}})
				if pub, err := ring.VerifyKey(ctx, b.FedName, bKeyID, now.UnixMilli(), "11"); err != nil || !pub.Equal(pubOf(b)) {
					t.Errorf("fresh keyring on C's store: VerifyKey(B) = %x, %v; want B's key from the store", pub, err)
				}
			})

			t.Run("seven-day cap", func(t *testing.T) {
				for _, tc := range []struct {
					at      time.Duration
					version string
					wantErr error
				}{
					{3 * 24 * time.Hour, "11", nil},
					{10 * 24 * time.Hour, "11", keys.ErrKeyExpired},
					{10 * 24 * time.Hour, "", keys.ErrKeyExpired},
					{10 * 24 * time.Hour, "4", nil}, // room versions 1-4 do not enforce validity
					{40 * 24 * time.Hour, "4", nil},
				} {
					_, err := c.Srv.Fed.Keys.VerifyKey(ctx, b.FedName, bKeyID, now.Add(tc.at).UnixMilli(), tc.version)
					if !errors.Is(err, tc.wantErr) {
						t.Errorf("VerifyKey(B, now+%v, room v%q) = %v, want %v", tc.at, tc.version, err, tc.wantErr)
					}
				}
			})

			t.Run("through notary", func(t *testing.T) {
				pub, err := a.Srv.Fed.Keys.VerifyKey(ctx, b.FedName, bKeyID, now.UnixMilli(), "12")
				if err != nil || !pub.Equal(pubOf(b)) {
					t.Fatalf("A.VerifyKey(B) via notary C = %x, %v; want B's key", pub, err)
				}
				direct, notary := a.Srv.Fed.Keys.Fetches()
				// One notary query to C, and one direct fetch of C's own key to
				// check C's signature; none to B.
				if notary != 1 || direct != 1 {
					t.Errorf("A fetches = %d direct, %d notary; want 1 (C's key), 1", direct, notary)
				}
				if d, _ := c.Srv.Fed.Keys.Fetches(); d != 1 {
					t.Errorf("C direct fetches = %d, want 1: the notary answers from its cache", d)
				}
				a.Srv.Fed.Keys.VerifyKey(ctx, b.FedName, bKeyID, now.UnixMilli(), "12")
				if d, n := a.Srv.Fed.Keys.Fetches(); d != direct || n != notary {
					t.Errorf("A fetches after a second lookup = %d, %d; want unchanged %d, %d", d, n, direct, notary)
				}
			})

			t.Run("notary answer keeps origin signature", func(t *testing.T) {
				body := fmt.Sprintf(`{"server_keys":{%q:{}}}`, b.FedName)
				res, err := hstest.FedHTTP().Post(c.FedURL+"/_matrix/key/v2/query", "application/json", bytes.NewBufferString(body))
				if err != nil {
					t.Fatal(err)
				}
				var q federation.QueryKeysResponse
				json.NewDecoder(res.Body).Decode(&q)
				res.Body.Close()
				if len(q.ServerKeys) != 1 {
					t.Fatalf("notary POST query = %d responses, want 1", len(q.ServerKeys))
				}
				skr := q.ServerKeys[0]
				if err := skr.VerifySelfSignature(); err != nil {
					t.Errorf("notary answer: B's self-signature: %v", err)
				}
				if _, ok := skr.Signatures[c.FedName]; !ok {
					t.Errorf("notary answer signatures = %v, want one by %s", skr.Signatures, c.FedName)
				}
			})

			t.Run("signed request accepted", func(t *testing.T) {
				var out struct {
					Origin, Body string
					ContentType  string `json:"content_type"`
				}
				_, _, err := a.Srv.Fed.Client.MakeFullRequest(ctx, federation.RequestParams{ServerName: b.FedName, Method: http.MethodPost,
					Path: federation.URLPath{"v1", "parley_probe"}, Authenticate: true, RequestJSON: map[string]int{"n": 1}, ResponseJSON: &out})
				if err != nil || out.Origin != a.FedName || out.Body != `{"n":1}` || out.ContentType != "application/json" {
					t.Fatalf("signed POST A->B = %+v, %v; want origin %s and the body", out, err, a.FedName)
				}
				results, err := a.Srv.Fed.Client.Send(ctx, b.FedName, "t1", 0, []json.RawMessage{json.RawMessage(`{"a":1}`), json.RawMessage(`{"b":2}`)}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if ok, bad := results["$t1-0"], results["$t1-1"]; len(results) != 2 || ok != "" || bad != "rejected "+a.FedName {
					t.Errorf("Send results = %v, want $t1-0 ok and $t1-1 rejected", results)
				}
			})

			t.Run("refused", func(t *testing.T) {
				aKey := a.Srv.Key
				forged := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
				host, _, _ := splitHostPort(b.FedName)
				for _, tc := range []struct {
					name                      string
					origin, destination, kid  string
					priv                      ed25519.PrivateKey
					signedBody, sentBody      string
					noHeader, omitDestination bool
				}{
					{name: "forged signature", priv: forged},
					{name: "wrong destination", destination: "127.0.0.9:8448"},
					{name: "wrong port in destination", destination: host + ":1"},
					{name: "no port in destination", destination: host},
					{name: "missing destination", omitDestination: true},
					{name: "unknown key", kid: "ed25519:nosuchkey"},
					{name: "unknown origin", origin: "127.0.0.9:1"},
					{name: "tampered body", signedBody: `{"n":1}`, sentBody: `{"n":2}`},
					{name: "no header", noHeader: true},
				} {
					origin, dest, kid, priv := a.FedName, b.FedName, aKey.KeyID, aKey.Private
					if tc.origin != "" {
						origin = tc.origin
					}
					if tc.destination != "" {
						dest = tc.destination
					}
					if tc.kid != "" {
						kid = tc.kid
					}
					if tc.priv != nil {
						priv = tc.priv
					}
					signed, sent := tc.signedBody, tc.sentBody
					if signed == "" {
						signed, sent = `{"n":1}`, `{"n":1}`
					}
					uri := "/_matrix/federation/v1/parley_probe"
					req, _ := http.NewRequest(http.MethodPost, b.FedURL+uri, bytes.NewBufferString(sent))
					if !tc.noHeader {
						req.Header.Set("Authorization", xMatrix(t, priv, kid, "POST", uri, origin, dest, signed, tc.omitDestination))
					}
					req.Header.Set("Content-Type", "application/json")
					res, err := hstest.FedHTTP().Do(req)
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.StatusCode != 401 || gjson.GetBytes(body, "errcode").String() != "M_UNAUTHORIZED" {
						t.Errorf("%s: %d %s, want 401 M_UNAUTHORIZED", tc.name, res.StatusCode, body)
					}
				}
			})
		})
	}
}

// TestFederationKeyRotation: a server restarted with a new signing key lists
// the old one in old_verify_keys (even when federation was off while the old
// key was in use), and peers accept it only for signatures made before it
// expired.
func TestFederationKeyRotation(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			st := st.Fresh(t) // one database across the restart
			// The first run has federation off: the key is recorded all the same.
			ln, err := net.Listen("tcp", "127.0.0.3:0")
			if err != nil {
				t.Fatal(err)
			}
			name := ln.Addr().String()
			ln.Close()
			b := hstest.Start(t, hstest.Options{Store: st, DataDir: dir, Mutate: func(c *config.Config) { c.ServerName = name }})
			oldID, oldPub := b.Srv.Key.KeyID, b.Srv.Key.Public()
			b.Stop()
			// A new key file, as an operator's rotation would leave it.
			seed := bytes.Repeat([]byte{9}, 32)
			if err := os.WriteFile(filepath.Join(dir, "signing.key"), []byte("ed25519 rotated "+base64.RawStdEncoding.EncodeToString(seed)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			rotated := time.Now()
			b2 := hstest.StartFederating(t, hstest.FedOptions{Addr: name, Options: hstest.Options{Store: st, DataDir: dir}})
			if b2.Srv.Key.KeyID != "ed25519:rotated" {
				t.Fatalf("restarted key = %s, want ed25519:rotated", b2.Srv.Key.KeyID)
			}
			res, err := hstest.FedHTTP().Get(b2.FedURL + "/_matrix/key/v2/server")
			if err != nil {
				t.Fatal(err)
			}
			var skr federation.ServerKeyResponse
			json.NewDecoder(res.Body).Decode(&skr)
			res.Body.Close()
			old, ok := skr.OldVerifyKeys[id.KeyID(oldID)]
			if !ok || old.Key != id.SigningKey(base64.RawStdEncoding.EncodeToString(oldPub)) || old.ExpiredTS.Before(rotated.Add(-time.Minute)) {
				t.Fatalf("old_verify_keys = %+v, want %s expiring about now", skr.OldVerifyKeys, oldID)
			}
			if !skr.HasKey("ed25519:rotated") {
				t.Errorf("verify_keys = %v, want ed25519:rotated", skr.VerifyKeys)
			}
			if err := skr.VerifySelfSignature(); err != nil {
				t.Error(err)
			}
			// A peer fetching the keys of a server named like the restarted
			// one uses the old key only before its expiry.
			peer := hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.4", Options: hstest.Options{Store: st.Fresh(t)}})
			before, after := old.ExpiredTS.Add(-time.Hour).UnixMilli(), old.ExpiredTS.Add(time.Hour).UnixMilli()
			if pub, err := peer.Srv.Fed.Keys.VerifyKey(ctx, name, oldID, before, "11"); err != nil || !pub.Equal(oldPub) {
				t.Errorf("VerifyKey(old key, before expiry) = %x, %v; want the old key", pub, err)
			}
			if _, err := peer.Srv.Fed.Keys.VerifyKey(ctx, name, oldID, after, "11"); !errors.Is(err, keys.ErrKeyExpired) {
				t.Errorf("VerifyKey(old key, after expiry) = %v, want ErrKeyExpired", err)
			}
		})
	}
}

// TestFederationWellKnown: /.well-known/matrix/server is served on both
// listeners when configured, and is 404 otherwise.
func TestFederationWellKnown(t *testing.T) {
	s := hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.2", Options: hstest.Options{
		Mutate: func(c *config.Config) { c.Federation.WellKnownServer = "matrix.example.org:443" }}})
	off := hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.3"})
	for _, tc := range []struct {
		url        string
		wantStatus int
		wantServer string
	}{
		{s.URL + "/.well-known/matrix/server", 200, "matrix.example.org:443"},
		{s.FedURL + "/.well-known/matrix/server", 200, "matrix.example.org:443"},
		{off.FedURL + "/.well-known/matrix/server", 404, ""},
	} {
		res, err := hstest.FedHTTP().Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.wantStatus || gjson.GetBytes(body, "m\\.server").String() != tc.wantServer {
			t.Errorf("GET %s = %d %s, want %d m.server %q", tc.url, res.StatusCode, body, tc.wantStatus, tc.wantServer)
		}
	}
}

// TestFederationSSRFGuard: a client without an allowlist refuses to dial a
// loopback server; with 127.0.0.0/8 allowed it reaches it.
func TestFederationSSRFGuard(t *testing.T) {
	b := hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.3"})
	ctx := context.Background()
	guarded := transport.NewClient(transport.ClientConfig{ServerName: "a.example", InsecureSkipVerify: true})
	if _, err := guarded.ServerKeys(ctx, b.FedName); err == nil || !errors.Is(err, federation.ErrIPFiltered) {
		t.Errorf("ServerKeys(%s) without allowlist = %v, want ErrIPFiltered", b.FedName, err)
	}
	allowed := transport.NewClient(transport.ClientConfig{ServerName: "a.example", InsecureSkipVerify: true,
		AllowIPs: mustAllow(t, "127.0.0.0/8")})
	if skr, err := allowed.ServerKeys(ctx, b.FedName); err != nil || skr.ServerName != b.FedName {
		t.Errorf("ServerKeys(%s) with 127.0.0.0/8 allowed = %v, %v; want B's keys", b.FedName, skr, err)
	}
	// Certificate checks stay on unless switched off: B's is self-signed.
	strict := transport.NewClient(transport.ClientConfig{ServerName: "a.example", AllowIPs: mustAllow(t, "127.0.0.0/8")})
	if _, err := strict.ServerKeys(ctx, b.FedName); err == nil {
		t.Errorf("ServerKeys(%s) with certificate checks on = nil error, want a TLS error", b.FedName)
	}
}

func mustAllow(t *testing.T, cidrs string) []netip.Prefix {
	c := config.Default()
	c.Federation.AllowIPs = cidrs
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c.Federation.AllowPrefixes()
}

type failingFetcher struct{}

func (failingFetcher) ServerKeys(context.Context, string) (*federation.ServerKeyResponse, error) {
	return nil, errors.New("no network in this test")
}
func (failingFetcher) QueryKeys(context.Context, string, *federation.ReqQueryKeys) (*federation.QueryKeysResponse, error) {
	return nil, errors.New("no network in this test")
}

// xMatrix builds an X-Matrix header over the spec's signed object.
func xMatrix(t *testing.T, priv ed25519.PrivateKey, keyID, method, uri, origin, dest, body string, omitDest bool) string {
	t.Helper()
	obj := map[string]any{"method": method, "uri": uri, "origin": origin, "destination": dest}
	if body != "" {
		obj["content"] = json.RawMessage(body)
	}
	sk := &federation.SigningKey{ID: id.KeyID(keyID), Priv: priv}
	sig, err := sk.SignJSON(obj)
	if err != nil {
		t.Fatal(err)
	}
	if omitDest {
		return fmt.Sprintf(`X-Matrix origin="%s",key="%s",sig="%s"`, origin, keyID, sig)
	}
	return federation.XMatrixAuth{Origin: origin, Destination: dest, KeyID: id.KeyID(keyID), Signature: sig}.String()
}

func splitHostPort(s string) (string, string, error) { return net.SplitHostPort(s) }
