package synapse_test

import (
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestSynapseToDevice: to-device messages both ways, with no room shared.
// Synapse's m.direct_to_device EDU reaches Parley through a /send that
// Synapse signs, so Parley's X-Matrix check accepts Synapse's requests; the
// other way, Parley's outbound queue sends a transaction Synapse accepts.
func TestSynapseToDevice(t *testing.T) {
	syn := needSynapse(t)
	for _, st := range []hstest.Store{hstestSQLite} { // the wire, not the store: Parley↔Parley tests cover both
		t.Run(st.Name, func(t *testing.T) {
			p := startParley(t, st)
			alice := p.Register(t, "alice")
			bob := syn.Register(t, uniq("bob"))
			aliceSince := alice.Sync("", 0).Get("next_batch").String()
			bobSince := bob.Sync("", 0).Get("next_batch").String()

			cases := []struct {
				name     string
				from, to *hstest.Client
				since    *string
			}{
				{"Synapse to Parley", bob, alice, &aliceSince},
				{"Parley to Synapse", alice, bob, &bobSince},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					nonce := uniq("nonce")
					tc.from.MustDo("PUT", "/_matrix/client/v3/sendToDevice/org.parley.test/"+hstest.Esc(nonce), map[string]any{
						"messages": map[string]any{tc.to.UserID: map[string]any{tc.to.DeviceID: map[string]any{"nonce": nonce}}}})
					var got gjson.Result
					hstest.Eventually(t, "the to-device message at "+tc.to.UserID, func() bool {
						res := tc.to.Sync(*tc.since, 500)
						*tc.since = res.Get("next_batch").String()
						for _, ev := range res.Get("to_device.events").Array() {
							if ev.Get("content.nonce").String() == nonce {
								got = ev
								return true
							}
						}
						return false
					})
					if got.Get("type").String() != "org.parley.test" || got.Get("sender").String() != tc.from.UserID {
						t.Errorf("to-device event = %s, want type org.parley.test from %s", got.Raw, tc.from.UserID)
					}
				})
			}
		})
	}
}
