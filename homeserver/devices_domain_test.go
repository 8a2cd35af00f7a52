package homeserver_test

import (
	"slices"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestPasswordChangeLogoutAnnouncesDeviceList: changing the password logs
// out the user's other devices, and, like every other way of removing a
// device, tells the users who share a room that the device list changed,
// so their clients stop encrypting to the removed devices.
func TestPasswordChangeLogoutAnnouncesDeviceList(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			other := srv.Login(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"invite": []string{bob.UserID}})
			bob.Join(room)
			since := bob.Sync("", 0).Get("next_batch").String()

			alice.MustDo("POST", "/_matrix/client/v3/account/password", map[string]any{
				"new_password": "pw-alice-2",
				"auth": map[string]any{"type": "m.login.password", "password": "pw-alice",
					"identifier": map[string]string{"type": "m.id.user", "user": "alice"}},
			})
			if st, _ := other.Do("GET", "/_matrix/client/v3/account/whoami", nil); st != 401 {
				t.Errorf("whoami on the logged-out device = %d, want 401", st)
			}
			devs := alice.MustDo("GET", "/_matrix/client/v3/devices", nil).Get("devices.#.device_id")
			if got := apiStrings(devs); !slices.Equal(got, []string{alice.DeviceID}) {
				t.Errorf("alice's devices = %v, want only %s", got, alice.DeviceID)
			}
			changed := apiStrings(bob.Sync(since, 0).Get("device_lists.changed"))
			if !slices.Contains(changed, alice.UserID) {
				t.Errorf("bob's device_lists.changed = %v, want it to name %s", changed, alice.UserID)
			}
		})
	}
}
