package storage

import "sync"

// otkCache keeps each device's one-time-key counts, which every /sync
// carries: a message in a 10,000-member room would otherwise cost 10,000
// count queries that all return what they returned last time. Every write
// that changes a device's keys (upload, claim, device deletion) drops the
// entry after it commits.
//
// A read that raced with such a write must not store what it read: it
// records the generation before querying and stores only if no
// invalidation happened since (gen is bumped by every drop).
type otkCache struct {
	mu  sync.RWMutex            // readers (every woken sync) share it; put and drop write
	gen uint64                  // guarded by mu
	m   map[otkKey]otkCountsRow // guarded by mu; nil until first use
}

type otkKey struct{ user, device string }

type otkCountsRow struct {
	counts    map[string]int // shared with callers, never modified
	fallbacks []string
}

// maxOTKCacheEntries bounds the cache; past it the map starts afresh (a
// cheap bound: one count query per device refills it).
const maxOTKCacheEntries = 200_000

func (c *otkCache) get(user, device string) (otkCountsRow, uint64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.m[otkKey{user, device}]
	return r, c.gen, ok
}

func (c *otkCache) put(user, device string, gen uint64, r otkCountsRow) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return // an invalidation ran while this was read
	}
	if c.m == nil || len(c.m) >= maxOTKCacheEntries {
		c.m = map[otkKey]otkCountsRow{}
	}
	c.m[otkKey{user, device}] = r
}

// drop forgets a device's counts; an empty device forgets all the user's.
func (c *otkCache) drop(user, device string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if device != "" {
		delete(c.m, otkKey{user, device})
		return
	}
	for k := range c.m {
		if k.user == user {
			delete(c.m, k)
		}
	}
}

func (s *Store) dropOTKCounts(user string, devices []string) {
	if len(devices) == 0 {
		s.otk.drop(user, "")
	}
	for _, d := range devices {
		s.otk.drop(user, d)
	}
}
