package rooms

import (
	"sync/atomic"

	"github.com/parley-im/parley/rooms/pdu"
)

// roomCache is the writer's cache of rooms' current state, bounded by an
// estimate of the memory it holds. Without a bound, every room the writer
// ever touched stayed in memory for good: a few rooms with giant state took
// hundreds of megabytes. Rooms are dropped least recently used first, and
// only between batches (evictIdle), so a room a batch is writing never leaves
// mid-batch: its next load from the store would miss the batch's uncommitted
// events.
//
// The cache is owned by the writer goroutine; only the counters in stats are
// read elsewhere.
type roomCache struct {
	// Static after newRoomCache.
	max int64 // bytes; the estimate of held memory is kept at or below it between batches

	// Owned by the writer goroutine.
	rooms      map[string]*roomState
	head, tail *roomState // most and least recently used
	bytes      int64

	stats cacheStats
}

// cacheStats are the cache's figures for metrics, written by the writer and
// read by anyone.
type cacheStats struct {
	rooms, bytes, evictions, loads atomic.Int64
}

func newRoomCache(maxBytes int64) *roomCache {
	return &roomCache{max: maxBytes, rooms: map[string]*roomState{}}
}

// get returns a cached room and marks it most recently used.
func (c *roomCache) get(roomID string) *roomState {
	rs := c.rooms[roomID]
	if rs != nil && rs != c.head {
		c.unlink(rs)
		c.pushFront(rs)
	}
	return rs
}

// put adds a room (loaded from the store or just created) as most recently used.
func (c *roomCache) put(rs *roomState) {
	c.rooms[rs.id] = rs
	c.pushFront(rs)
	c.bytes += rs.bytes
	c.stats.loads.Add(1)
	c.publish()
}

// remove drops a room, as when the batch that created it rolls back.
func (c *roomCache) remove(roomID string) {
	rs := c.rooms[roomID]
	if rs == nil {
		return
	}
	delete(c.rooms, roomID)
	c.unlink(rs)
	c.bytes -= rs.bytes
	c.publish()
}

// stateChanged accounts for one state entry of rs going from prev to next
// (either may be nil), in the room's own counters (which the state limits
// read) and in the cache's total.
func (c *roomCache) stateChanged(rs *roomState, prev, next *pdu.Event) {
	var delta int64
	if prev != nil {
		delta -= entryBytes(prev)
		if prev.Type != "m.room.member" {
			rs.otherCount--
			rs.otherBytes -= int64(len(prev.Raw))
		}
	}
	if next != nil {
		delta += entryBytes(next)
		if next.Type != "m.room.member" {
			rs.otherCount++
			rs.otherBytes += int64(len(next.Raw))
		}
	}
	rs.bytes += delta
	if c.rooms[rs.id] == rs {
		c.bytes += delta
	}
}

// evictIdle drops least recently used rooms until the estimate fits the
// bound. Call it only between batches.
func (c *roomCache) evictIdle() {
	for c.bytes > c.max && c.tail != nil {
		rs := c.tail
		delete(c.rooms, rs.id)
		c.unlink(rs)
		c.bytes -= rs.bytes
		c.stats.evictions.Add(1)
	}
	c.publish()
}

func (c *roomCache) publish() {
	c.stats.rooms.Store(int64(len(c.rooms)))
	c.stats.bytes.Store(c.bytes)
}

func (c *roomCache) pushFront(rs *roomState) {
	rs.prev, rs.next = nil, c.head
	if c.head != nil {
		c.head.prev = rs
	}
	c.head = rs
	if c.tail == nil {
		c.tail = rs
	}
}

func (c *roomCache) unlink(rs *roomState) {
	if rs.prev != nil {
		rs.prev.next = rs.next
	} else if c.head == rs {
		c.head = rs.next
	}
	if rs.next != nil {
		rs.next.prev = rs.prev
	} else if c.tail == rs {
		c.tail = rs.prev
	}
	rs.prev, rs.next = nil, nil
}

// roomOverhead and entryOverhead approximate the memory a cached room and
// each state entry hold beyond their events' bytes: the structs, map
// buckets and slice headers. They were sized so that the estimate tracks the
// heap growth of a room with many state events (BenchmarkRoomCacheMemory).
const (
	roomOverhead  = 512
	entryOverhead = 400
)

// entryBytes estimates the memory one cached state event holds: its
// canonical JSON, its content and strings (parsed copies), and overhead.
func entryBytes(ev *pdu.Event) int64 {
	n := len(ev.Raw) + len(ev.Content) + len(ev.ID) + len(ev.Type) + len(ev.Sender) + 64*(len(ev.AuthEvents)+len(ev.PrevEvents))
	if ev.StateKey != nil {
		n += len(*ev.StateKey)
	}
	return int64(n + entryOverhead)
}

// CacheStats describes the writer's room cache.
type CacheStats struct {
	Rooms     int64 // rooms cached
	Bytes     int64 // estimated memory they hold
	MaxBytes  int64 // the bound Bytes is kept under between batches
	Evictions int64 // rooms dropped to stay under the bound, since start
	Loads     int64 // rooms loaded from the store or created, since start
}

// CacheStats reports the room cache's size and evictions, for metrics. Safe
// to call from any goroutine. Rooms and Bytes are published after each
// commit's evictions, so they may lag the latest write by one commit.
func (s *Service) CacheStats() CacheStats {
	st := &s.cache.stats
	return CacheStats{Rooms: st.rooms.Load(), Bytes: st.bytes.Load(), MaxBytes: s.cache.max,
		Evictions: st.evictions.Load(), Loads: st.loads.Load()}
}

// QueueDepth is the number of writes waiting for the writer. Safe to call
// from any goroutine.
func (s *Service) QueueDepth() int { return s.queue.len() }

func evOf(e *stateEntry) *pdu.Event {
	if e == nil {
		return nil
	}
	return e.ev
}
