package homeserver_test

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestDeviceFieldLimits sends oversized device IDs and display names to the
// three routes that name a device. Each must answer 400 M_INVALID_PARAM and
// store nothing: no account, no device. Before the shared check, login and
// registration accepted 200 KB of either.
func TestDeviceFieldLimits(t *testing.T) {
	huge := strings.Repeat("D", 200_000)
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			anon := srv.Anon(t)
			cases := []struct {
				name, field, value string
			}{
				{"long device_id", "device_id", huge},
				{"device_id just over", "device_id", strings.Repeat("d", 256)},
				{"control character in device_id", "device_id", "DEV\x07"},
				{"long display name", "initial_device_display_name", huge},
				{"display name just over", "initial_device_display_name", strings.Repeat("n", 257)},
			}
			for i, c := range cases {
				login := map[string]any{"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": "alice"},
					"password": "pw-alice", c.field: c.value}
				if st, res := anon.Do("POST", "/_matrix/client/v3/login", login); st != 400 || res.Get("errcode").String() != "M_INVALID_PARAM" {
					t.Errorf("%s: login = %d %s, want 400 M_INVALID_PARAM", c.name, st, trim(res.Raw))
				}
				name := "bob" + string(rune('a'+i))
				reg := map[string]any{"username": name, "password": "pw", c.field: c.value,
					"auth": map[string]any{"type": "m.login.dummy"}}
				if st, res := anon.Do("POST", "/_matrix/client/v3/register", reg); st != 400 || res.Get("errcode").String() != "M_INVALID_PARAM" {
					t.Errorf("%s: register = %d %s, want 400 M_INVALID_PARAM", c.name, st, trim(res.Raw))
				}
				if st, res := anon.Do("GET", "/_matrix/client/v3/register/available?username="+name, nil); st != 200 {
					t.Errorf("%s: after a refused registration, %s available = %d %s, want 200 (no account made)", c.name, name, st, trim(res.Raw))
				}
			}
			if st, res := alice.Do("PUT", "/_matrix/client/v3/devices/"+alice.DeviceID, map[string]any{"display_name": huge}); st != 400 {
				t.Errorf("PUT /devices with a 200 KB name = %d %s, want 400", st, trim(res.Raw))
			}
			devs := alice.MustDo("GET", "/_matrix/client/v3/devices", nil).Get("devices").Array()
			if len(devs) != 1 {
				t.Errorf("alice has %d devices after refused logins, want 1", len(devs))
			}
			// The limits themselves are allowed.
			ok := map[string]any{"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": "alice"},
				"password": "pw-alice", "device_id": strings.Repeat("d", 255), "initial_device_display_name": strings.Repeat("n", 256)}
			if st, res := anon.Do("POST", "/_matrix/client/v3/login", ok); st != 200 {
				t.Errorf("login at the limits = %d %s, want 200", st, trim(res.Raw))
			}
		})
	}
}

// trim shortens a response body for a failure message.
func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
