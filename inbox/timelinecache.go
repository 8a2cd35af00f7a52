package inbox

import (
	"context"
	"strconv"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/parley-im/parley/storage"
)

// timelineCache keeps each room's newest events, so that the members woken
// by one commit share one read of the room: in a room of 10,000 long-polling
// members, one message was 10,000 identical timeline queries. An entry holds
// every event of its room with lo < pos <= hi; a sync whose range lies
// inside it reads no database.
//
// Stored events change only when redacted: the notifier drops the room's
// entry when a redaction commits. A read that raced with a redaction must
// not store what it read, so reads record gen first and store only if no
// drop happened since.
type timelineCache struct {
	flight singleflight.Group // one database read per (room, range) at a time; see readTimelines

	mu    sync.RWMutex
	gen   uint64                   // guarded by mu; bumped by every drop
	rooms map[string]*cachedEvents // guarded by mu; entries are replaced, never changed in place
	total int                      // guarded by mu; events held in all rooms
}

type cachedEvents struct {
	lo, hi int64
	events []storage.Event // in log order; shared read-only by every reader
}

// Bounds of the cache: events kept per room, and events kept in all. Past
// the total the map starts afresh, which costs one read per room to refill.
// Events are a few hundred bytes of client JSON each (64 KiB at most), so
// the total keeps the cache to tens of megabytes in practice.
const (
	timelineCachePerRoom = 32
	timelineCacheEvents  = 50_000
)

func newTimelineCache() *timelineCache {
	return &timelineCache{rooms: map[string]*cachedEvents{}}
}

// generation returns the drop counter to pass to store.
func (c *timelineCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// appendRange appends to dst the room's events in (since, upto], at most the
// newest max of them, and reports whether the cache covers that range.
func (c *timelineCache) appendRange(dst []storage.Event, room string, since, upto int64, max int) ([]storage.Event, bool) {
	c.mu.RLock()
	e := c.rooms[room]
	c.mu.RUnlock()
	if e == nil || since < e.lo || upto > e.hi {
		return dst, false
	}
	evs := e.events
	end := len(evs)
	for end > 0 && evs[end-1].Pos > upto {
		end--
	}
	start := end
	for start > 0 && evs[start-1].Pos > since && end-start < max {
		start--
	}
	return append(dst, evs[start:end]...), true
}

// store records what a database read found: evs are the newest events of
// room in (since, upto], at most max of them. When there are max, the range
// they cover starts at the oldest. gen is what generation returned before
// the read.
func (c *timelineCache) store(room string, since, upto int64, evs []storage.Event, max int, gen uint64) {
	lo := since
	if len(evs) >= max {
		lo = evs[0].Pos - 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	old := c.rooms[room]
	var next *cachedEvents
	switch {
	case old != nil && upto <= old.hi:
		return // nothing newer than what is held
	case old != nil && lo <= old.hi && lo >= old.lo:
		// Contiguous: keep the old entry's events up to lo, then these.
		keep := old.events
		for len(keep) > 0 && keep[len(keep)-1].Pos > lo {
			keep = keep[:len(keep)-1]
		}
		merged := make([]storage.Event, 0, len(keep)+len(evs))
		merged = append(append(merged, keep...), evs...)
		next = &cachedEvents{lo: old.lo, hi: upto, events: merged}
	default:
		next = &cachedEvents{lo: lo, hi: upto, events: append([]storage.Event(nil), evs...)}
	}
	if n := len(next.events); n > timelineCachePerRoom {
		next.lo = next.events[n-timelineCachePerRoom-1].Pos
		next.events = append([]storage.Event(nil), next.events[n-timelineCachePerRoom:]...)
	}
	if old != nil {
		c.total -= len(old.events)
	}
	if c.total+len(next.events) > timelineCacheEvents {
		c.rooms, c.total = map[string]*cachedEvents{}, 0
	}
	c.rooms[room] = next
	c.total += len(next.events)
}

// drop forgets a room's events: one of them was redacted.
func (c *timelineCache) drop(room string) {
	c.mu.Lock()
	c.gen++
	if old := c.rooms[room]; old != nil {
		c.total -= len(old.events)
		delete(c.rooms, room)
	}
	c.mu.Unlock()
}

// readTimelines reads the events of bounds (RoomTimelines). The common
// wake-up (one incremental room, the cache one commit behind) goes through
// one shared read per range: all the members a commit woke miss the cache
// at once, and on a loaded machine many of them used to query the same
// events before the first had stored them (measured: a fifth of the
// server's CPU in a 1,000-member fan-out). The events returned are shared
// and read-only. gen is the cache generation the caller read first: it is
// part of the key, so a sync that began after a redaction's drop never
// takes (and then stores) the answer of a read that began before it.
func (s *Syncer) readTimelines(ctx context.Context, bounds []storage.RoomBound, limit int, gen uint64) ([]storage.Event, error) {
	if len(bounds) != 1 || bounds[0].Since <= 0 {
		return s.store.RoomTimelines(ctx, bounds, limit)
	}
	b := bounds[0]
	key := make([]byte, 0, len(b.RoomID)+48)
	key = append(key, b.RoomID...)
	key = strconv.AppendInt(append(key, '|'), b.Since, 10)
	key = strconv.AppendInt(append(key, '|'), b.Upto, 10)
	key = strconv.AppendInt(append(key, '|'), int64(limit), 10)
	key = strconv.AppendUint(append(key, '|'), gen, 10)
	// The read is shared: one member's hang-up must not fail the others.
	rctx := context.WithoutCancel(ctx)
	v, err, _ := s.n.timelines.flight.Do(string(key), func() (any, error) {
		return s.store.RoomTimelines(rctx, bounds, limit)
	})
	if err != nil {
		return nil, err
	}
	return v.([]storage.Event), nil
}
