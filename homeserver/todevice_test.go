package homeserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-im/parley/homeserver/hstest"
)

func toDeviceCount(t *testing.T, srv *hstest.Server) int64 {
	t.Helper()
	n, err := srv.Srv.Store.ToDeviceCount(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestToDeviceDropsUnreachable sends one request that names a real device,
// an unknown device, an unknown user ("*"), a remote user and a user who
// blocked the sender. The answer is 200 {} as the spec asks, but only the
// real, unblocked device's message is stored and delivered. Before, every
// entry became a row, and the blocker got the message (a verification
// pop-up from someone they blocked).
func TestToDeviceDropsUnreachable(t *testing.T) {
	for _, store := range hstest.GraphStores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, bob, carol := srv.Register(t, "alice"), srv.Register(t, "bob"), srv.Register(t, "carol")
			sb, sc := bob.Sync("", 0).Get("next_batch").String(), carol.Sync("", 0).Get("next_batch").String()
			// A message before the block is delivered (and fills any cache
			// of carol's block list); the block then applies at once.
			alice.MustDo("PUT", "/_matrix/client/v3/sendToDevice/m.test/t0", map[string]any{"messages": map[string]any{
				carol.UserID: map[string]any{carol.DeviceID: map[string]any{"n": 0}}}})
			got := carol.Sync(sc, 0)
			if evs := got.Get("to_device.events").Array(); len(evs) != 1 {
				t.Fatalf("carol's to_device before the block = %v, want alice's message", evs)
			}
			sc = got.Get("next_batch").String()
			carol.Sync(sc, 0) // acknowledge it, so it leaves the table
			carol.MustDo("PUT", "/_parley/client/v1/blocks/"+hstest.Esc(alice.UserID), map[string]any{})
			ghost := "@ghost:" + srv.Cfg.ServerName
			alice.MustDo("PUT", "/_matrix/client/v3/sendToDevice/m.key.verification.request/t1", map[string]any{"messages": map[string]any{
				bob.UserID:          map[string]any{bob.DeviceID: map[string]any{"n": 1}, "NOSUCHDEVICE": map[string]any{"n": 2}},
				ghost:               map[string]any{"*": map[string]any{"n": 3}, "GHOSTDEV": map[string]any{"n": 4}},
				"@x:remote.example": map[string]any{"D": map[string]any{"n": 5}},
				carol.UserID:        map[string]any{"*": map[string]any{"n": 6}, carol.DeviceID: map[string]any{"n": 7}},
			}})
			if got := toDeviceCount(t, srv); got != 1 {
				t.Errorf("stored to-device rows = %d, want 1 (bob's real device only)", got)
			}
			evs := bob.Sync(sb, 0).Get("to_device.events").Array()
			if len(evs) != 1 || evs[0].Get("content.n").Int() != 1 {
				t.Errorf("bob's to_device = %v, want the one message n=1", evs)
			}
			if evs := carol.Sync(sc, 0).Get("to_device.events").Array(); len(evs) != 0 {
				t.Errorf("carol, who blocked alice, got to-device messages from her: %v", evs)
			}
			// The blocker may still reach the blocked user, and a user
			// reaches their own other devices.
			carol.MustDo("PUT", "/_matrix/client/v3/sendToDevice/m.test/t2", map[string]any{"messages": map[string]any{
				alice.UserID: map[string]any{"*": map[string]any{}}, carol.UserID: map[string]any{"*": map[string]any{}}}})
			if got := toDeviceCount(t, srv); got != 3 {
				t.Errorf("stored to-device rows after carol's send = %d, want 3", got)
			}
		})
	}
}

// TestToDeviceCapPerRequest: more than 1,000 target devices in one request
// is refused with 413 M_TOO_LARGE and stores nothing; 1,000 are accepted.
// Before, one 1 MiB request stored 69,000 rows in one writer job.
func TestToDeviceCapPerRequest(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
			body := func(n int) map[string]any {
				devs := map[string]any{bob.DeviceID: map[string]any{}}
				for i := range n - 1 {
					devs[fmt.Sprintf("D%d", i)] = map[string]any{}
				}
				return map[string]any{"messages": map[string]any{bob.UserID: devs}}
			}
			st, res := alice.Do("PUT", "/_matrix/client/v3/sendToDevice/m.test/big", body(1001))
			if st != 413 || res.Get("errcode").String() != "M_TOO_LARGE" {
				t.Errorf("1001 devices = %d %s, want 413 M_TOO_LARGE", st, res.Raw)
			}
			if got := toDeviceCount(t, srv); got != 0 {
				t.Errorf("rows after a refused request = %d, want 0", got)
			}
			alice.MustDo("PUT", "/_matrix/client/v3/sendToDevice/m.test/ok", body(1000))
			if got := toDeviceCount(t, srv); got != 1 {
				t.Errorf("rows after 1000 entries (one real device) = %d, want 1", got)
			}
		})
	}
}

// TestToDeviceRowsDeleted: a delivered message is deleted once the device
// syncs with the next token, an undelivered one after the retention period,
// and a deleted device's with the device. Before, undelivered rows stayed
// for good.
func TestToDeviceRowsDeleted(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice, bob := srv.Register(t, "alice"), srv.Register(t, "bob")
			bob2 := srv.Login(t, "bob")
			send := func(txn string, devs ...string) {
				m := map[string]any{}
				for _, d := range devs {
					m[d] = map[string]any{}
				}
				alice.MustDo("PUT", "/_matrix/client/v3/sendToDevice/m.test/"+txn, map[string]any{"messages": map[string]any{bob.UserID: m}})
			}
			since := bob.Sync("", 0).Get("next_batch").String()
			send("t1", bob.DeviceID)
			next := bob.Sync(since, 0).Get("next_batch").String()
			bob.Sync(next, 0) // acknowledges t1
			if got := toDeviceCount(t, srv); got != 0 {
				t.Errorf("rows after delivery and ack = %d, want 0", got)
			}

			send("t2", bob.DeviceID)
			ctx := context.Background()
			if n, err := srv.Srv.ToDevice.Sweep(ctx, time.Now()); err != nil || n != 0 {
				t.Errorf("Sweep(now) = %d, %v; want 0 deleted, the message is fresh", n, err)
			}
			if n, err := srv.Srv.ToDevice.Sweep(ctx, time.Now().Add(8*24*time.Hour)); err != nil || n != 1 {
				t.Errorf("Sweep(in 8 days) = %d, %v; want 1 deleted", n, err)
			}
			if evs := bob.Sync(next, 0).Get("to_device.events").Array(); len(evs) != 0 {
				t.Errorf("bob got an expired message: %v", evs)
			}

			send("t3", bob2.DeviceID)
			bob2.MustDo("POST", "/_matrix/client/v3/logout", map[string]any{})
			if got := toDeviceCount(t, srv); got != 0 {
				t.Errorf("rows after the target device logged out = %d, want 0", got)
			}
		})
	}
}
