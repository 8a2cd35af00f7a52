package outbound_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms"
)

// benchStore is SQLite, or PostgreSQL when PARLEY_BENCH_POSTGRES is set
// (with PARLEY_TEST_DATABASE_URL).
func benchStore(b *testing.B) hstest.Store {
	if os.Getenv("PARLEY_BENCH_POSTGRES") != "" {
		for _, st := range hstest.Stores(b) {
			if st.Name == "postgres" {
				return st
			}
		}
	}
	return hstest.Store{Name: "sqlite"}
}

// benchRoom is a room of alice's with one remote member, and a counting
// peer for its server.
func benchRoom(b *testing.B) (*fixture, *peer, string, string) {
	f := newFixture(b, benchStore(b), nil)
	alice := f.register("alice")
	room := f.room(alice)
	f.injectMember(room, "join", "@bob:"+remote)
	p := newPeer(b)
	p.countOnly = true
	f.tr.route(remote, p.srv.URL)
	return f, p, room, alice.UserID
}

func (p *peer) await(n int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := make(chan struct{})
	if p.count >= n {
		close(ch)
		return ch
	}
	p.target, p.reached = n, ch
	return ch
}

func sendN(b *testing.B, rs *rooms.Service, room, sender string, n, workers int) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if _, err := rs.Send(context.Background(), rooms.SendRequest{RoomID: room, Sender: sender, Type: "m.room.message",
					Content: []byte(fmt.Sprintf(`{"msgtype":"m.text","body":"message %d"}`, i))}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkOutboundCatchUp: a destination comes back to a backlog of b.N
// PDUs; the time until the loopback receiver has them all (transactions of
// 50, one in flight). Allocations include the receiver's and HTTP's.
func BenchmarkOutboundCatchUp(b *testing.B) {
	f, p, room, alice := benchRoom(b)
	sendN(b, f.srv.Srv.Rooms, room, alice, b.N, 8)
	all := p.await(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	f.startQueue()
	<-all
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "pdus/s")
}

// BenchmarkOutboundLive: b.N local sends (8 senders) while the queue runs.
// sends/s is the writer's rate with the queue beside it (compare
// BenchmarkOutboundLiveBaseline); pdus/s counts until the receiver has
// them all.
func BenchmarkOutboundLive(b *testing.B) {
	f, p, room, alice := benchRoom(b)
	f.startQueue()
	all := p.await(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sendN(b, f.srv.Srv.Rooms, room, alice, b.N, 8)
	sent := time.Since(start)
	<-all
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/sent.Seconds(), "sends/s")
	b.ReportMetric(float64(b.N)/el.Seconds(), "pdus/s")
}

// BenchmarkOutboundLiveBaseline is BenchmarkOutboundLive's sends with no
// queue running: the writer's own cost, to compare.
func BenchmarkOutboundLiveBaseline(b *testing.B) {
	f, _, room, alice := benchRoom(b)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sendN(b, f.srv.Srv.Rooms, room, alice, b.N, 8)
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "sends/s")
}

// BenchmarkOutboundCommitHook: what the queue adds to each commit on the
// room writer's goroutine (Committed): no allocation, no I/O, no wait.
func BenchmarkOutboundCommitHook(b *testing.B) {
	f, _, _, _ := benchRoom(b)
	q := f.startQueue()
	c := &rooms.Commit{Pos: 1, Events: []rooms.CommittedEvent{{RoomID: "!r:localhost", Pos: 1, Type: "m.room.message"}}}
	b.ReportAllocs()
	for b.Loop() {
		q.Committed(c)
	}
}
