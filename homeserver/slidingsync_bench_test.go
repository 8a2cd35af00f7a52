package homeserver_test

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// BenchmarkSlidingSyncFirst measures the first sliding sync response of a
// user in many rooms (issue 14: 1,000 rooms under 200 ms):
// PARLEY_BENCH_ROOMS rooms (default 100, for CI) of 5 messages each, and
// the request Element X makes at start: a window of the 20 most recent
// rooms with one timeline event and the state a room list shows, plus
// every extension.
func BenchmarkSlidingSyncFirst(b *testing.B) { benchSlidingFirst(b, nil) }

// BenchmarkSlidingSyncFirstFiltered is BenchmarkSlidingSyncFirst with the
// filter matrix-rust-sdk's room list sends (no spaces), which reads every
// room's create event: the filters' state query is in the figure.
func BenchmarkSlidingSyncFirstFiltered(b *testing.B) {
	benchSlidingFirst(b, map[string]any{"not_room_types": []string{"m.space"}})
}

func benchSlidingFirst(b *testing.B, filters map[string]any) {
	n := 100
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_ROOMS")); err == nil && v > 0 {
		n = v
	}
	store := hstest.Store{Name: "sqlite"}
	if os.Getenv("PARLEY_BENCH_PG") != "" {
		store = hstest.Store{Name: "postgres", URL: hstest.NewPostgresDB(b, os.Getenv("PARLEY_TEST_DATABASE_URL"))}
	}
	srv := hstest.Start(b, hstest.Options{Store: store})
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
			for j := 0; j < 5; j++ {
				c := alice
				if j%2 == 1 {
					c = bob
				}
				c.Send(room, fmt.Sprint("h", i, "_", j), "history message")
			}
		}()
	}
	wg.Wait()
	body := map[string]any{
		"conn_id": "room-list",
		"lists": map[string]any{"all": map[string]any{
			"ranges": [][]int{{0, 19}}, "timeline_limit": 1,
			"required_state": [][]string{{"m.room.create", ""}, {"m.room.name", ""}, {"m.room.avatar", ""},
				{"m.room.encryption", ""}, {"m.room.topic", ""}, {"m.room.canonical_alias", ""},
				{"m.room.join_rules", ""}, {"m.room.power_levels", ""}, {"m.room.member", "$LAZY"}, {"m.room.member", "$ME"}},
			"filters": filters,
		}},
		"extensions": map[string]any{
			"to_device": map[string]any{"enabled": true}, "e2ee": map[string]any{"enabled": true},
			"account_data": map[string]any{"enabled": true}, "receipts": map[string]any{"enabled": true},
			"typing": map[string]any{"enabled": true},
		},
	}
	want := min(n, 20)
	size := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := alice.MustDo("POST", slidingPath, body)
		size = len(res.Raw)
		if got := len(res.Get("rooms").Map()); got != want || res.Get("lists.all.count").Int() != int64(n) {
			b.Fatalf("first response has %d rooms, count %d; want %d of %d", got, res.Get("lists.all.count").Int(), want, n)
		}
	}
	b.ReportMetric(float64(size)/1024, "KiB/response")
}
