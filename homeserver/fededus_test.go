package homeserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// startEDUPair starts two federating servers (127.0.0.2 and .3) with a
// room both users are joined to: alice's on A, joined by bob from B.
func startEDUPair(t *testing.T, st hstest.Store) (a, b *hstest.Server, alice, bob *hstest.Client, room string) {
	t.Helper()
	a = hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.2", Options: hstest.Options{Store: st.Fresh(t), Mutate: fastRetry}})
	b = hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.3", Options: hstest.Options{Store: st.Fresh(t), Mutate: fastRetry}})
	alice, bob = a.Register(t, "alice"), b.Register(t, "bob")
	room = alice.CreateRoom(map[string]any{"preset": "public_chat", "room_alias_name": "edus"})
	if got := bob.Join("#edus:" + a.FedName); got != room {
		t.Fatalf("bob joined %q, want %q", got, room)
	}
	hstest.Eventually(t, "both servers see both members", func() bool {
		return memberOn(alice, room, bob.UserID) == "join" && memberOn(bob, room, alice.UserID) == "join"
	})
	return a, b, alice, bob, room
}

// syncUntil syncs c from *since until cond holds for a response,
// advancing *since.
func syncUntil(t *testing.T, c *hstest.Client, since *string, what string, cond func(res gjson.Result) bool) {
	t.Helper()
	hstest.Eventually(t, what, func() bool {
		res := c.Sync(*since, 0)
		*since = res.Get("next_batch").String()
		return cond(res)
	})
}

// TestFederationPresenceBothWays: a user's presence set on one server
// reaches the other server's user who shares a room, through GET
// /presence and /sync, in both directions (m.presence EDUs out, a bounded
// cache of remote presence in).
func TestFederationPresenceBothWays(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			_, _, alice, bob, _ := startEDUPair(t, st)
			for _, tc := range []struct {
				from, to *hstest.Client
				state    string
				msg      string
			}{
				{alice, bob, "online", "at A"},
				{bob, alice, "unavailable", "at B"},
			} {
				since := tc.to.Sync("", 0).Get("next_batch").String()
				tc.from.MustDo("PUT", "/_matrix/client/v3/presence/"+hstest.Esc(tc.from.UserID)+"/status",
					map[string]any{"presence": tc.state, "status_msg": tc.msg})
				path := "/_matrix/client/v3/presence/" + hstest.Esc(tc.from.UserID) + "/status"
				hstest.Eventually(t, tc.from.UserID+"'s presence on "+tc.to.UserID+"'s server", func() bool {
					code, res := tc.to.Do("GET", path, nil)
					return fmt.Sprint(code, " ", res.Get("presence").String(), " ", res.Get("status_msg").String()) == "200 "+tc.state+" "+tc.msg
				})
				syncUntil(t, tc.to, &since, tc.from.UserID+"'s presence in "+tc.to.UserID+"'s /sync", func(res gjson.Result) bool {
					ev := res.Get(`presence.events.#(sender==` + strconv.Quote(tc.from.UserID) + `)`)
					return ev.Get("content.presence").String() == tc.state && ev.Get("content.status_msg").String() == tc.msg
				})
			}
		})
	}
}

// TestFederationDeviceListCache: once B has cached alice's device list, a
// device alice adds on A reaches bob on B through an m.device_list_update:
// it is in bob's device_lists.changed, and bob's /keys/query shows its keys
// without B asking A again (no user/keys/query, no user/devices).
func TestFederationDeviceListCache(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b, alice, bob, _ := startEDUPair(t, st)
			alice.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": apiDeviceKeys(alice, "1")})
			query := func() gjson.Result {
				return bob.MustDo("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}})
			}
			cache := b.Srv.RemoteDevices()
			hstest.Eventually(t, "alice's first device in bob's /keys/query and B's cache", func() bool {
				q := query()
				return q.Get(apiPath("device_keys", alice.UserID, alice.DeviceID, "keys", "curve25519:"+alice.DeviceID)).String() == "curve-1" &&
					cache.Has(alice.UserID)
			})
			waitCaughtUp(t, a, b)
			queries, fetches := b.Srv.Domain.Keys.RemoteQueries(), cache.Fetches()
			since := bob.Sync("", 0).Get("next_batch").String()

			alice2 := a.Login(t, "alice")
			alice2.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": apiDeviceKeys(alice2, "2")})
			syncUntil(t, bob, &since, "alice in bob's device_lists.changed", func(res gjson.Result) bool {
				return slices.Contains(apiStrings(res.Get("device_lists.changed")), alice.UserID)
			})
			hstest.Eventually(t, "alice's new device in bob's /keys/query", func() bool {
				return query().Get(apiPath("device_keys", alice.UserID, alice2.DeviceID, "keys", "curve25519:"+alice2.DeviceID)).String() == "curve-2"
			})
			if got := b.Srv.Domain.Keys.RemoteQueries(); got != queries {
				t.Errorf("B's user/keys/query requests = %d after the new device, want %d (served from the cache)", got, queries)
			}
			if got := cache.Fetches(); got != fetches {
				t.Errorf("B's user/devices requests = %d after the new device, want %d (kept current by the EDU)", got, fetches)
			}

			// alice deletes the new device: the update says deleted.
			alice.MustDo("POST", "/_matrix/client/v3/delete_devices", map[string]any{"devices": []string{alice2.DeviceID},
				"auth": map[string]any{"type": "m.login.password", "password": "pw-alice",
					"identifier": map[string]string{"type": "m.id.user", "user": "alice"}}})
			hstest.Eventually(t, "alice's deleted device gone from bob's /keys/query", func() bool {
				q := query()
				return !q.Get(apiPath("device_keys", alice.UserID, alice2.DeviceID)).Exists() &&
					q.Get(apiPath("device_keys", alice.UserID, alice.DeviceID)).Exists()
			})
			if got := cache.Fetches(); got != fetches {
				t.Errorf("B's user/devices requests = %d after the deletion, want %d", got, fetches)
			}
		})
	}
}

// waitCaughtUp waits until a's outbound queue has delivered everything to b.
func waitCaughtUp(t *testing.T, a, b *hstest.Server) {
	t.Helper()
	hstest.Eventually(t, a.FedName+"'s queue to "+b.FedName+" caught up", func() bool {
		s, err := a.Srv.Outbound().Status(context.Background(), b.FedName)
		return err == nil && s.CaughtUp
	})
}

// TestFederationDeviceListGap: an m.device_list_update whose prev_id does
// not name the stream ID B holds for the user means B missed one: B drops
// what it cached and asks A for the whole list (user/devices), as the spec
// says, so a device only that update named (forged here) does not stick. An
// update that follows on is applied without asking.
func TestFederationDeviceListGap(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b, alice, bob, _ := startEDUPair(t, st)
			alice.MustDo("POST", "/_matrix/client/v3/keys/upload", map[string]any{"device_keys": apiDeviceKeys(alice, "1")})
			query := func() gjson.Result {
				return bob.MustDo("POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}})
			}
			cache := b.Srv.RemoteDevices()
			hstest.Eventually(t, "alice's device list cached on B", func() bool {
				return query().Get(apiPath("device_keys", alice.UserID, alice.DeviceID)).Exists() && cache.Has(alice.UserID)
			})
			waitCaughtUp(t, a, b)
			ctx := context.Background()
			stream, err := a.Srv.Store.DeviceListStreamID(ctx, alice.UserID)
			if err != nil {
				t.Fatal(err)
			}
			send := func(txn, device string, streamID, prev int64) {
				t.Helper()
				content, _ := json.Marshal(map[string]any{"user_id": alice.UserID, "device_id": device, "stream_id": streamID, "prev_id": []int64{prev},
					"keys": map[string]any{"user_id": alice.UserID, "device_id": device, "algorithms": []string{}, "keys": map[string]string{"curve25519:" + device: "k-" + device}}})
				edu, _ := json.Marshal(map[string]any{"edu_type": "m.device_list_update", "content": json.RawMessage(content)})
				if _, err := a.Srv.Fed.Client.Send(ctx, b.FedName, txn, 0, nil, []json.RawMessage{edu}); err != nil {
					t.Fatalf("send %s: %v", txn, err)
				}
			}
			fetches := cache.Fetches()
			send("gap-1", "NEXT", stream+1, stream) // follows on: applied
			if !query().Get(apiPath("device_keys", alice.UserID, "NEXT")).Exists() || cache.Fetches() != fetches {
				t.Errorf("an update that follows on: NEXT in /keys/query = false or fetched (%d -> %d), want applied without a fetch", fetches, cache.Fetches())
			}
			send("gap-2", "GHOST", stream+5, stream+4) // a gap
			hstest.Eventually(t, "B fetched alice's list again after the gap", func() bool {
				q := query()
				return cache.Fetches() > fetches && cache.Has(alice.UserID) &&
					!q.Get(apiPath("device_keys", alice.UserID, "GHOST")).Exists() &&
					!q.Get(apiPath("device_keys", alice.UserID, "NEXT")).Exists() &&
					q.Get(apiPath("device_keys", alice.UserID, alice.DeviceID)).Exists()
			})
		})
	}
}

// TestFederationDeviceListsLeftRemote: when the last room a local user
// shares with another server's user is left, that user is in the local
// user's device_lists.left, whichever side left.
func TestFederationDeviceListsLeftRemote(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			_, _, alice, bob, room := startEDUPair(t, st)
			since := alice.Sync("", 0).Get("next_batch").String()
			bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/leave", map[string]any{})
			syncUntil(t, alice, &since, "bob in alice's device_lists.left", func(res gjson.Result) bool {
				return slices.Contains(apiStrings(res.Get("device_lists.left")), bob.UserID)
			})
		})
	}
}
