package inbound_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parley-im/parley/federation/inbound"
	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/rooms/authrules"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
)

// TestSendRoomsInParallelWithinCap: a transaction's rooms are processed
// at the same time, but never more than MaxRooms at once. Each room's
// first write waits until the test has seen MaxRooms rooms waiting (which
// never happens when rooms run one after another) and records how many
// were inside at once (which would exceed the cap without one).
func TestSendRoomsInParallelWithinCap(t *testing.T) {
	const maxRooms, nRooms = 2, 4
	e := newEnv(t, func(c *inbound.Config) { c.Limit.MaxRooms = maxRooms })
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	var inside, most atomic.Int64
	var events []*pdu.Event
	for range nRooms {
		tr := e.newRoom()
		var once sync.Once
		tr.store.BeforePersist = func(int, *checks.Verdict) {
			once.Do(func() {
				n := inside.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-release
				inside.Add(-1)
			})
		}
		events = append(events, tr.fork.SendMessage(bob, "in parallel"))
	}
	done := make(chan map[string]inbound.PDUResult, 1)
	go func() { done <- e.results(remote.Name, "par", events...) }()
	hstest.Eventually(t, "two rooms processed at once", func() bool { return inside.Load() >= maxRooms })
	releaseOnce.Do(func() { close(release) })
	got := <-done
	for _, ev := range events {
		if got[ev.ID].Error != "" {
			t.Errorf("%s: %q, want success", ev.ID, got[ev.ID].Error)
		}
	}
	if m := most.Load(); m != maxRooms {
		t.Errorf("rooms processed at once = %d, want at most (and at some point exactly) %d", m, maxRooms)
	}
}

// TestSendOneWritePerRoomBatch: a transaction's run of PDUs extending one
// room is stored in one write, not one write per PDU (a commit each was
// what bounded how fast another server's events got in), and each PDU
// still gets its own result.
func TestSendOneWritePerRoomBatch(t *testing.T) {
	e := newEnv(t, nil)
	tr := e.newRoom()
	var events []*pdu.Event
	for i := range 20 {
		events = append(events, tr.fork.SendMessage(bob, fmt.Sprint("batched ", i)))
	}
	events = append(events, tr.fork.SendState(alice, "m.room.topic", "", `{"topic":"in the batch"}`))
	events = append(events, tr.fork.SendMessage(bob, "after the topic"))
	before := e.rooms.writes()
	got := e.results(remote.Name, "batch", events...)
	for _, ev := range events {
		if r, ok := got[ev.ID]; !ok || r.Error != "" || e.rooms.kind(ev.ID) != checks.Accepted {
			t.Errorf("%s: result %+v (present %v), stored as %v, want accepted", ev.ID, r, ok, e.rooms.kind(ev.ID))
		}
	}
	if n := e.rooms.writes() - before; n != 1 {
		t.Errorf("the transaction's %d PDUs took %d writes, want 1", len(events), n)
	}
	if got, want := tr.store.CurrentState()[authrules.StateKey{Type: "m.room.topic"}], events[20].ID; got != want {
		t.Errorf("topic = %s, want %s", got, want)
	}
}
