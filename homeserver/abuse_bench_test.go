package homeserver_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

const (
	// abuGoodEvery paces the well-behaved user at 25 sends a second, half
	// its 50/s allowance: a user who stays under the limit must never see a
	// 429, so the benchmark measures latency, not the limiter's verdict on
	// the good user.
	abuGoodEvery = 40 * time.Millisecond
	abuWorkers   = 4 // abusive goroutines, each in a tight loop
	// abuForwardedFor is the abuser's client address for the login flood.
	// The per-IP bucket does not apply to loopback peers (on one host they
	// are a reverse proxy speaking for everyone) unless they send
	// X-Forwarded-For, which the server then trusts, as it would from a
	// local proxy. So the abuser's login requests carry this fixed
	// TEST-NET-3 address, and the per-IP bucket (20/s, burst 100) applies
	// to them; the good user's requests carry none and are limited only per
	// user.
	abuForwardedFor = "203.0.113.7"
)

var abuTxn atomic.Int64 // unique transaction IDs across runs

// abuser sends one abusive request and returns its status.
type abuser func(ctx context.Context, cl *bndClient) (int, error)

// BenchmarkAbusiveUserDoesNotSlowOthers: with rate limits on, one user
// hammers the server from several goroutines — PUT send (per-user bucket,
// 50/s burst 100) or wrong-password logins (per-IP bucket, production
// argon2 cost) — while the benchmark times a well-behaved user's sends,
// each of which must succeed. "quiet" is the same loop with nobody else on
// the server. Metrics: the good user's mean and p99 send latency, the
// abuser's share of 429s and request rate while the loop ran.
//
// Run it alone: -run '^$' -bench AbusiveUser -benchtime 200x.
func BenchmarkAbusiveUserDoesNotSlowOthers(b *testing.B) {
	srv := hstest.Start(b, hstest.Options{Mutate: func(c *config.Config) {
		c.RateLimit.Enabled = true
		c.RateLimit.Message = config.Bucket{PerSecond: 50, Burst: 100} // the good user sends at half this
		c.RateLimit.PerDevice = config.Bucket{PerSecond: 50, Burst: 100}
		c.RateLimit.PerIP = config.Bucket{PerSecond: 20, Burst: 100} // the defaults, spelled out
		// Production hashing cost, so that the logins the per-IP bucket
		// lets through cost what they would in production.
		c.Passwords.Argon2MemoryKiB, c.Passwords.Argon2Time = 19456, 2
	}})
	good := srv.Register(b, "good")
	bad := srv.Register(b, "abuser")
	goodRoom := good.CreateRoom(map[string]any{"name": "good"})
	badRoom := bad.CreateRoom(map[string]any{"name": "spam"})

	sendSpam := func(ctx context.Context, cl *bndClient) (int, error) {
		st, _, err := cl.do(ctx, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/a%d", hstest.Esc(badRoom), abuTxn.Add(1)),
			bad.Token, map[string]any{"msgtype": "m.text", "body": "spam"}, nil)
		return st, err
	}
	loginSpam := func(ctx context.Context, cl *bndClient) (int, error) {
		st, _, err := cl.do(ctx, "POST", "/_matrix/client/v3/login", "", map[string]any{
			"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": "good"}, "password": "guess",
		}, http.Header{"X-Forwarded-For": {abuForwardedFor}})
		return st, err
	}
	for _, bm := range []struct {
		name  string
		abuse abuser
	}{
		{"quiet", nil},
		{"abused-send", sendSpam},
		{"abused-login", loginSpam},
	} {
		b.Run(bm.name, func(b *testing.B) { abuRun(b, srv, good, goodRoom, bm.abuse) })
	}
}

func abuRun(b *testing.B, srv *hstest.Server, good *hstest.Client, room string, abuse abuser) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	goodCl := newBndClient(srv.URL, 4)
	defer goodCl.close()

	var (
		total, limited atomic.Int64
		abuseErr       atomic.Value // first transport error, if any
		wg             sync.WaitGroup
	)
	abuseCtx, stopAbuse := context.WithCancel(ctx)
	defer func() { stopAbuse(); wg.Wait() }() // the abuser stops, whatever happens
	if abuse != nil {
		badCl := newBndClient(srv.URL, 2*abuWorkers)
		defer badCl.close()
		for range abuWorkers {
			wg.Go(func() {
				for abuseCtx.Err() == nil {
					st, err := abuse(abuseCtx, badCl)
					if err != nil {
						if abuseCtx.Err() == nil {
							abuseErr.CompareAndSwap(nil, err)
						}
						return
					}
					total.Add(1)
					if st == http.StatusTooManyRequests {
						limited.Add(1)
					}
				}
			})
		}
		// Measure the steady state: the abuser's burst is spent and it is
		// being limited.
		if !bndPoll(ctx, 10*time.Millisecond, func() bool { return limited.Load() > 0 || abuseErr.Load() != nil }) {
			b.Fatal("the abuser was never limited")
		}
	}

	lat := make([]time.Duration, 0, b.N)
	tick := time.NewTicker(abuGoodEvery)
	defer tick.Stop()
	total0, limited0, start := total.Load(), limited.Load(), time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer() // the pacing wait is not the send's latency
		<-tick.C
		b.StartTimer()
		t0 := time.Now()
		st, res, err := goodCl.do(ctx, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/g%d", hstest.Esc(room), abuTxn.Add(1)),
			good.Token, map[string]any{"msgtype": "m.text", "body": "hello"}, nil)
		lat = append(lat, time.Since(t0))
		if err != nil || st != 200 {
			b.Fatalf("good user's send %d = %d %v %s, want 200", i, st, err, res.Raw)
		}
	}
	b.StopTimer()
	elapsed := time.Since(start)
	reqs, lim := total.Load()-total0, limited.Load()-limited0
	stopAbuse()
	wg.Wait()
	if err, _ := abuseErr.Load().(error); err != nil {
		b.Errorf("abuser's request failed: %v", err)
	}

	l := summarize(lat)
	b.ReportMetric(l.mean, "good-mean-ms")
	b.ReportMetric(l.p99, "good-p99-ms")
	if abuse != nil {
		ratio := 0.0
		if reqs > 0 {
			ratio = float64(lim) / float64(reqs)
		}
		b.ReportMetric(ratio, "abuser-429-ratio")
		b.ReportMetric(float64(reqs)/elapsed.Seconds(), "abuser-req/s")
		b.ReportMetric(float64(reqs-lim)/elapsed.Seconds(), "abuser-admitted/s")
	}
}
