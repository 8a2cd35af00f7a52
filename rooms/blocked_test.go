package rooms

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestBlockedRoomsConcurrent: blocks and lifts from many goroutines while
// others check; under -race, and every block that was not lifted sticks.
func TestBlockedRoomsConcurrent(t *testing.T) {
	s := &Service{}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			id := fmt.Sprintf("!r%d:x", i)
			s.blocked.mu.Lock()
			s.blocked.put(id, true)
			s.blocked.mu.Unlock()
			if i%2 == 1 {
				s.blocked.mu.Lock()
				s.blocked.put(id, false)
				s.blocked.mu.Unlock()
			}
		})
		wg.Go(func() { _ = s.checkNotBlocked(fmt.Sprintf("!r%d:x", i)) })
	}
	wg.Wait()
	for i := range 20 {
		err := s.checkNotBlocked(fmt.Sprintf("!r%d:x", i))
		if blocked := errors.Is(err, ErrForbidden); blocked != (i%2 == 0) {
			t.Errorf("room %d blocked = %v, want %v", i, blocked, i%2 == 0)
		}
	}
}

// BenchmarkCheckNotBlocked is the cost the block check adds to every send
// and join: no allocation, no lock.
func BenchmarkCheckNotBlocked(b *testing.B) {
	s := &Service{}
	s.blocked.mu.Lock()
	for i := range 1000 {
		s.blocked.put(fmt.Sprintf("!blocked%d:x", i), true)
	}
	s.blocked.mu.Unlock()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.checkNotBlocked("!open:x"); err != nil {
			b.Fatal(err)
		}
	}
}
