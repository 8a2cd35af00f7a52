package homeserver_test

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// BenchmarkSend measures an acknowledged (committed) send over HTTP on
// SQLite with synchronous=FULL: the whole send path, one client.
func BenchmarkSend(b *testing.B) {
	srv := hstest.Start(b, hstest.Options{})
	alice := srv.Register(b, "alice")
	room := alice.CreateRoom(map[string]any{"name": "bench"})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		alice.Send(room, fmt.Sprint("b", i), "benchmark message")
	}
}

// BenchmarkIncrementalSync measures building an incremental sync with one
// new message, for a user in 50 rooms of which one changed.
func BenchmarkIncrementalSync(b *testing.B) {
	srv := hstest.Start(b, hstest.Options{})
	alice := srv.Register(b, "alice")
	var rooms []string
	for i := 0; i < 50; i++ {
		rooms = append(rooms, alice.CreateRoom(map[string]any{"name": fmt.Sprint("r", i)}))
	}
	since := alice.Sync("", 0).Get("next_batch").String()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		alice.Send(rooms[i%len(rooms)], fmt.Sprint("s", i), "news")
		b.StartTimer()
		since = alice.Sync(since, 0).Get("next_batch").String()
	}
}

// BenchmarkSendConcurrent measures acknowledged sends with 64 concurrent
// senders in 16 rooms: group commit lets one fsync acknowledge many sends.
// With PARLEY_TEST_DATABASE_URL set it also runs on PostgreSQL.
func BenchmarkSendConcurrent(b *testing.B) {
	for _, store := range hstest.Stores(b) {
		b.Run(store.Name, func(b *testing.B) {
			if store.URL != "" { // each run of the body needs its own database
				store.URL = hstest.NewPostgresDB(b, os.Getenv("PARLEY_TEST_DATABASE_URL"))
			}
			srv := hstest.Start(b, hstest.Options{Store: store})
			var clients []*hstest.Client
			var rooms []string
			for i := 0; i < 16; i++ {
				c := srv.Register(b, fmt.Sprint("u", i))
				clients = append(clients, c)
				rooms = append(rooms, c.CreateRoom(map[string]any{"name": "bench"}))
			}
			var next atomic.Int64
			b.SetParallelism(32) // 64 goroutines on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					k := int(i % 16)
					clients[k].Send(rooms[k], fmt.Sprint("p", i), "concurrent message")
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
		})
	}
}
