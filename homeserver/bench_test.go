package homeserver_test

import (
	"fmt"
	"os"
	"strconv"
	"sync"
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
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		alice.Send(room, fmt.Sprint("b", i), "benchmark message")
	}
	cpu.report(b)
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
			cpu := startCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					k := int(i % 16)
					clients[k].Send(rooms[k], fmt.Sprint("p", i), "concurrent message")
				}
			})
			cpu.report(b)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
		})
	}
}

// BenchmarkInitialSync measures a first sync for a user in many rooms with
// history: PARLEY_BENCH_ROOMS rooms (default 100; the goal is 1,000 under
// a second) of 20 messages each, with the default timeline limit.
func BenchmarkInitialSync(b *testing.B) {
	n := 100
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_ROOMS")); err == nil && v > 0 {
		n = v
	}
	srv := hstest.Start(b, hstest.Options{})
	alice := srv.Register(b, "alice")
	bob := srv.Register(b, "bob")
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			room := alice.CreateRoom(map[string]any{"name": fmt.Sprint("room ", i), "invite": []string{bob.UserID}})
			bob.Join(room)
			for j := 0; j < 20; j++ {
				c := alice
				if j%2 == 1 {
					c = bob
				}
				c.Send(room, fmt.Sprint("h", i, "_", j), "history message")
			}
		}()
	}
	wg.Wait()
	size := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := alice.Sync("", 0)
		size = len(res.Raw)
		if got := len(res.Get("rooms.join").Map()); got != n {
			b.Fatalf("initial sync has %d rooms, want %d", got, n)
		}
	}
	b.ReportMetric(float64(size)/1024, "KiB/response")
}
