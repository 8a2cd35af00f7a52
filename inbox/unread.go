package inbox

import (
	"maps"
	"slices"
	"sync"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// unreadCache answers a woken member's unread counts from memory, so that a
// message in a room of 10,000 long-polling members is not 10,000 unread
// queries. It keeps, per room, the recent events that count for someone
// (notifying, @room, or mentioning a user), and per (user, room) the count
// storage.UnreadCounts gave at a known position. A woken member's count is
// then the cached count plus what the events since that position add.
//
// What the count depends on, and how each change reaches the cache:
//   - new events: the notifier feeds every committed event (noteEvent)
//     before publishing its position, so a sync's upto never runs ahead
//     of the room's list;
//   - the user's read receipt: a receipt commit forgets the (user, room)
//     entry (forget);
//   - redactions (the event stops notifying, its mentions go): the room's
//     generation moves, which voids every entry of the room (redacted).
//
// A count read from the database may already see a receipt or redaction
// whose commit the notifier has not heard yet. Such a read must not be
// kept: lookup hands out a ticket (the entry's version and the room's
// generation), and keep stores only if neither moved meanwhile. The
// invalidation that is still on its way then finds the entry and voids it.
type unreadCache struct {
	mu    sync.Mutex
	floor int64                    // guarded by mu; counting events at or below it may be missing from rooms
	seq   uint64                   // guarded by mu; source of entry versions and room generations
	epoch uint64                   // guarded by mu; bumped when users or rooms is cleared, which loses versions
	rooms map[string]*roomNotifs   // guarded by mu
	users map[userRoom]unreadEntry // guarded by mu
	held  int                      // guarded by mu; events held in all rooms
}

// roomNotifs are a room's recent counting events.
type roomNotifs struct {
	from int64 // every counting event of the room after from is in evs
	gen  uint64
	evs  []notifEvent // in position order
}

type notifEvent struct {
	pos         int64
	sender      string
	notify      bool
	roomMention bool
	mentions    []string // read-only, shared with the commit
	thread      string   // the thread root, "" for the main timeline
}

type userRoom struct{ user, room string }

// unreadEntry is a user's count in a room as of position at. An entry with
// ok false is a tombstone: it keeps the version an invalidation gave, so a
// read that started before the invalidation is not stored.
type unreadEntry struct {
	at      int64
	u       storage.RoomUnread // u.Threads is shared with syncs that read it: replaced, never changed
	ver     uint64
	roomGen uint64
	ok      bool
}

// unreadTicket is what a missed lookup gives to keep.
type unreadTicket struct {
	room    string
	ver     uint64
	roomGen uint64
	epoch   uint64
}

// Bounds: counting events kept per room and in all, and (user, room)
// entries. Past a bound the cache starts afresh from the current position,
// which costs each member one query to refill.
const (
	unreadPerRoom  = 256
	unreadEvents   = 200_000
	unreadEntries  = 200_000
	unreadMaxDelta = 128 // events a lookup walks before it asks the database instead
)

func newUnreadCache(floor int64) *unreadCache {
	return &unreadCache{floor: floor, rooms: map[string]*roomNotifs{}, users: map[userRoom]unreadEntry{}}
}

// counts reports whether ev counts for someone other than its sender.
func counts(ev *rooms.CommittedEvent) bool {
	return ev.Notify || ev.RoomMention || len(ev.Mentions) > 0
}

// noteEvent records a committed event. The notifier calls it in position
// order, before it publishes the position.
func (c *unreadCache) noteEvent(ev *rooms.CommittedEvent) {
	redaction := ev.Type == "m.room.redaction"
	if !redaction && !counts(ev) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rooms[ev.RoomID]
	if r == nil {
		r = &roomNotifs{from: c.floor}
		c.rooms[ev.RoomID] = r
	}
	if redaction {
		c.voidLocked(r) // the redacted event's counts changed under every entry of the room
	}
	if !counts(ev) {
		return
	}
	if c.held >= unreadEvents {
		// Start afresh: rooms created from here on hold everything after pos-1.
		c.floor = ev.Pos - 1
		c.rooms, c.held = map[string]*roomNotifs{}, 0
		c.epoch++ // room generations start again from 0: void every ticket out
		r = &roomNotifs{from: c.floor, gen: r.gen}
		c.rooms[ev.RoomID] = r
	}
	if len(r.evs) >= unreadPerRoom {
		drop := len(r.evs) / 2
		r.from = r.evs[drop-1].pos
		r.evs = append(r.evs[:0:0], r.evs[drop:]...)
		c.held -= drop
	}
	r.evs = append(r.evs, notifEvent{pos: ev.Pos, sender: ev.Sender, notify: ev.Notify,
		roomMention: ev.RoomMention, mentions: ev.Mentions, thread: ev.Thread})
	c.held++
}

// voidRoom voids every count in room.
func (c *unreadCache) voidRoom(room string) {
	c.mu.Lock()
	r := c.rooms[room]
	if r == nil {
		r = &roomNotifs{from: c.floor}
		c.rooms[room] = r
	}
	c.voidLocked(r)
	c.mu.Unlock()
}

func (c *unreadCache) voidLocked(r *roomNotifs) {
	c.seq++
	r.gen = c.seq
}

// forget voids user's count in room: their read receipt moved.
func (c *unreadCache) forget(user, room string) {
	c.mu.Lock()
	c.seq++
	c.users[userRoom{user, room}] = unreadEntry{ver: c.seq}
	c.mu.Unlock()
}

// lookup fills out with user's counts in the rooms of ids as of upto that it
// can answer from memory, and returns a ticket for each room it cannot.
func (c *unreadCache) lookup(user string, ids []string, upto int64, out map[string]storage.RoomUnread, missed []unreadTicket) []unreadTicket {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		k := userRoom{user, id}
		e, found := c.users[k]
		r := c.rooms[id]
		from, gen := c.floor, uint64(0)
		if r != nil {
			from, gen = r.from, r.gen
		}
		if found && e.ok && e.roomGen == gen && e.at >= from && e.at <= upto {
			u, ok := addSince(e.u, r, user, e.at, upto)
			if ok {
				out[id] = u
				e.at, e.u = upto, u
				c.users[k] = e
				continue
			}
		}
		var ver uint64
		if found {
			ver = e.ver
		}
		missed = append(missed, unreadTicket{room: id, ver: ver, roomGen: gen, epoch: c.epoch})
	}
	return missed
}

// addSince adds to u what r's events in (at, upto] count for user, each in
// its own thread: the same rule as storage.UnreadCountsByThread (every
// receipt voids the entry, so the walk needs no read positions). It gives
// up (false) past unreadMaxDelta events, so that a member back after a long
// while costs one query, not a long walk under the lock. u.Threads is
// copied before a change: earlier syncs may still read it.
func addSince(u storage.RoomUnread, r *roomNotifs, user string, at, upto int64) (storage.RoomUnread, bool) {
	if r == nil {
		return u, true
	}
	i := len(r.evs)
	for i > 0 && r.evs[i-1].pos > at {
		i--
	}
	if len(r.evs)-i > unreadMaxDelta {
		return u, false
	}
	copied := false
	for _, ev := range r.evs[i:] {
		if ev.pos > upto {
			break
		}
		if ev.sender == user {
			continue
		}
		mentioned := slices.Contains(ev.mentions, user)
		var n, h int64
		switch {
		case ev.notify || ev.roomMention:
			n = 1
			if ev.roomMention || mentioned {
				h = 1
			}
		case mentioned:
			n, h = 1, 1
		default:
			continue
		}
		if ev.thread == "" {
			u.Main.Notifications += n
			u.Main.Highlights += h
			continue
		}
		if !copied {
			threads := make(map[string]storage.Unread, len(u.Threads)+1)
			maps.Copy(threads, u.Threads)
			u.Threads, copied = threads, true
		}
		t := u.Threads[ev.thread]
		t.Notifications += n
		t.Highlights += h
		u.Threads[ev.thread] = t
	}
	return u, true
}

// keep stores counts read from the database as of upto, for the rooms whose
// tickets are still current.
func (c *unreadCache) keep(user string, tickets []unreadTicket, upto int64, got map[string]storage.RoomUnread) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range tickets {
		k := userRoom{user, t.room}
		e, found := c.users[k]
		var ver uint64
		if found {
			ver = e.ver
		}
		var gen uint64
		if r := c.rooms[t.room]; r != nil {
			gen = r.gen
		}
		if t.epoch != c.epoch || ver != t.ver || gen != t.roomGen {
			continue // a receipt or redaction came in between: the read may be ahead of upto
		}
		if found && e.ok && e.at > upto {
			continue // another device already keeps a newer count
		}
		if !found && len(c.users) >= unreadEntries {
			c.users = map[userRoom]unreadEntry{}
			c.epoch++
			return
		}
		c.users[k] = unreadEntry{at: upto, u: got[t.room], ver: ver, roomGen: gen, ok: true}
	}
}
