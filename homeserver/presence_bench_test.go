package homeserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/homeserver/hstest"
)

// presenceSlice is the wall time of one benchmark op: the scenarios below
// run on their own (long-polls, a flipping client), and the benchmark
// watches them for b.N slices and reports the rate of wake-ups.
const presenceSlice = 10 * time.Millisecond

// BenchmarkPresenceWakes measures long-poll wake-ups caused by presence
// alone, in wake-ups per second (the wakes/s metric; ns/op is just the
// 10 ms slice of time one op watches).
//
//   - two-devices: one user with an active window (set_presence=online) and
//     an idle tab (set_presence=unavailable), both long-polling: the syncs
//     the two answer per second.
//   - flipper: one client flipping its presence between online and
//     unavailable PARLEY_BENCH_PRESENCE_FLIPS times a second (default 120),
//     with PARLEY_BENCH_PRESENCE_PEERS room peers (default 50) long-polling:
//     the peers' syncs answered per second, in total.
func BenchmarkPresenceWakes(b *testing.B) {
	b.Run("two-devices", func(b *testing.B) {
		srv := hstest.Start(b, hstest.Options{})
		alice := srv.Register(b, "alice")
		tab := srv.Login(b, "alice")
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
		watchWakes(b, hc, func(ctx context.Context, answered *atomic.Int64, wg *sync.WaitGroup) {
			for _, d := range []struct{ tok, set string }{{alice.Token, "online"}, {tab.Token, "unavailable"}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					syncLoop(ctx, hc, srv.URL, d.tok, d.set, 30000, answered, nil)
				}()
			}
		})
	})
	b.Run("flipper", func(b *testing.B) {
		peers := benchEnvInt("PARLEY_BENCH_PRESENCE_PEERS", 50)
		rate := benchEnvInt("PARLEY_BENCH_PRESENCE_FLIPS", 120)
		srv := hstest.Start(b, hstest.Options{})
		flipper := srv.Register(b, "flipper")
		room := flipper.CreateRoom(map[string]any{"preset": "public_chat"})
		tokens := make([]string, peers)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := range tokens {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				name := fmt.Sprintf("p%d", i)
				if _, err := srv.Srv.CreateUser(context.Background(), name, "pw-"+name, false); err != nil {
					b.Error(err)
					return
				}
				c := srv.Login(b, name)
				c.MustDo("POST", "/_matrix/client/v3/join/"+hstest.Esc(room), map[string]any{})
				tokens[i] = c.Token
			}()
		}
		wg.Wait()
		if b.Failed() {
			return
		}
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: peers + 8}}
		watchWakes(b, hc, func(ctx context.Context, answered *atomic.Int64, wg *sync.WaitGroup) {
			for _, tok := range tokens {
				wg.Add(1)
				go func() {
					defer wg.Done()
					syncLoop(ctx, hc, srv.URL, tok, "offline", 30000, answered, nil)
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(time.Second / time.Duration(rate))
				defer tick.Stop()
				states := []string{"online", "unavailable"}
				for i := 0; ; i++ {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/_matrix/client/v3/sync?timeout=0&set_presence="+states[i%2], nil)
					req.Header.Set("Authorization", "Bearer "+flipper.Token)
					resp, err := hc.Do(req)
					if err != nil {
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		})
	})
}

// watchWakes starts a scenario, lets its clients make their first sync,
// then counts the syncs answered during b.N slices of presenceSlice.
func watchWakes(b *testing.B, hc *http.Client, start func(ctx context.Context, answered *atomic.Int64, wg *sync.WaitGroup)) {
	ctx, cancel := context.WithCancel(context.Background())
	var answered atomic.Int64
	var wg sync.WaitGroup
	start(ctx, &answered, &wg)
	// Let every client make its initial sync and enter its long-poll;
	// the wakes before the clock starts are not counted.
	time.Sleep(300 * time.Millisecond)
	b.ReportAllocs()
	b.ResetTimer()
	before := answered.Load()
	began := time.Now()
	for range b.N {
		time.Sleep(presenceSlice)
	}
	elapsed := time.Since(began)
	woken := answered.Load() - before
	b.StopTimer()
	cancel()
	wg.Wait()
	hc.CloseIdleConnections() // connections dialled for cancelled requests would hold the server's shutdown
	b.ReportMetric(float64(woken)/elapsed.Seconds(), "wakes/s")
}

func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
