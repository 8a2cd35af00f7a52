package homeserver_test

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// BenchmarkFederationBackfill: a late joiner on B pages back, 100 events
// a page, through PARLEY_BENCH_BACKFILL_EVENTS messages (default 5, so
// CI's 100 iterations stay short; 1000 for the figure in
// docs/benchmarks.md) sent on A before B joined; B fetches them all with
// federation backfill, checks and stores them. SQLite, two servers on
// loopback. Each iteration pages a fresh room; filling it and the join
// are not timed.
func BenchmarkFederationBackfill(b *testing.B) {
	n := 5
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_BACKFILL_EVENTS")); err == nil && v > 0 {
		n = v
	}
	st := hstest.Stores(b)[0]
	a := hstest.StartFederating(b, hstest.FedOptions{Host: "127.0.0.2", Options: hstest.Options{Store: st.Fresh(b)}})
	bs := hstest.StartFederating(b, hstest.FedOptions{Host: "127.0.0.3", Options: hstest.Options{Store: st.Fresh(b)}})
	alice := a.Register(b, "alice")
	bob := bs.Register(b, "bob")
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
		for j := range n {
			alice.Send(room, fmt.Sprintf("t%d-%d", i, j), fmt.Sprintf("m-%d", j))
		}
		bob.MustDo("POST", "/_matrix/client/v3/join/"+hstest.Esc(room)+"?server_name="+url.QueryEscape(a.FedName), map[string]any{})
		b.StartTimer()
		got := 0
		from := ""
		for page := 0; page < 10_000; page++ {
			q := "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/messages?dir=b&limit=100"
			if from != "" {
				q += "&from=" + url.QueryEscape(from)
			}
			res := bob.MustDo("GET", q, nil)
			for _, ev := range res.Get("chunk").Array() {
				if ev.Get("type").String() == "m.room.message" {
					got++
				}
			}
			if !res.Get("end").Exists() {
				break
			}
			from = res.Get("end").String()
		}
		if got != n {
			b.Fatalf("bob paged %d messages, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
