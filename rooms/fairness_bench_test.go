package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkWriterFairness measures, inside the room service (no HTTP), how
// long a well-behaved user's send takes from submit to commit while another
// user floods the writer from many goroutines: 64 senders (send-flood), or 4
// creators of rooms with the most initial_state allowed (create-flood).
// "quiet" is the same send alone. Metrics: the good user's p50 and p99.
func BenchmarkWriterFairness(b *testing.B) {
	filler := strings.Repeat("x", 1000)
	state := make([]StateEvent, 50)
	for i := range state {
		state[i] = StateEvent{Type: "org.example.filler", StateKey: fmt.Sprint(i), Content: json.RawMessage(`{"f":"` + filler + `"}`)}
	}
	msg := json.RawMessage(`{"msgtype":"m.text","body":"hello"}`)
	for _, bm := range []struct {
		name    string
		workers int
		flood   func(s *Service, room string, i int) error
	}{
		{"quiet", 0, nil},
		{"send-flood", 64, func(s *Service, room string, i int) error {
			_, err := s.Send(context.Background(), SendRequest{RoomID: room, Sender: "@bad:test.local", Type: "m.room.message", Content: msg})
			return err
		}},
		{"create-flood", 4, func(s *Service, _ string, _ int) error {
			_, err := s.CreateRoom(context.Background(), CreateRequest{Creator: "@bad:test.local", InitialState: state})
			return err
		}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			s := newTestService(b, Config{})
			ctx := context.Background()
			goodRoom, err := s.CreateRoom(ctx, CreateRequest{Creator: "@good:test.local"})
			if err != nil {
				b.Fatal(err)
			}
			badRoom, err := s.CreateRoom(ctx, CreateRequest{Creator: "@bad:test.local"})
			if err != nil {
				b.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range bm.workers {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						if err := bm.flood(s, badRoom, w*1_000_000+i); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if _, err := s.Send(ctx, SendRequest{RoomID: goodRoom, Sender: "@good:test.local", Type: "m.room.message", Content: msg}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(lat[len(lat)/2]), "good-p50-ms")
			b.ReportMetric(ms(lat[(len(lat)*99+99)/100-1]), "good-p99-ms")
		})
	}
}
