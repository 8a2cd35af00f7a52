package rooms

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
)

// BenchmarkStateRowsPerMembership measures the state storage one membership
// change costs in a big room: rows in state_groups and state_group_deltas
// (the goal is at most 2, never a copy of the state per event), and the
// snapshot bytes written every maxGroupHops changes, per change. The room
// has PARLEY_BENCH_MEMBERS members first (default 1,000 so CI's 100
// iterations take seconds; the figure in docs/benchmarks.md uses 10,000).
func BenchmarkStateRowsPerMembership(b *testing.B) {
	members := 1000
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_MEMBERS")); err == nil && v > 0 {
		members = v
	}
	ctx := context.Background()
	s := newTestService(b, Config{MaxQueuePerUser: 1 << 20, MaxQueue: 1 << 20})
	room, err := s.CreateRoom(ctx, CreateRequest{Creator: "@owner:test.local", Preset: "public_chat"})
	if err != nil {
		b.Fatal(err)
	}
	join := func(i int) error {
		u := fmt.Sprintf("@m%d:test.local", i)
		_, err := s.ChangeMembership(ctx, MembershipRequest{RoomID: room, Sender: u, Target: u, Membership: "join"})
		return err
	}
	// Concurrent joins share commits: the setup takes seconds, not minutes.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < members; i += 64 {
				if err := join(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	g0, d0, s0, err := realStore(s).StateStorage(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := join(members + i); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	g1, d1, s1, err := realStore(s).StateStorage(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(g1-g0+d1-d0)/float64(b.N), "rows/op")
	b.ReportMetric(float64(s1-s0)/float64(b.N), "snapshot-bytes/op")
}
