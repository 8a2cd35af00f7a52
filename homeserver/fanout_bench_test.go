package homeserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// BenchmarkFanout measures time-to-last-delivery in a room whose members
// all hold a long-poll: one op is one message, timed from the send until
// the last member's sync has delivered it. Members come from
// PARLEY_BENCH_FANOUT_MEMBERS (default 100). Client and server share this
// process, so it stops short of the file-descriptor limit: cmd/parley-bench
// fanout measures the 10,000-member room against a separate server.
func BenchmarkFanout(b *testing.B) {
	members := 100
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_FANOUT_MEMBERS")); err == nil && v > 0 {
		members = v
	}
	srv := hstest.Start(b, hstest.Options{})
	owner := srv.Register(b, "owner")
	room := owner.CreateRoom(map[string]any{"preset": "public_chat", "name": "fanout"})
	tr := &http.Transport{MaxIdleConnsPerHost: members + 10, MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}

	tokens := make([]string, members)
	var wg sync.WaitGroup
	// Fewer at once than the password-hashing queue admits (passwords.max_waiting).
	sem := make(chan struct{}, 4)
	for i := range tokens {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("m%d", i)
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

	filter := url.QueryEscape(`{"room":{"timeline":{"limit":5},"state":{"lazy_load_members":true}},"presence":{"not_types":["*"]}}`)
	var (
		current   atomic.Int64 // the message number being timed
		delivered atomic.Int64 // members that have it
		allDone   = make(chan struct{}, 1)
	)
	current.Store(-1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{}, members)
	for _, tok := range tokens {
		go func() {
			since := ""
			first := true
			for ctx.Err() == nil {
				q := "/_matrix/client/v3/sync?timeout=30000&filter=" + filter
				if since != "" {
					q += "&since=" + url.QueryEscape(since)
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+q, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := hc.Do(req)
				if err != nil {
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				res := gjson.ParseBytes(body)
				since = res.Get("next_batch").String()
				if first {
					first = false
					ready <- struct{}{}
					continue
				}
				want := "msg" + strconv.FormatInt(current.Load(), 10)
				for _, e := range hstest.Room(res, "join", room).Get("timeline.events").Array() {
					if e.Get("content.body").String() == want {
						if delivered.Add(1) == int64(members) {
							allDone <- struct{}{}
						}
					}
				}
			}
		}()
	}
	for range members {
		<-ready
	}
	time.Sleep(200 * time.Millisecond) // let every member re-enter its long-poll

	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		delivered.Store(0)
		current.Store(int64(i))
		start := time.Now()
		owner.Send(room, fmt.Sprint("f", i), "msg"+strconv.Itoa(i))
		select {
		case <-allDone:
		case <-time.After(time.Minute):
			b.Fatalf("message %d reached %d of %d members in a minute", i, delivered.Load(), members)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(members)*float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
