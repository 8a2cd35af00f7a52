package inbox

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// deltaCache shares one rendered room delta among the members woken by one
// commit. In a room of 10,000 long-polling members, a message made each of
// them find the room's new events, look up the sender's member event, filter
// and render the same JSON: now the first member renders the room's
// timeline and state once, and the others copy the bytes.
//
// A delta is what an incremental sync shows of one joined room when the
// timeline is not limited: the "timeline" and "state" objects. Everything
// that differs between members stays outside it and is built per member
// (account data, typing, receipts, unread counts, summary), and so does the
// "age" of each event, written into the holes the delta keeps for it. A
// delta is rendered for no viewer, so it carries no transaction_id: the
// device that sent one of its events renders its own copy (owners).
//
// Its key is everything the delta depends on: the room, the token's
// position, the room's latest position the sync saw (events in between
// are the same for everyone), the filter's room part and the timeline
// limit. A later event moves the room's position and so the key; what can
// change a stored event in place is a redaction, so the notifier drops the
// room's deltas when one commits (and, to be safe, when a member event
// does: lazy-loaded member events are part of the state). A sync that read
// before such a drop must not store what it read, so syncs note gen first
// and put only if no drop happened since.
type deltaCache struct {
	mu    sync.RWMutex
	gen   uint64                  // guarded by mu; bumped by every drop
	rooms map[string][]*roomDelta // guarded by mu; newest last; entries are immutable
	bytes int                     // guarded by mu; rendered bytes held in all rooms

	hits, misses atomic.Uint64 // deltas copied, deltas rendered and kept
}

// deltaKey identifies a delta; see deltaCache.
type deltaKey struct {
	room    string
	since   int64
	roomPos int64
	limit   int
	filter  string // Filter.shareKey
}

// roomDelta is one room's rendered timeline and state objects for no
// viewer, with a hole per event where its age goes.
type roomDelta struct {
	key            deltaKey
	buf            []byte      // `"timeline":{...},"state":{...}`, each event's age a placeholder "0"
	holes          []deltaHole // in buf order
	owners         []rooms.Viewer
	membersChanged bool // the timeline carries a member event: the summary goes out
}

// deltaHole is the offset in buf of one age placeholder, and the event's
// origin_server_ts to compute it from.
type deltaHole struct {
	off int
	ts  int64
}

// Bounds: deltas kept per room (members woken by one commit mostly share a
// token, a few lag one commit behind), and bytes kept in all. Past the total
// the map starts afresh, which costs one render per busy room.
const (
	deltasPerRoom = 4
	deltaBytes    = 16 << 20
)

func newDeltaCache() *deltaCache {
	return &deltaCache{rooms: map[string][]*roomDelta{}}
}

// generation returns the drop counter to pass to put.
func (c *deltaCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// get returns the delta stored under k, or nil.
func (c *deltaCache) get(k deltaKey) *roomDelta {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, d := range c.rooms[k.room] {
		if d.key == k {
			return d
		}
	}
	return nil
}

// put keeps d unless a drop happened since gen was read.
func (c *deltaCache) put(d *roomDelta, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	list := c.rooms[d.key.room]
	for _, old := range list {
		if old.key == d.key {
			return // another member rendered it first
		}
	}
	if len(list) >= deltasPerRoom {
		c.bytes -= len(list[0].buf)
		list = append(list[:0:0], list[1:]...)
	}
	if c.bytes+len(d.buf) > deltaBytes {
		c.rooms, c.bytes, list = map[string][]*roomDelta{}, 0, nil
	}
	c.rooms[d.key.room] = append(list, d)
	c.bytes += len(d.buf)
}

// drop forgets a room's deltas: an event in it changed, or its members did.
func (c *deltaCache) drop(room string) {
	c.mu.Lock()
	c.gen++
	for _, d := range c.rooms[room] {
		c.bytes -= len(d.buf)
	}
	delete(c.rooms, room)
	c.mu.Unlock()
}

// DeltaStats reports how many woken members' room deltas were copied from
// the shared cache (hits) and how many were rendered and kept (misses).
func (n *Notifier) DeltaStats() (hits, misses uint64) {
	return n.deltas.hits.Load(), n.deltas.misses.Load()
}

// ownedBy reports whether v must not use d: one of its events carries v's
// transaction_id.
func (d *roomDelta) ownedBy(v rooms.Viewer) bool {
	for _, o := range d.owners {
		if o == v {
			return true
		}
	}
	return false
}

// appendTo writes d for a member at time now (ms): the shared bytes, each
// age filled in.
func (d *roomDelta) appendTo(dst []byte, now int64) []byte {
	last := 0
	for _, h := range d.holes {
		dst = append(dst, d.buf[last:h.off]...)
		dst = strconv.AppendInt(dst, max(now-h.ts, 0), 10)
		last = h.off + 1
	}
	return append(dst, d.buf[last:]...)
}

// agePrefix is what rooms.AppendClientEvent writes right before an event's
// age.
const agePrefix = `,"unsigned":{"age":`

// findDeltas gives each joined room of an incremental sync the delta
// another member already rendered for it, or marks it as one to render
// and share (Syncer.shareRoom). The sender's own device renders its copy.
func (s *Syncer) findDeltas(req Request, rms map[string]*roomResp, limit int) {
	if req.Since == nil || req.FullState || req.Filter.shareKey == "" {
		return
	}
	c := s.n.deltas
	var gen uint64
	genRead := false
	v := rooms.Viewer{UserID: req.UserID, DeviceID: req.DeviceID}
	for id, r := range rms {
		if r.section != "join" || r.newlyJoin || r.fullState || r.since <= 0 || r.roomPos <= r.since {
			continue
		}
		if !genRead { // before any of this sync's reads (fillRooms)
			gen, genRead = c.generation(), true
		}
		k := deltaKey{room: id, since: r.since, roomPos: r.roomPos, limit: limit, filter: req.Filter.shareKey}
		if d := c.get(k); d != nil {
			if !d.ownedBy(v) {
				r.delta = d
				c.hits.Add(1)
			}
			continue
		}
		r.shareable, r.shareKey, r.deltaGen = true, k, gen
	}
}

// allShared returns the rooms of rms when every one of them comes as a
// shared delta (the common wake-up: one message in one room).
func allShared(rms map[string]*roomResp) ([]string, bool) {
	if len(rms) == 0 {
		return nil, false
	}
	ids := make([]string, 0, len(rms))
	for id, r := range rms {
		if r.delta == nil {
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}

// shareRoom renders r's timeline and state for no viewer and keeps the
// delta for the members that follow. It returns nil when r cannot be
// shared: a limited timeline (its gap state and relation bundles are
// built for this request) or an event of unexpected shape.
func (s *Syncer) shareRoom(r *roomResp) *roomDelta {
	if !r.shareable || r.limited {
		return nil
	}
	d := &roomDelta{key: r.shareKey, membersChanged: membersChanged(r)}
	w := &jsonWriter{buf: make([]byte, 0, 512)}
	if !writeRoomHead(w, r, 0, rooms.Viewer{}, d) {
		return nil
	}
	d.buf = w.buf
	s.n.deltas.put(d, r.deltaGen)
	s.n.deltas.misses.Add(1)
	return d
}

// appendEvents renders evs for no viewer into w, each age a hole of d. It
// reports false when an event's rendering does not have the expected shape
// (rooms.AppendClientEvent changed): the delta is then not shared.
func (d *roomDelta) appendEvents(w *jsonWriter, evs []storage.Event) bool {
	w.buf = append(w.buf, '[')
	for i := range evs {
		e := &evs[i]
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		start := len(w.buf)
		// Rendered as at its own origin time, the age is "0": one byte to
		// replace per member.
		w.buf = rooms.AppendClientEvent(w.buf, e, e.OriginTS, rooms.Viewer{})
		if len(e.Client) < 2 {
			continue // rendered as {}: no age
		}
		off := start + len(e.Client) - 1 + len(agePrefix)
		if off+1 >= len(w.buf) || string(w.buf[off-len(agePrefix):off]) != agePrefix || w.buf[off] != '0' ||
			(w.buf[off+1] != ',' && w.buf[off+1] != '}') {
			return false
		}
		d.holes = append(d.holes, deltaHole{off: off, ts: e.OriginTS})
		if e.TxnID != "" {
			d.owners = append(d.owners, rooms.Viewer{UserID: e.Sender, DeviceID: e.TxnDevice})
		}
	}
	w.buf = append(w.buf, ']')
	return true
}
