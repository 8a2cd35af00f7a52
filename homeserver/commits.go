package homeserver

import (
	"sync"
	"sync/atomic"

	"github.com/parley-im/parley/rooms"
)

// commitFanout hands each commit of the room writer to the sync notifier,
// then to the listeners added later (the outbound federation queue). It
// runs on the writer goroutine: every listener must only record and signal,
// never block.
type commitFanout struct {
	first rooms.CommitListener // static after New
	mu    sync.Mutex           // serialises AddCommitListener
	more  atomic.Pointer[[]rooms.CommitListener]
}

func (f *commitFanout) Committed(c *rooms.Commit) {
	f.first.Committed(c)
	if more := f.more.Load(); more != nil {
		for _, l := range *more {
			l.Committed(c)
		}
	}
}

func (f *commitFanout) add(l rooms.CommitListener) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var next []rooms.CommitListener
	if cur := f.more.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, l)
	f.more.Store(&next)
}

// AddCommitListener makes l hear every later commit of the room writer,
// after the sync notifier, on the writer goroutine (so l must not block).
// The outbound federation queue is fed this way.
func (s *Server) AddCommitListener(l rooms.CommitListener) { s.commits.add(l) }
