package homeserver_test

import (
	"fmt"
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
