package synapse_test

import (
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestSynapseQueriesParley: a Synapse user reads a Parley user's profile,
// device keys and one-time keys, and resolves a Parley alias. Each is a
// request Synapse signs and Parley's federation/query answers
// (query/profile, user/keys/query, user/keys/claim, query/directory).
func TestSynapseQueriesParley(t *testing.T) {
	syn := needSynapse(t)
	for _, st := range []hstest.Store{hstestSQLite} { // the wire, not the store: Parley↔Parley tests cover both
		t.Run(st.Name, func(t *testing.T) {
			p := startParley(t, st)
			alice := p.Register(t, "alice")
			alice.MustDo("PUT", "/_matrix/client/v3/profile/"+hstest.Esc(alice.UserID)+"/displayname",
				map[string]any{"displayname": "Alice on Parley"})
			alice.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{
				"device_keys": map[string]any{
					"user_id": alice.UserID, "device_id": alice.DeviceID,
					"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
					"keys":       map[string]string{"curve25519:" + alice.DeviceID: "curve-a", "ed25519:" + alice.DeviceID: "ed-a"},
					"signatures": map[string]any{alice.UserID: map[string]string{"ed25519:" + alice.DeviceID: "sig-a"}},
				},
				"one_time_keys": map[string]any{"signed_curve25519:AAAAAQ": map[string]any{"key": "otk-1",
					"signatures": map[string]any{alice.UserID: map[string]string{"ed25519:" + alice.DeviceID: "sig-otk"}}}},
			})
			room := alice.CreateRoom(map[string]any{"preset": "public_chat", "room_alias_name": "lobby"})
			bob := syn.Register(t, uniq("bob"))

			t.Run("profile", func(t *testing.T) {
				res := bob.MustDo("GET", "/_matrix/client/v3/profile/"+hstest.Esc(alice.UserID), nil)
				if got := res.Get("displayname").String(); got != "Alice on Parley" {
					t.Errorf("Synapse profile of %s = %s, want displayname %q", alice.UserID, res.Raw, "Alice on Parley")
				}
			})
			t.Run("keys/query", func(t *testing.T) {
				res := bob.MustDo("POST", "/_matrix/client/v3/keys/query", map[string]any{
					"device_keys": map[string]any{alice.UserID: []string{}}})
				dev := res.Get("device_keys." + gjEsc(alice.UserID) + "." + gjEsc(alice.DeviceID))
				if dev.Get("keys.curve25519:"+alice.DeviceID).String() != "curve-a" {
					t.Errorf("Synapse keys/query for %s = %s, want device %s with curve25519 curve-a", alice.UserID, res.Raw, alice.DeviceID)
				}
				if f := res.Get("failures"); len(f.Map()) != 0 {
					t.Errorf("keys/query failures = %s, want none", f.Raw)
				}
			})
			t.Run("keys/claim", func(t *testing.T) {
				res := bob.MustDo("POST", "/_matrix/client/v3/keys/claim", map[string]any{
					"one_time_keys": map[string]any{alice.UserID: map[string]string{alice.DeviceID: "signed_curve25519"}}})
				otk := res.Get("one_time_keys." + gjEsc(alice.UserID) + "." + gjEsc(alice.DeviceID))
				if otk.Get(gjEsc("signed_curve25519:AAAAAQ")+".key").String() != "otk-1" {
					t.Errorf("Synapse keys/claim for %s = %s, want signed_curve25519:AAAAAQ otk-1", alice.UserID, res.Raw)
				}
			})
			t.Run("directory", func(t *testing.T) {
				alias := "#lobby:" + p.FedName
				res := bob.MustDo("GET", "/_matrix/client/v3/directory/room/"+hstest.Esc(alias), nil)
				if res.Get("room_id").String() != room {
					t.Errorf("Synapse resolves %s = %s, want room_id %s", alias, res.Raw, room)
				}
			})
		})
	}
}
