package homeserver_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/homeserver/hstest"
)

// startPair starts two federating servers on 127.0.0.2 and 127.0.0.3,
// each with a store of its own, wired as in production (no Mount).
func startPair(t *testing.T, st hstest.Store) (a, b *hstest.Server) {
	t.Helper()
	a = hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.2", Options: hstest.Options{Store: st.Fresh(t)}})
	b = hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.3", Options: hstest.Options{Store: st.Fresh(t)}})
	return a, b
}

// TestFederationToDeviceAcrossServers: a to-device EDU queued on A goes
// through A's outbound queue and signed client to B's /send, and reaches
// bob's device in B's /sync, once, even when queued twice with the same
// message ID (a retried transaction).
func TestFederationToDeviceAcrossServers(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			q := a.Srv.Outbound()
			if q == nil {
				t.Fatal("A's outbound queue = nil, want it started with federation on")
			}
			bob := b.Register(t, "bob")
			since := bob.Sync("", 0).Get("next_batch").String()
			content, _ := json.Marshal(map[string]any{
				"sender": "@alice:" + a.FedName, "type": "m.room_key_request", "message_id": "m1",
				"messages": map[string]any{bob.UserID: map[string]any{bob.DeviceID: map[string]any{"n": 1}},
					"@carol:elsewhere.example": map[string]any{"*": map[string]any{"n": 2}}},
			})
			ctx := context.Background()
			for range 2 {
				if err := q.EnqueueEDU(ctx, b.FedName, outbound.EDU{Type: "m.direct_to_device", Content: content}); err != nil {
					t.Fatalf("EnqueueEDU: %v", err)
				}
			}
			var got []string
			hstest.Eventually(t, "the to-device message on B", func() bool {
				res := bob.Sync(since, 0)
				for _, ev := range res.Get("to_device.events").Array() {
					got = append(got, ev.Get("sender").String()+" "+ev.Get("type").String()+" "+ev.Get("content").Raw)
				}
				since = res.Get("next_batch").String()
				return len(got) > 0
			})
			hstest.Eventually(t, "A's queue caught up", func() bool {
				s, err := q.Status(ctx, b.FedName)
				return err == nil && s.CaughtUp
			})
			res := bob.Sync(since, 0)
			for _, ev := range res.Get("to_device.events").Array() {
				got = append(got, ev.Get("sender").String()+" "+ev.Get("type").String()+" "+ev.Get("content").Raw)
			}
			want := "@alice:" + a.FedName + ` m.room_key_request {"n":1}`
			if len(got) != 1 || got[0] != want {
				t.Errorf("bob's to-device = %q, want [%q]", got, want)
			}
		})
	}
}

// TestFederationDeviceListEDUs: m.device_list_update and
// m.signing_key_update sent by A's signed client to B's /send record that
// the remote user's devices changed, as /keys/changes and sync's
// device_lists read it.
func TestFederationDeviceListEDUs(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			ctx := context.Background()
			for i, tc := range []struct{ user, edu, content string }{
				{"@alice:" + a.FedName, "m.device_list_update", `{"user_id":"@alice:` + a.FedName + `","device_id":"D1","stream_id":1}`},
				{"@carol:" + a.FedName, "m.signing_key_update", `{"user_id":"@carol:` + a.FedName + `"}`},
				{"@mallory:" + b.FedName, "m.device_list_update", `{"user_id":"@mallory:` + b.FedName + `","device_id":"D1","stream_id":1}`},
			} {
				edu := json.RawMessage(`{"edu_type":"` + tc.edu + `","content":` + tc.content + `}`)
				if _, err := a.Srv.Fed.Client.Send(ctx, b.FedName, "dl"+string(rune('0'+i)), 0, nil, []json.RawMessage{edu}); err != nil {
					t.Fatalf("%s: send: %v", tc.edu, err)
				}
				changed, err := b.Srv.Store.DeviceListChangesSince(ctx, tc.user, 0, 1<<62)
				if err != nil {
					t.Fatal(err)
				}
				want := tc.user
				if tc.user == "@mallory:"+b.FedName {
					want = "" // not a user of the origin: dropped
				}
				if got := strings.Join(changed, ","); got != want {
					t.Errorf("%s for %s: B's device-list changes = %q, want %q", tc.edu, tc.user, got, want)
				}
			}
		})
	}
}

// TestFederationTypingSink: the typing sink shows a remote user
// typing in /sync like a local one. (Reaching it through /send needs a
// remote member in the room, which needs make_join/send_join: not yet.)
func TestFederationTypingSink(t *testing.T) {
	s := hstest.StartFederating(t, hstest.FedOptions{Host: "127.0.0.2"})
	bob := s.Register(t, "bob")
	room := bob.CreateRoom(map[string]any{})
	sinks := s.Srv.FedEDUSinks()
	remote := "@alice:remote.example"
	sinks.Typing.RemoteTyping(context.Background(), room, remote, true)
	got := hstest.Room(bob.Sync("", 0), "join", room).Get("ephemeral.events.#(type==\"m.typing\").content.user_ids").Raw
	if want := `["` + remote + `"]`; got != want {
		t.Errorf("typing in bob's sync = %s, want %s", got, want)
	}
}

// TestFederationSendToDeviceRemote: alice on A sends to bob's device on B
// with the client API; the message reaches bob's /sync on B once, even
// when alice's client retries the request with the same txnId.
func TestFederationSendToDeviceRemote(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			a, b := startPair(t, st)
			alice, bob := a.Register(t, "alice"), b.Register(t, "bob")
			since := bob.Sync("", 0).Get("next_batch").String()
			body := map[string]any{"messages": map[string]any{bob.UserID: map[string]any{bob.DeviceID: map[string]any{"k": "v"}}}}
			for range 2 {
				alice.MustDo("PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/txn1", body)
			}
			var got []string
			collect := func() {
				res := bob.Sync(since, 0)
				for _, ev := range res.Get("to_device.events").Array() {
					got = append(got, ev.Get("sender").String()+" "+ev.Get("type").String()+" "+ev.Get("content").Raw)
				}
				since = res.Get("next_batch").String()
			}
			hstest.Eventually(t, "alice's message on B", func() bool { collect(); return len(got) > 0 })
			hstest.Eventually(t, "A's queue caught up", func() bool {
				s, err := a.Srv.Outbound().Status(context.Background(), b.FedName)
				return err == nil && s.CaughtUp
			})
			collect()
			want := alice.UserID + ` m.room.encrypted {"k":"v"}`
			if len(got) != 1 || got[0] != want {
				t.Errorf("bob's to-device = %q, want [%q]", got, want)
			}
		})
	}
}
