package homeserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// BenchmarkWriterUnderAbuse times a well-behaved user's sends while one
// user, exempt from the request rate limit (a bridge gone wrong, or a
// limit raised for it), drives the writer at full speed:
//
//   - send-flood: 16 goroutines sending messages as fast as they are answered;
//   - giant-create: 4 goroutines creating rooms with the most initial_state
//     allowed by default (50 events of 1 KB each);
//   - full-sync: another exempt user's 8 goroutines doing initial syncs of
//     3 rooms holding about 3.5 MB of state each (near the per-room cap);
//     the server-wide cap on concurrent full syncs is what bounds them.
//
// "quiet" is the same loop alone. Metrics: the good user's p50 and p99 send
// latency (the goal is p99 under 50 ms), the abuser's answered requests a
// second, the process's peak RSS while the loop ran, and the writer's room
// cache size. Run it alone: -run '^$' -bench WriterUnderAbuse -benchtime 300x.
func BenchmarkWriterUnderAbuse(b *testing.B) {
	srv := hstest.Start(b, hstest.Options{Mutate: func(c *config.Config) {
		c.RateLimit.Enabled = true
		c.RateLimit.Message = config.Bucket{PerSecond: 100, Burst: 200}
		c.RateLimit.PerDevice = config.Bucket{PerSecond: 100, Burst: 200}
		c.RateLimit.Exempt = []string{"@bridge:localhost", "@reader:localhost"}
	}})
	good := srv.Register(b, "good")
	bad := srv.Register(b, "bridge")
	// The full-sync abuser is another user, in only its big rooms: the
	// bridge joins a room per giant-create, and its syncs would measure
	// those.
	reader := srv.Register(b, "reader")
	goodRoom := good.CreateRoom(map[string]any{"name": "good"})
	badRoom := bad.CreateRoom(map[string]any{"name": "spam"})

	filler := strings.Repeat("x", 1000)
	giantState := make([]map[string]any, 50)
	for i := range giantState {
		giantState[i] = map[string]any{"type": "org.example.filler", "state_key": fmt.Sprint(i), "content": map[string]any{"f": filler}}
	}
	var seq atomic.Int64
	sendFlood := func(ctx context.Context, cl *bndClient) (int, error) {
		st, _, err := cl.do(ctx, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/w%d", hstest.Esc(badRoom), seq.Add(1)),
			bad.Token, map[string]any{"msgtype": "m.text", "body": "spam"}, nil)
		return st, err
	}
	giantCreate := func(ctx context.Context, cl *bndClient) (int, error) {
		st, _, err := cl.do(ctx, "POST", "/_matrix/client/v3/createRoom", bad.Token, map[string]any{"initial_state": giantState}, nil)
		return st, err
	}
	fullSync := func(ctx context.Context, cl *bndClient) (int, error) {
		st, _, err := cl.do(ctx, "GET", "/_matrix/client/v3/sync", reader.Token, nil, nil)
		return st, err
	}
	var bigOnce sync.Once
	makeBigRooms := func(b *testing.B) {
		bigOnce.Do(func() {
			big := strings.Repeat("y", 60_000)
			for r := range 3 {
				room := reader.CreateRoom(map[string]any{"name": fmt.Sprint("big ", r)})
				for i := range 58 {
					reader.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/state/org.example.big/"+fmt.Sprint(i), map[string]any{"b": big})
				}
			}
		})
	}
	for _, bm := range []struct {
		name    string
		workers int
		abuse   abuser
		setup   func(*testing.B)
	}{
		{"quiet", 0, nil, nil},
		{"send-flood", 16, sendFlood, nil},
		{"giant-create", 4, giantCreate, nil},
		{"full-sync", 8, fullSync, makeBigRooms},
	} {
		b.Run(bm.name, func(b *testing.B) {
			if bm.setup != nil {
				bm.setup(b)
			}
			wrRun(b, srv, good, goodRoom, bm.workers, bm.abuse)
		})
	}
}

func wrRun(b *testing.B, srv *hstest.Server, good *hstest.Client, room string, workers int, abuse abuser) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	goodCl := newBndClient(srv.URL, 4)
	defer goodCl.close()

	var (
		answered, ok atomic.Int64
		abuseErr     atomic.Value
		wg           sync.WaitGroup
		peakRSS      atomic.Int64
	)
	abuseCtx, stopAbuse := context.WithCancel(ctx)
	defer func() { stopAbuse(); wg.Wait() }()
	wg.Go(func() { // sample RSS until the abuse stops
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss := readRSS(); rss > peakRSS.Load() {
				peakRSS.Store(rss)
			}
			select {
			case <-abuseCtx.Done():
				return
			case <-tick.C:
			}
		}
	})
	if abuse != nil {
		badCl := newBndClient(srv.URL, 2*workers)
		defer badCl.close()
		for range workers {
			wg.Go(func() {
				for abuseCtx.Err() == nil {
					st, err := abuse(abuseCtx, badCl)
					if err != nil {
						if abuseCtx.Err() == nil {
							abuseErr.CompareAndSwap(nil, err)
						}
						return
					}
					answered.Add(1)
					if st == http.StatusOK {
						ok.Add(1)
					}
				}
			})
		}
		// Measure under way: the abuser has had answers.
		if !bndPoll(ctx, 5*time.Millisecond, func() bool { return answered.Load() >= int64(workers) || abuseErr.Load() != nil }) {
			b.Fatal("the abuser got no answers")
		}
	}

	lat := make([]time.Duration, 0, b.N)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	answered0, ok0, start := answered.Load(), ok.Load(), time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		<-tick.C
		b.StartTimer()
		t0 := time.Now()
		st, res, err := goodCl.do(ctx, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/wg%d", hstest.Esc(room), abuTxn.Add(1)),
			good.Token, map[string]any{"msgtype": "m.text", "body": "hello"}, nil)
		lat = append(lat, time.Since(t0))
		if err != nil || st != 200 {
			b.Fatalf("good user's send %d = %d %v %s, want 200", i, st, err, res.Raw)
		}
	}
	b.StopTimer()
	elapsed := time.Since(start)
	reqs, oks := answered.Load()-answered0, ok.Load()-ok0
	stopAbuse()
	wg.Wait()
	if err, _ := abuseErr.Load().(error); err != nil {
		b.Errorf("abuser's request failed: %v", err)
	}
	l := summarize(lat)
	b.ReportMetric(l.p50, "good-p50-ms")
	b.ReportMetric(l.p99, "good-p99-ms")
	b.ReportMetric(float64(peakRSS.Load())/(1<<20), "peak-rss-MiB")
	cs := srv.Srv.Rooms.CacheStats()
	b.ReportMetric(float64(cs.Bytes)/(1<<20), "cache-MiB")
	if abuse != nil {
		b.ReportMetric(float64(reqs)/elapsed.Seconds(), "abuser-req/s")
		b.ReportMetric(float64(oks)/elapsed.Seconds(), "abuser-ok/s")
	}
}
