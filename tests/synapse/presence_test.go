package synapse_test

import (
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestSynapsePresenceAndDeviceLists: a Synapse user's presence reaches
// Parley through m.presence (GET /presence and /sync), and a device a
// Parley user adds shows in Synapse's /keys/query (Parley's
// m.device_list_update and user/devices). The presence part needs Synapse
// started with PARLEY_SYNAPSE_PRESENCE=true and skips without it.
func TestSynapsePresenceAndDeviceLists(t *testing.T) {
	syn := needSynapse(t)
	p := startParley(t, hstestSQLite)
	alice := p.Register(t, "alice")
	bob := syn.Register(t, uniq("bob"))
	room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
	if st, res := joinVia(bob, room, p.FedName); st != 200 {
		t.Fatalf("Synapse join = %d %s", st, res.Raw)
	}
	waitMembership(t, alice, room, bob.UserID, "join")

	t.Run("device added on Parley, seen by Synapse", func(t *testing.T) {
		bob := bob.WithT(t)
		keysOf := func(c *hstest.Client, tag string) map[string]any {
			return map[string]any{"user_id": c.UserID, "device_id": c.DeviceID,
				"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
				"keys":       map[string]string{"curve25519:" + c.DeviceID: "curve-" + tag, "ed25519:" + c.DeviceID: "ed-" + tag},
				"signatures": map[string]any{c.UserID: map[string]string{"ed25519:" + c.DeviceID: "sig-" + tag}}}
		}
		alice.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": keysOf(alice, "1")})
		query := func() gjson.Result {
			return bob.MustDo("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}})
		}
		hstest.Eventually(t, "alice's first device in Synapse's /keys/query", func() bool {
			return query().Get("device_keys." + gjEsc(alice.UserID) + "." + gjEsc(alice.DeviceID)).Exists()
		})
		alice2 := p.Login(t, "alice")
		alice2.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": keysOf(alice2, "2")})
		hstest.Eventually(t, "alice's new device in Synapse's /keys/query", func() bool {
			return query().Get("device_keys."+gjEsc(alice.UserID)+"."+gjEsc(alice2.DeviceID)+".keys."+gjEsc("curve25519:"+alice2.DeviceID)).String() == "curve-2"
		})
	})

	t.Run("Synapse presence on Parley", func(t *testing.T) {
		bob := bob.WithT(t)
		own := "/_matrix/client/v3/presence/" + hstest.Esc(bob.UserID) + "/status"
		since := alice.Sync("", 0).Get("next_batch").String()
		bob.MustDo("PUT", own, map[string]any{"presence": "online", "status_msg": "on synapse"})
		if got := bob.MustDo("GET", own, nil).Get("status_msg").String(); got != "on synapse" {
			t.Skip("Synapse has presence off (start it with PARLEY_SYNAPSE_PRESENCE=true)")
		}
		hstest.Eventually(t, "bob's presence on Parley", func() bool {
			code, res := alice.Do("GET", own, nil)
			return code == 200 && res.Get("presence").String() == "online" && res.Get("status_msg").String() == "on synapse"
		})
		hstest.Eventually(t, "bob's presence in alice's /sync", func() bool {
			s := alice.Sync(since, 0)
			since = s.Get("next_batch").String()
			for _, ev := range s.Get("presence.events").Array() {
				if ev.Get("sender").String() == bob.UserID && ev.Get("content.status_msg").String() == "on synapse" {
					return true
				}
			}
			return false
		})
	})
}
