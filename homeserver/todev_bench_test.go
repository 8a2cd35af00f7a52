package homeserver_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// Benchmarks for issue 15 items 8, 13 and 14: a well-behaved user's latency
// while one kind of abuse runs at full speed, and the process's RSS (the
// server runs in the benchmark's process). Each reports good-p99-ms,
// good-mean-ms and rss-mb (the highest RSS sampled while the abuse ran).
// They size themselves by b.N, so CI's -benchtime=100x takes seconds.

// tdRun starts workers abusive goroutines, waits until each has sent at
// least once, then times b.N calls of good, and reports latency, RSS and
// the abusers' request rate and status counts.
func tdRun(b *testing.B, workers int, abuse func(ctx context.Context, worker int) (int, error), good func(ctx context.Context, i int) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	abuseCtx, stop := context.WithCancel(ctx)
	var (
		wg       sync.WaitGroup
		reqs     atomic.Int64
		statuses sync.Map // status -> *atomic.Int64
		firstErr atomic.Value
		maxRSS   atomic.Uint64 // KiB
	)
	defer func() { stop(); wg.Wait() }()
	for w := range workers {
		wg.Go(func() {
			for abuseCtx.Err() == nil {
				st, err := abuse(abuseCtx, w)
				if err != nil {
					if abuseCtx.Err() == nil {
						firstErr.CompareAndSwap(nil, err)
					}
					return
				}
				reqs.Add(1)
				n, _ := statuses.LoadOrStore(st, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		})
	}
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if kb := uint64(readRSS() >> 10); kb > maxRSS.Load() {
				maxRSS.Store(kb)
			}
			select {
			case <-abuseCtx.Done():
				return
			case <-tick.C:
			}
		}
	})
	if workers > 0 && !bndPoll(ctx, 5*time.Millisecond, func() bool { return reqs.Load() >= int64(workers) || firstErr.Load() != nil }) {
		b.Fatal("the abusers never got an answer")
	}
	lat := make([]time.Duration, 0, b.N)
	reqs0, start := reqs.Load(), time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := good(ctx, i); err != nil {
			b.Fatalf("good request %d: %v", i, err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	elapsed := time.Since(start)
	stop()
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Logf("an abuser stopped on a transport error: %v", err)
	}
	l := summarize(lat)
	b.ReportMetric(l.mean, "good-mean-ms")
	b.ReportMetric(l.p99, "good-p99-ms")
	b.ReportMetric(float64(maxRSS.Load())/1024, "rss-mb")
	if workers > 0 {
		b.ReportMetric(float64(reqs.Load()-reqs0)/elapsed.Seconds(), "abuser-req/s")
		var parts []string
		statuses.Range(func(k, v any) bool {
			parts = append(parts, fmt.Sprintf("%v:%d", k, v.(*atomic.Int64).Load()))
			return true
		})
		slices.Sort(parts)
		b.Logf("abusers' statuses: %s", strings.Join(parts, " "))
	}
}

// BenchmarkToDeviceFlood (item 8): three senders in tight loops, rate
// limits on at their defaults (10 requests a second per user, burst 50;
// the good user is exempt, as it sends back to back), each sending the 1 MiB sendToDevice of 69,000
// entries for a user that does not exist (now refused whole with 413) or
// 1,000 entries (the cap) for devices a real user does not have (accepted
// with 200 and dropped). A well-behaved user sends room messages meanwhile.
func BenchmarkToDeviceFlood(b *testing.B) {
	srv := hstest.Start(b, hstest.Options{Mutate: func(c *config.Config) {
		c.RateLimit.Enabled = true
		c.RateLimit.Exempt = []string{"@good:" + c.ServerName} // its back-to-back sends measure latency, not its bucket
	}})
	good := srv.Register(b, "good")
	room := good.CreateRoom(map[string]any{})
	bad := srv.Register(b, "bad")
	victim := srv.Register(b, "victim")
	huge := map[string]any{}
	for i := range 69_000 {
		huge[fmt.Sprintf("D%d", i)] = map[string]any{}
	}
	atCap := map[string]any{}
	for i := range 1000 {
		atCap[fmt.Sprintf("GHOST%d", i)] = map[string]any{"k": strings.Repeat("x", 500)}
	}
	bodies := []map[string]any{
		{"messages": map[string]any{"@nobody:" + srv.Cfg.ServerName: huge}},
		{"messages": map[string]any{victim.UserID: atCap}},
	}
	for _, bm := range []struct {
		name    string
		workers int
		body    map[string]any
	}{{"quiet", 0, nil}, {"unknown-user-69k", 3, bodies[0]}, {"ghost-devices-1k", 3, bodies[1]}} {
		b.Run(bm.name, func(b *testing.B) {
			badCl, goodCl := newBndClient(srv.URL, 6), newBndClient(srv.URL, 2)
			defer badCl.close()
			defer goodCl.close()
			tdRun(b, bm.workers, func(ctx context.Context, _ int) (int, error) {
				st, _, err := badCl.do(ctx, "PUT", fmt.Sprintf("/_matrix/client/v3/sendToDevice/m.test/f%d", abuTxn.Add(1)), bad.Token, bm.body, nil)
				return st, err
			}, func(ctx context.Context, i int) error {
				st, res, err := goodCl.do(ctx, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/g%d", hstest.Esc(room), abuTxn.Add(1)),
					good.Token, map[string]any{"msgtype": "m.text", "body": "hello"}, nil)
				if err == nil && st != 200 {
					err = fmt.Errorf("status %d %s", st, res.Raw)
				}
				return err
			})
			n, _ := srv.Srv.Store.ToDeviceCount(context.Background())
			b.ReportMetric(float64(n), "to-device-rows")
		})
	}
}

// BenchmarkLoginFlood (item 13): 150 goroutines send wrong-password logins
// for ever-new accounts (so the per-account limit never applies), while a
// well-behaved user logs in with the right password from another address,
// retrying after retry_after_ms when told 429; good-p99-ms includes those
// retries. In "one-address" the flood comes from one client address (sent
// as X-Forwarded-For, which the server trusts from loopback), so the
// per-address limit (20/s, burst 100) bounds it. In "many-addresses" each
// request has its own address, so only the bounded hashing queue (8
// waiting) stands between the flood and the good user; it runs only with
// PARLEY_BENCH_HEAVY=1, as its retries take minutes at 100x. The hash cost
// is the tests' cheap one unless PARLEY_BENCH_ARGON2=prod (19 MiB, 2
// passes).
func BenchmarkLoginFlood(b *testing.B) {
	prod := os.Getenv("PARLEY_BENCH_ARGON2") == "prod"
	srv := hstest.Start(b, hstest.Options{Mutate: func(c *config.Config) {
		c.RateLimit.Enabled = true
		if prod {
			c.Passwords.Argon2MemoryKiB, c.Passwords.Argon2Time = 19456, 2
		}
	}})
	srv.Register(b, "good")
	for _, bm := range []struct {
		name    string
		workers int
	}{{"quiet", 0}, {"one-address-150", 150}, {"many-addresses-150", 150}} {
		b.Run(bm.name, func(b *testing.B) {
			many := bm.name == "many-addresses-150"
			if many && os.Getenv("PARLEY_BENCH_HEAVY") == "" {
				b.Skip("set PARLEY_BENCH_HEAVY=1 to run the flood from many addresses")
			}
			badCl, goodCl := newBndClient(srv.URL, 150), newBndClient(srv.URL, 2)
			defer badCl.close()
			defer goodCl.close()
			var retries atomic.Int64
			tdRun(b, bm.workers, func(ctx context.Context, w int) (int, error) {
				n := abuTxn.Add(1)
				from := abuForwardedFor
				if many {
					from = fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
				}
				st, _, err := badCl.do(ctx, "POST", "/_matrix/client/v3/login", "", loginBody(fmt.Sprintf("guess%d", n), "wrong"),
					http.Header{"X-Forwarded-For": {from}})
				return st, err
			}, func(ctx context.Context, i int) error {
				for {
					st, res, err := goodCl.do(ctx, "POST", "/_matrix/client/v3/login", "", loginBody("good", "pw-good"),
						http.Header{"X-Forwarded-For": {"198.51.100.200"}})
					if err != nil {
						return err
					}
					switch st {
					case 200:
						return nil
					case 429:
						retries.Add(1)
						time.Sleep(time.Duration(res.Get("retry_after_ms").Int()) * time.Millisecond)
					default:
						return fmt.Errorf("status %d %s", st, res.Raw)
					}
				}
			})
			b.ReportMetric(float64(retries.Load())/float64(b.N), "good-retries/op")
		})
	}
}

// BenchmarkSlowBodies (item 14): 200 connections from one address each
// send a request head and one body byte, then stall (the cap admits 100;
// limit_loopback is on so the cap applies to this loopback test), while a
// well-behaved user sends messages. stalled-ended counts the stalled
// connections the server had closed or answered by the end of the timed
// loop: those refused by the cap at once, and those cut off by the idle
// limit (1 s here, 30 s by default) if the loop ran that long.
func BenchmarkSlowBodies(b *testing.B) {
	srv := hstest.Start(b, hstest.Options{Mutate: func(c *config.Config) {
		c.HTTP.MaxConnsPerAddress = 100
		c.HTTP.LimitLoopback = true
		c.HTTP.BodyIdleTimeoutMs = 1000
	}})
	good := srv.Register(b, "good")
	room := good.CreateRoom(map[string]any{})
	addr := strings.TrimPrefix(srv.URL, "http://")
	path := "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/send/m.room.message/"
	b.Run("stalled-200", func(b *testing.B) {
		// The good user's connection is opened first, so it holds one of
		// the address's slots: the cap then refuses stalled connections,
		// never the good user.
		goodCl := newBndClient(srv.URL, 1)
		defer goodCl.close()
		goodSend := func(ctx context.Context, i int) error {
			st, res, err := goodCl.do(ctx, "PUT", fmt.Sprintf("%sg%d", path, abuTxn.Add(1)), good.Token, map[string]any{"msgtype": "m.text", "body": "hi"}, nil)
			if err == nil && st != 200 {
				err = fmt.Errorf("status %d %s", st, res.Raw)
			}
			return err
		}
		if err := goodSend(context.Background(), -1); err != nil {
			b.Fatal(err)
		}
		var ended atomic.Int64
		var readers sync.WaitGroup
		conns := make([]net.Conn, 0, 200)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
			readers.Wait()
		}()
		for i := range 200 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "PUT %ss%d HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{", path, i, good.Token)
			readers.Go(func() {
				if _, err := bufio.NewReader(c).ReadByte(); err == nil || !strings.Contains(err.Error(), "use of closed") {
					ended.Add(1) // an answer or a close by the server ends the stall
				}
			})
		}
		tdRun(b, 0, nil, goodSend)
		b.ReportMetric(float64(ended.Load()), "stalled-ended")
	})
}
