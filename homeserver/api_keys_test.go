package homeserver_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// apiKey escapes one key of a gjson path: user and room IDs, aliases and
// event types contain characters gjson would read as syntax.
func apiKey(s string) string {
	return strings.NewReplacer(".", `\.`, "*", `\*`, "?", `\?`, "@", `\@`, "#", `\#`, "|", `\|`).Replace(s)
}

// apiPath joins escaped keys into a gjson path.
func apiPath(keys ...string) string {
	escaped := make([]string, len(keys))
	for i, k := range keys {
		escaped[i] = apiKey(k)
	}
	return strings.Join(escaped, ".")
}

// apiDeviceKeys is a device_keys object for c's device; Parley stores keys
// without verifying signatures, so the values only need to be recognisable.
func apiDeviceKeys(c *hstest.Client, tag string) map[string]any {
	return map[string]any{
		"user_id": c.UserID, "device_id": c.DeviceID,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"curve25519:" + c.DeviceID: "curve-" + tag, "ed25519:" + c.DeviceID: "ed-" + tag},
		"signatures": map[string]any{c.UserID: map[string]string{"ed25519:" + c.DeviceID: "sig-" + tag}},
	}
}

func apiSignedKey(c *hstest.Client, key string, fallback bool) map[string]any {
	k := map[string]any{"key": key, "signatures": map[string]any{c.UserID: map[string]string{"ed25519:" + c.DeviceID: "sig-" + key}}}
	if fallback {
		k["fallback"] = true
	}
	return k
}

func apiStrings(r gjson.Result) []string {
	var out []string
	for _, v := range r.Array() {
		out = append(out, v.String())
	}
	return out
}

// TestE2EEKeyPlumbing: keys uploaded by two devices are served to another
// user, one-time keys are claimed once each and then the fallback key, the
// uploader's sync counts what is left, and the peer's sync reports the
// changed device list.
func TestE2EEKeyPlumbing(t *testing.T) {
	const alg = "signed_curve25519"
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice1 := srv.Register(t, "alice") // device display name "first"
			alice2 := srv.Login(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice1.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			bobSince := bob.Sync("", 0).Get("next_batch").String()

			up := alice1.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{
				"device_keys": apiDeviceKeys(alice1, "1"),
				"one_time_keys": map[string]any{
					alg + ":AAAAAQ": apiSignedKey(alice1, "otk-1", false),
					alg + ":AAAAAg": apiSignedKey(alice1, "otk-2", false),
				},
				"fallback_keys": map[string]any{alg + ":AAAAAw": apiSignedKey(alice1, "fallback-1", true)},
			})
			if got := up.Get(apiPath("one_time_key_counts", alg)).Int(); got != 2 {
				t.Errorf("upload one_time_key_counts = %s, want %s: 2", up.Get("one_time_key_counts").Raw, alg)
			}
			alice2.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": apiDeviceKeys(alice2, "2")})

			changed := apiStrings(bob.Sync(bobSince, 0).Get("device_lists.changed"))
			if !slices.Contains(changed, alice1.UserID) {
				t.Errorf("bob's device_lists.changed = %v, want it to name %s", changed, alice1.UserID)
			}

			q := bob.MustDo("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{alice1.UserID: []string{}}})
			dev1 := q.Get(apiPath("device_keys", alice1.UserID, alice1.DeviceID))
			if got := dev1.Get(apiPath("keys", "curve25519:"+alice1.DeviceID)).String(); got != "curve-1" {
				t.Errorf("queried curve25519 key = %q, want curve-1 (%s)", got, q.Raw)
			}
			if got := dev1.Get("unsigned.device_display_name").String(); got != "first" {
				t.Errorf("unsigned.device_display_name = %q, want first", got)
			}
			if got := dev1.Get(apiPath("signatures", alice1.UserID, "ed25519:"+alice1.DeviceID)).String(); got != "sig-1" {
				t.Errorf("queried device signature = %q, want sig-1", got)
			}
			if !q.Get(apiPath("device_keys", alice1.UserID, alice2.DeviceID)).Exists() {
				t.Errorf("keys/query lacks alice's second device: %s", q.Raw)
			}
			one := bob.MustDo("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{alice1.UserID: []string{alice2.DeviceID}}})
			if n := len(one.Get(apiPath("device_keys", alice1.UserID)).Map()); n != 1 || !one.Get(apiPath("device_keys", alice1.UserID, alice2.DeviceID)).Exists() {
				t.Errorf("keys/query for one device = %s, want only %s", one.Get("device_keys").Raw, alice2.DeviceID)
			}

			s := alice1.Sync("", 0)
			if got := s.Get(apiPath("device_one_time_keys_count", alg)).Int(); got != 2 {
				t.Errorf("initial device_one_time_keys_count = %s, want %s: 2", s.Get("device_one_time_keys_count").Raw, alg)
			}
			if got := apiStrings(s.Get("device_unused_fallback_key_types")); !slices.Contains(got, alg) {
				t.Errorf("device_unused_fallback_key_types = %v, want %s", got, alg)
			}
			since := s.Get("next_batch").String()

			claim := map[string]any{"one_time_keys": map[string]any{alice1.UserID: map[string]string{alice1.DeviceID: alg}}}
			steps := []struct {
				wantKeys  []string // any of these
				wantCount int64    // alice1's one-time keys left
			}{
				{[]string{"otk-1", "otk-2"}, 1},
				{[]string{"otk-1", "otk-2"}, 0},
				{[]string{"fallback-1"}, 0}, // none left: the fallback key
				{[]string{"fallback-1"}, 0}, // which is not used up
			}
			var claimed []string
			for i, st := range steps {
				res := bob.MustDo("POST", "/_matrix/client/v3/keys/claim", claim)
				keys := res.Get(apiPath("one_time_keys", alice1.UserID, alice1.DeviceID)).Map()
				var key string
				for id, k := range keys {
					if !strings.HasPrefix(id, alg+":") {
						t.Errorf("claim %d key ID = %q, want %s:...", i, id, alg)
					}
					key = k.Get("key").String()
				}
				if len(keys) != 1 || !slices.Contains(st.wantKeys, key) {
					t.Errorf("claim %d = %s, want one of %v", i, res.Raw, st.wantKeys)
				}
				if i < 2 && slices.Contains(claimed, key) {
					t.Errorf("claim %d returned the already claimed one-time key %s", i, key)
				}
				claimed = append(claimed, key)
				s = alice1.Sync(since, 0)
				since = s.Get("next_batch").String()
				if got := s.Get(apiPath("device_one_time_keys_count", alg)).Int(); got != st.wantCount {
					t.Errorf("after claim %d device_one_time_keys_count = %s, want %s: %d", i, s.Get("device_one_time_keys_count").Raw, alg, st.wantCount)
				}
			}
			// A device with no keys is left out of the answer.
			res := bob.MustDo("POST", "/_matrix/client/v3/keys/claim", map[string]any{"one_time_keys": map[string]any{alice1.UserID: map[string]string{alice2.DeviceID: alg}}})
			if res.Get(apiPath("one_time_keys", alice1.UserID, alice2.DeviceID)).Exists() {
				t.Errorf("claim from a device without keys = %s, want nothing for it", res.Raw)
			}
		})
	}
}

// TestFallbackKeyReportedUsedAfterClaim: a claimed fallback key stays on
// the server but is no longer "unused", so the device learns to rotate it.
func TestFallbackKeyReportedUsedAfterClaim(t *testing.T) {
	const alg = "signed_curve25519"
	srv := hstest.Start(t, hstest.Options{})
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	alice.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{
		"device_keys":   apiDeviceKeys(alice, "1"),
		"fallback_keys": map[string]any{alg + ":AAAAAw": apiSignedKey(alice, "fallback-1", true)},
	})
	s := alice.Sync("", 0)
	if got := apiStrings(s.Get("device_unused_fallback_key_types")); !slices.Equal(got, []string{alg}) {
		t.Fatalf("before the claim device_unused_fallback_key_types = %v, want [%s]", got, alg)
	}
	res := bob.MustDo("POST", "/_matrix/client/v3/keys/claim", map[string]any{"one_time_keys": map[string]any{alice.UserID: map[string]string{alice.DeviceID: alg}}})
	if !res.Get(apiPath("one_time_keys", alice.UserID, alice.DeviceID, alg+":AAAAAw")).Exists() {
		t.Fatalf("claim = %s, want the fallback key", res.Raw)
	}
	s = alice.Sync(s.Get("next_batch").String(), 0)
	if got := apiStrings(s.Get("device_unused_fallback_key_types")); slices.Contains(got, alg) {
		t.Errorf("after the claim device_unused_fallback_key_types = %v, want %s gone (used)", got, alg)
	}
}

// TestCrossSigningKeysVisibility: master and self-signing keys are public;
// the user-signing key is shown only to its owner.
func TestCrossSigningKeysVisibility(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			csKey := func(usage, pub string) map[string]any {
				k := map[string]any{"user_id": alice.UserID, "usage": []string{usage}, "keys": map[string]string{"ed25519:" + pub: pub}}
				if usage != "master" {
					k["signatures"] = map[string]any{alice.UserID: map[string]string{"ed25519:MASTERPUB": "sig-" + pub}}
				}
				return k
			}
			alice.MustDo("POST", "/_matrix/client/v3/keys/device_signing/upload", map[string]any{
				"master_key":       csKey("master", "MASTERPUB"),
				"self_signing_key": csKey("self_signing", "SELFPUB"),
				"user_signing_key": csKey("user_signing", "USERPUB"),
			})
			cases := []struct {
				viewer                            *hstest.Client
				wantMaster, wantSelf, wantUserSig bool
			}{
				{bob, true, true, false},
				{alice, true, true, true},
			}
			for _, c := range cases {
				q := c.viewer.MustDo("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}})
				for _, k := range []struct {
					field, pub string
					want       bool
				}{
					{"master_keys", "MASTERPUB", c.wantMaster},
					{"self_signing_keys", "SELFPUB", c.wantSelf},
					{"user_signing_keys", "USERPUB", c.wantUserSig},
				} {
					got := q.Get(apiPath(k.field, alice.UserID, "keys", "ed25519:"+k.pub)).String() == k.pub
					if got != k.want {
						t.Errorf("%s's keys/query has %s of alice = %v, want %v (%s)", c.viewer.UserID, k.field, got, k.want, q.Get(k.field).Raw)
					}
				}
			}
		})
	}
}

// TestPositionsNotReusedAfterRestart: a sync token issued before a restart
// still sees everything sent after it. The newest position before the
// restart belongs to a to-device message that was delivered and
// acknowledged (and so deleted).
func TestPositionsNotReusedAfterRestart(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			dir := t.TempDir()
			srv := hstest.Start(t, hstest.Options{Store: store, DataDir: dir})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			since := bob.Sync("", 0).Get("next_batch").String()
			alice.MustDo("PUT", "/_matrix/client/v3/sendToDevice/m.test/t1", map[string]any{
				"messages": map[string]any{bob.UserID: map[string]any{bob.DeviceID: map[string]any{"n": 1}}}})
			got := bob.Sync(since, 0)
			if n := len(got.Get("to_device.events").Array()); n != 1 {
				t.Fatalf("to_device = %s, want the message", got.Get("to_device").Raw)
			}
			since = bob.Sync(got.Get("next_batch").String(), 0).Get("next_batch").String() // acknowledges it
			srv.Stop()

			srv = hstest.Start(t, hstest.Options{Store: store, DataDir: dir})
			alice = srv.Login(t, "alice")
			bob = srv.Login(t, "bob")
			alice.Send(room, "after", "after the restart")
			if got := hstest.Bodies(bob.Sync(since, 0), room); !slices.Equal(got, []string{"after the restart"}) {
				t.Errorf("sync since the pre-restart token %s = %v, want [after the restart]", since, got)
			}
		})
	}
}
