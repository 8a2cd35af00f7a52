package push

import (
	"testing"

	"github.com/parley-im/parley/rooms"
)

// BenchmarkPushCommitHook: the cost push adds to the room writer's
// goroutine per commit (record the position, wake the scanner).
func BenchmarkPushCommitHook(b *testing.B) {
	s := &Service{scanWake: make(chan struct{}, 1)}
	c := &rooms.Commit{Events: make([]rooms.CommittedEvent, 1)}
	b.ReportAllocs()
	for i := range b.N {
		c.Pos = int64(i + 1)
		s.Committed(c)
	}
}
