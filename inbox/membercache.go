package inbox

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/parley-im/parley/storage"
)

// memberCache keeps the current m.room.member events that lazy-loading
// sends along with a timeline's senders. Every member of a big room is
// lazy-loaded (rooms/tiers.go), so without it one message made each woken
// member read the sender's member event again.
//
// The notifier voids a room's entry when a member event or a redaction
// commits there. A read that raced with such a commit may have seen the
// new event before the notifier heard of it, so reads note the room's
// generation first and store only if it did not move.
//
// Misses of the same events at the same generation share one read
// (flight): a new sender in a 10,000-member room wakes every member at
// once, and each of them used to miss the sender's event together and send
// the same query.
type memberCache struct {
	mu     sync.Mutex
	seq    uint64                    // guarded by mu; source of generations
	epoch  uint64                    // guarded by mu; bumped when rooms is emptied, which loses generations
	rooms  map[string]*cachedMembers // guarded by mu
	held   int                       // guarded by mu; events held in all rooms
	flight singleflight.Group        // one store read per (pairs, generations) at a time
}

type cachedMembers struct {
	gen uint64
	evs map[string]storage.Event // user -> current member event; shared read-only
}

// memberCacheEvents bounds the events held; past it the cache starts afresh.
const memberCacheEvents = 100_000

func newMemberCache() *memberCache {
	return &memberCache{rooms: map[string]*cachedMembers{}}
}

// void forgets a room's member events: one of them changed.
func (c *memberCache) void(room string) {
	c.mu.Lock()
	c.seq++
	if r := c.rooms[room]; r != nil {
		c.held -= len(r.evs)
		r.evs = nil
		r.gen = c.seq
	} else {
		c.rooms[room] = &cachedMembers{gen: c.seq}
	}
	c.mu.Unlock()
}

// memberEvents is storage.MemberEvents through the cache.
func (s *Syncer) memberEvents(ctx context.Context, pairs []storage.RoomUser) ([]storage.Event, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	c := s.n.members
	var out []storage.Event
	var missing []storage.RoomUser
	var gens map[string]uint64 // room -> generation before the read, for the rooms read
	c.mu.Lock()
	epoch := c.epoch
	for _, p := range pairs {
		var gen uint64
		if r := c.rooms[p.RoomID]; r != nil {
			if e, ok := r.evs[p.UserID]; ok {
				out = append(out, e)
				continue
			}
			gen = r.gen
		}
		if gens == nil {
			gens = map[string]uint64{}
		}
		gens[p.RoomID] = gen
		missing = append(missing, p)
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		sortByPos(out)
		return out, nil
	}
	read, err := c.read(ctx, s.store, missing, gens, epoch)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	for _, e := range read {
		if c.epoch != epoch {
			break
		}
		var gen uint64
		r := c.rooms[e.RoomID]
		if r != nil {
			gen = r.gen
		}
		if want, asked := gens[e.RoomID]; !asked || want != gen {
			continue // a member event or redaction committed meanwhile
		}
		if c.held >= memberCacheEvents {
			c.rooms, c.held = map[string]*cachedMembers{}, 0
			c.epoch++
			break
		}
		if r == nil {
			r = &cachedMembers{}
			c.rooms[e.RoomID] = r
		}
		if r.evs == nil {
			r.evs = map[string]storage.Event{}
		}
		if _, had := r.evs[e.StateKeyOr()]; !had {
			c.held++
		}
		r.evs[e.StateKeyOr()] = e
	}
	c.mu.Unlock()
	if len(out) == 0 {
		return read, nil
	}
	out = append(out, read...)
	sortByPos(out)
	return out, nil
}

// read is store.MemberEvents(missing) shared with every other sync that
// misses the same pairs at the same generations: its key holds them, so a
// sync that began after a member change never takes the answer of a read
// that began before it. The events are shared and read-only.
func (c *memberCache) read(ctx context.Context, store SyncStore, missing []storage.RoomUser, gens map[string]uint64, epoch uint64) ([]storage.Event, error) {
	key := strconv.AppendUint(make([]byte, 0, 64*len(missing)), epoch, 10)
	for _, p := range missing {
		key = append(append(key, '|'), p.RoomID...)
		key = strconv.AppendUint(append(key, '|'), gens[p.RoomID], 10)
		key = append(append(key, '|'), p.UserID...)
	}
	// The read is shared: one member's hang-up must not fail the others.
	rctx := context.WithoutCancel(ctx)
	v, err, _ := c.flight.Do(string(key), func() (any, error) {
		return store.MemberEvents(rctx, missing)
	})
	if err != nil {
		return nil, err
	}
	return v.([]storage.Event), nil
}

func sortByPos(evs []storage.Event) {
	if len(evs) > 1 {
		slices.SortFunc(evs, func(a, b storage.Event) int { return cmp.Compare(a.Pos, b.Pos) })
	}
}
