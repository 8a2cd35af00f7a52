package synapse_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestSynapseKeys: each server trusts the other's signing keys. Parley's
// keyring fetches Synapse's keys directly; Synapse, asked as a notary
// (/_matrix/key/v2/query), fetches Parley's keys from Parley and vouches
// for them; a request Parley signs with X-Matrix (query/profile) is
// accepted by Synapse.
func TestSynapseKeys(t *testing.T) {
	syn := needSynapse(t)
	for _, st := range []hstest.Store{hstestSQLite} { // the wire, not the store: Parley↔Parley tests cover both
		t.Run(st.Name, func(t *testing.T) {
			p := startParley(t, st)
			ctx := context.Background()

			t.Run("Parley fetches Synapse's keys", func(t *testing.T) {
				own := fedGet(t, syn.FedURL, "/_matrix/key/v2/server")
				keys := own.Get("verify_keys").Map()
				if len(keys) == 0 {
					t.Fatalf("Synapse's key/v2/server has no verify_keys: %s", own.Raw)
				}
				for keyID, k := range keys {
					want, err := base64.RawStdEncoding.DecodeString(k.Get("key").String())
					if err != nil {
						t.Fatalf("Synapse key %s: %v", keyID, err)
					}
					for _, rv := range []string{"12", "11"} {
						got, err := p.Srv.Fed.Keys.VerifyKey(ctx, syn.Name, keyID, time.Now().UnixMilli(), rv)
						if err != nil || !got.Equal(ed25519.PublicKey(want)) {
							t.Errorf("Parley VerifyKey(%s, %s, v%s) = %x, %v; want %x", syn.Name, keyID, rv, got, err, want)
						}
					}
				}
				if direct, notary := p.Srv.Fed.Keys.Fetches(); direct != 1 || notary != 0 {
					t.Errorf("Parley's key fetches = %d direct, %d notary; want 1, 0 (then cached)", direct, notary)
				}
			})

			t.Run("Synapse as notary fetches Parley's keys", func(t *testing.T) {
				// Synapse answers GET /query/{server} from its cache alone; a
				// POST naming the key ID makes it fetch on a miss (and it
				// requires minimum_valid_until_ts there).
				res := fedPost(t, syn.FedURL, "/_matrix/key/v2/query", map[string]any{
					"server_keys": map[string]any{p.FedName: map[string]any{p.Srv.Key.KeyID: map[string]any{
						"minimum_valid_until_ts": time.Now().UnixMilli()}}}})
				list := res.Get("server_keys").Array()
				if len(list) != 1 {
					t.Fatalf("Synapse key/v2/query for %s = %s, want one server_keys entry", p.FedName, res.Raw)
				}
				var skr federation.ServerKeyResponse
				if err := json.Unmarshal([]byte(list[0].Raw), &skr); err != nil {
					t.Fatal(err)
				}
				if skr.ServerName != p.FedName {
					t.Errorf("server_name = %q, want %q", skr.ServerName, p.FedName)
				}
				k, ok := skr.VerifyKeys[id.KeyID(p.Srv.Key.KeyID)]
				if !ok {
					t.Fatalf("Synapse's answer lacks Parley's key %s: %s", p.Srv.Key.KeyID, list[0].Raw)
				}
				if got := base64.RawStdEncoding.EncodeToString(p.Srv.Key.Public()); string(k.Key) != got {
					t.Errorf("key %s = %s, want %s", p.Srv.Key.KeyID, k.Key, got)
				}
				// Parley's own signature survives Synapse's copy, and Synapse adds its own.
				if err := skr.VerifySelfSignature(); err != nil {
					t.Errorf("Parley's self-signature in Synapse's answer: %v", err)
				}
				if _, ok := skr.Signatures[syn.Name]; !ok {
					t.Errorf("Synapse's answer is not signed by %s: %s", syn.Name, list[0].Raw)
				}
			})

			t.Run("Synapse accepts Parley's X-Matrix", func(t *testing.T) {
				bob := syn.Register(t, uniq("bob"))
				bob.MustDo("PUT", "/_matrix/client/v3/profile/"+hstest.Esc(bob.UserID)+"/displayname",
					map[string]any{"displayname": "Bob on Synapse"})
				prof, err := p.Srv.Fed.Client.QueryProfile(ctx, id.UserID(bob.UserID))
				if err != nil {
					t.Fatalf("Parley query/profile of %s on Synapse: %v", bob.UserID, err)
				}
				if prof.DisplayName != "Bob on Synapse" {
					t.Errorf("displayname = %q, want %q", prof.DisplayName, "Bob on Synapse")
				}
			})
		})
	}
}
