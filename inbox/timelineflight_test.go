package inbox

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/storage"
)

// blockingStore answers RoomTimelines once released, counting the reads.
type blockingStore struct {
	SyncStore // nil: only RoomTimelines is called
	calls     atomic.Int32
	release   chan struct{}
}

func (s *blockingStore) RoomTimelines(ctx context.Context, bounds []storage.RoomBound, limit int) ([]storage.Event, error) {
	s.calls.Add(1)
	<-s.release
	return []storage.Event{{Pos: bounds[0].Upto, RoomID: bounds[0].RoomID}}, nil
}

// TestWokenMembersShareOneTimelineRead: the members one commit wakes all
// miss the timeline cache at once; they must share one database read of
// the room's new events, not make one each (they did: on a loaded machine
// a fifth of the server's CPU in a 1,000-member fan-out). A sync that read
// the cache generation after a drop does not join an older read.
func TestWokenMembersShareOneTimelineRead(t *testing.T) {
	const members = 8
	st := &blockingStore{release: make(chan struct{})}
	s := &Syncer{store: st, n: &Notifier{timelines: newTimelineCache()}}
	bounds := []storage.RoomBound{{RoomID: "!r", Since: 4, Upto: 5}}
	var wg sync.WaitGroup
	got := make([][]storage.Event, members)
	for i := range members {
		wg.Go(func() {
			evs, err := s.readTimelines(context.Background(), bounds, 11, 0)
			if err != nil {
				t.Errorf("readTimelines: %v", err)
			}
			got[i] = evs
		})
	}
	// Every member is either reading or waiting for the one read.
	deadline := time.Now().Add(10 * time.Second)
	for int(st.calls.Load())+waitingInFlight("blockingStore).RoomTimelines") < members {
		if time.Now().After(deadline) {
			t.Fatalf("members reading %d + waiting %d after 10s, want %d", st.calls.Load(), waitingInFlight("blockingStore).RoomTimelines"), members)
		}
		runtime.Gosched()
	}
	close(st.release)
	wg.Wait()
	if n := st.calls.Load(); n != 1 {
		t.Errorf("database reads for %d members woken by one commit = %d, want 1", members, n)
	}
	for i, evs := range got {
		if len(evs) != 1 || evs[0].Pos != 5 {
			t.Errorf("member %d got %v, want the event at 5", i, evs)
		}
	}
	// Another generation (a redaction dropped the cache) reads again.
	if _, err := s.readTimelines(context.Background(), bounds, 11, 1); err != nil || st.calls.Load() != 2 {
		t.Errorf("read after a drop: err %v, reads %d; want a second read", err, st.calls.Load())
	}
}

// waitingInFlight counts goroutines waiting in a singleflight for a read
// another goroutine makes inside reader (a stack frame's name).
func waitingInFlight(reader string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "singleflight.(*Group).Do") && !strings.Contains(g, reader) {
			n++
		}
	}
	return n
}
