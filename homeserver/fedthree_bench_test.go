package homeserver_test

import (
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/homeserver/hstest"
)

// fedBenchPair starts A and B behind fault proxies (SQLite, fast retries),
// with alice on A in a public room that bob on B has joined.
func fedBenchPair(b *testing.B) (alice, bob *hstest.Client, room string, pb *hstest.FaultProxy) {
	st := hstest.Stores(b)[0]
	a, _ := startBehindProxy(b, st, "127.0.0.2")
	bs, pb := startBehindProxy(b, st, "127.0.0.3")
	alice, bob = a.Register(b, "alice"), bs.Register(b, "bob")
	room = alice.CreateRoom(map[string]any{"preset": "public_chat"})
	bob.MustDo("POST", "/_matrix/client/v3/join/"+hstest.Esc(room)+"?server_name="+url.QueryEscape(a.FedName), map[string]any{})
	hstest.Eventually(b, "bob's join on A", func() bool { return memberOn(alice, room, bob.UserID) == "join" })
	return alice, bob, room, pb
}

// sendMany sends n messages to room from alice with k concurrent senders
// and returns the ID of each sender's last event.
func sendMany(b *testing.B, alice *hstest.Client, room string, n, k int, tag string) []string {
	last := make([]string, k)
	var wg sync.WaitGroup
	for s := range k {
		wg.Go(func() {
			for i := s; i < n; i += k {
				code, res := alice.Do("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/"+fmt.Sprintf("%s-%d", tag, i),
					map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("%s %d", tag, i)})
				if code != 200 {
					b.Errorf("send: %d %s", code, res.Raw)
					return
				}
				last[s] = res.Get("event_id").String()
			}
		})
	}
	wg.Wait()
	return last
}

// waitOn polls bob's server until it holds every event in ids. A
// destination's PDUs go in commit order, so the last events arriving means
// all did.
func waitOn(b *testing.B, bob *hstest.Client, room string, ids []string) {
	deadline := time.Now().Add(10 * time.Minute)
	for _, id := range ids {
		if id == "" {
			continue
		}
		for {
			if code, _ := bob.Do("GET", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/event/"+hstest.Esc(id), nil); code == 200 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("event %s never reached B", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// BenchmarkFederationPDUs: PDUs per second from one Parley to another. One
// iteration is one message sent on A (8 concurrent senders) and seen on B;
// the clock runs from the first send until B holds the last (sends/s is
// A's local send rate alone, for comparison). SQLite, both
// servers in this process on loopback with TLS.
func BenchmarkFederationPDUs(b *testing.B) {
	alice, bob, room, _ := fedBenchPair(b)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	ids := sendMany(b, alice, room, b.N, 8, "pdu")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sends/s")
	waitOn(b, bob, room, ids)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pdus/s")
}

// BenchmarkFederationCatchUp: B is cut off while A sends b.N messages (not
// timed); the clock runs from the network healing until B holds the last,
// retry wait included (fast retries: 50 ms doubling to 500 ms).
func BenchmarkFederationCatchUp(b *testing.B) {
	alice, bob, room, pb := fedBenchPair(b)
	pb.Cut()
	ids := sendMany(b, alice, room, b.N, 8, "late")
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	pb.Restore()
	waitOn(b, bob, room, ids)
	b.ReportMetric(time.Since(start).Seconds(), "catchup-s")
}
