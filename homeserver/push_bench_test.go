package homeserver_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// BenchmarkPushDelivery: push delivery throughput to a gateway on
// loopback. Each iteration is one message to a room whose other
// PARLEY_BENCH_PUSHERS members (default 10) each have an http pusher. The
// messages are sent and queued while the gateway answers 503; the timer
// runs from the gateway's recovery until it has taken every notification
// (b.N × pushers): the queue reads, the requests and their acks, one
// worker per pusher. On SQLite (PARLEY_BENCH_PG=1: PostgreSQL). Reports
// pushes/s.
func BenchmarkPushDelivery(b *testing.B) {
	pushers := 10
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_PUSHERS")); err == nil && v > 0 {
		pushers = v
	}
	st := hstest.Store{Name: "sqlite"}
	if os.Getenv("PARLEY_BENCH_PG") != "" {
		for _, s := range hstest.Stores(b) {
			if s.Name == "postgres" {
				st = s
			}
		}
	}
	var got atomic.Int64
	var down atomic.Bool
	down.Store(true)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		got.Add(1)
		w.Write([]byte(`{"rejected":[]}`))
	}))
	defer gw.Close()
	srv := hstest.Start(b, hstest.Options{Store: st, Mutate: func(c *config.Config) {
		c.Push.AllowIPs = "127.0.0.0/8"
		c.Push.MaxQueue = 1 << 30 // nothing dropped, whatever b.N
		c.Push.MinBackoffMs, c.Push.MaxBackoffMs = 1, 2
	}})
	alice := srv.Register(b, "alice")
	roomID := alice.CreateRoom(map[string]any{"preset": "public_chat"})
	for i := range pushers {
		u := srv.Register(b, fmt.Sprint("u", i))
		u.Join(roomID)
		if st, res := setPusher(u, gw.URL+"/_matrix/push/v1/notify", fmt.Sprint("key", i), nil); st != 200 {
			b.Fatalf("set pusher = %d %s", st, res.Raw)
		}
	}
	want := int64(b.N * pushers)
	for i := range b.N {
		sendBody(alice, roomID, fmt.Sprint("t", i), map[string]any{"msgtype": "m.text", "body": "hello"})
	}
	hstest.Eventually(b, "every notification queued", func() bool {
		n, err := srv.Srv.Store.PushQueueLen(b.Context())
		return err == nil && n == want
	})
	b.ReportAllocs()
	b.ResetTimer()
	down.Store(false)
	hstest.Eventually(b, "every notification at the gateway", func() bool { return got.Load() >= want })
	b.StopTimer()
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "pushes/s")
}
