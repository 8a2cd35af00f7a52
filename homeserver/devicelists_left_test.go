package homeserver_test

import (
	"net/url"
	"slices"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestDeviceListsLeft: once two users share no room any more, the one who
// stays sees the other in /sync device_lists.left (issue 16: it was always
// empty), whichever of them left, and not while another room is shared.
func TestDeviceListsLeft(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			carol := srv.Register(t, "carol")
			r1 := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			r2 := alice.CreateRoom(map[string]any{"preset": "public_chat"})
			bob.Join(r1)
			bob.Join(r2)
			carol.Join(r1)
			aliceSince := alice.Sync("", 0).Get("next_batch").String()
			carolSince := carol.Sync("", 0).Get("next_batch").String()

			// bob leaves r1 but still shares r2 with alice: not left for
			// alice; carol shares nothing else with him: left for her.
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+r1+"/leave", map[string]any{})
			res := alice.Sync(aliceSince, 0)
			aliceSince = res.Get("next_batch").String()
			if got := apiStrings(res.Get("device_lists.left")); len(got) != 0 {
				t.Errorf("alice's device_lists.left after bob left r1 = %v, want [] (r2 is still shared)", got)
			}
			res = carol.Sync(carolSince, 0)
			carolSince = res.Get("next_batch").String()
			if got := apiStrings(res.Get("device_lists.left")); !slices.Equal(got, []string{bob.UserID}) {
				t.Errorf("carol's device_lists.left after bob left r1 = %v, want [%s]", got, bob.UserID)
			}

			// alice leaves r2: she shares nothing with bob any more.
			alice.MustDo("POST", "/_matrix/client/v3/rooms/"+r2+"/leave", map[string]any{})
			if got := apiStrings(alice.Sync(aliceSince, 0).Get("device_lists.left")); !slices.Equal(got, []string{bob.UserID}) {
				t.Errorf("alice's device_lists.left after she left r2 = %v, want [%s]", got, bob.UserID)
			}
			// GET /keys/changes says the same.
			if got := apiStrings(alice.MustDo("GET", "/_matrix/client/v3/keys/changes?from="+url.QueryEscape(aliceSince), nil).Get("left")); !slices.Equal(got, []string{bob.UserID}) {
				t.Errorf("alice's /keys/changes left = %v, want [%s]", got, bob.UserID)
			}
			// carol still shares r1 with alice.
			if got := apiStrings(carol.Sync(carolSince, 0).Get("device_lists.left")); len(got) != 0 {
				t.Errorf("carol's device_lists.left after alice left r2 = %v, want []", got)
			}
		})
	}
}
