package inbox

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/storage"
)

// blockingMemberStore answers MemberEvents once released, counting reads.
type blockingMemberStore struct {
	SyncStore // nil: only MemberEvents is called
	calls     atomic.Int32
	release   chan struct{}
}

func (s *blockingMemberStore) MemberEvents(ctx context.Context, pairs []storage.RoomUser) ([]storage.Event, error) {
	s.calls.Add(1)
	<-s.release
	var out []storage.Event
	for i, p := range pairs {
		key := p.UserID
		out = append(out, storage.Event{Pos: int64(i + 1), RoomID: p.RoomID, Type: "m.room.member", StateKey: &key})
	}
	return out, nil
}

// TestWokenMembersShareOneMemberRead: a new sender in a big room wakes
// every member, and each missed the sender's member event (lazy loading)
// at once. They must share one read, not send the same query each (they
// did: 10,000 identical queries for the first message of a new sender in
// a 10,000-member room). A sync that began after a member change does not
// join a read that began before it.
func TestWokenMembersShareOneMemberRead(t *testing.T) {
	const members = 8
	st := &blockingMemberStore{release: make(chan struct{})}
	s := &Syncer{store: st, n: &Notifier{members: newMemberCache()}}
	pairs := []storage.RoomUser{{RoomID: "!r", UserID: "@sender:hs"}}
	var wg sync.WaitGroup
	got := make([][]storage.Event, members)
	for i := range members {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			if i == 0 {
				cancel() // one member hangs up: the shared read goes on for the rest
			}
			evs, err := s.memberEvents(ctx, pairs)
			if err != nil && i != 0 {
				t.Errorf("memberEvents: %v", err)
			}
			cancel()
			got[i] = evs
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for int(st.calls.Load())+waitingInFlight("blockingMemberStore).MemberEvents") < members {
		if time.Now().After(deadline) {
			t.Fatalf("members reading %d + waiting %d after 10s, want %d", st.calls.Load(),
				waitingInFlight("blockingMemberStore).MemberEvents"), members)
		}
		runtime.Gosched()
	}
	close(st.release)
	wg.Wait()
	if n := st.calls.Load(); n != 1 {
		t.Errorf("database reads for %d members woken by one message = %d, want 1", members, n)
	}
	for i, evs := range got[1:] {
		if len(evs) != 1 || evs[0].StateKeyOr() != "@sender:hs" {
			t.Errorf("member %d got %v, want the sender's member event", i+1, evs)
		}
	}
	// Now cached: no read at all.
	if _, err := s.memberEvents(context.Background(), pairs); err != nil || st.calls.Load() != 1 {
		t.Errorf("cached read: err %v, reads %d; want still 1", err, st.calls.Load())
	}
	// A member change voids the room: the next sync reads again.
	s.n.members.void("!r")
	if _, err := s.memberEvents(context.Background(), pairs); err != nil || st.calls.Load() != 2 {
		t.Errorf("read after a member change: err %v, reads %d; want a second read", err, st.calls.Load())
	}
}
