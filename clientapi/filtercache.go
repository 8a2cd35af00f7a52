package clientapi

import (
	"sync"

	"github.com/parley-im/parley/inbox"
)

// filterCache keeps parsed sync filters. Every long-poll names its filter
// (a stored filter's ID, as Element does, or inline JSON), so without it a
// message in a big room made each woken member read the filter from the
// database and decode it again. A stored filter never changes (the spec
// has no way to edit one; uploading makes a new ID), and a parsed
// *inbox.Filter is read-only, so entries need no invalidation.
// The zero value is ready to use.
type filterCache struct {
	mu      sync.Mutex
	entries map[filterKey]*inbox.Filter // guarded by mu
}

// filterKey is (user, stored filter ID), or ("", inline JSON).
type filterKey struct{ user, filter string }

// Bounds: entries kept, and the longest inline filter kept: a larger one is
// parsed each time, so a client sending big distinct filters cannot fill
// memory. Past the entry bound one arbitrary entry makes room; emptying the
// whole cache instead made every member of a 10,000-member room read its
// filter from the database again at once, a tenth of the server's CPU in
// that fan-out.
const (
	filterCacheEntries   = 100_000
	filterCacheInlineMax = 4096
)

func (c *filterCache) get(k filterKey) *inbox.Filter {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[k]
}

func (c *filterCache) put(k filterKey, f *inbox.Filter) {
	if k.user == "" && len(k.filter) > filterCacheInlineMax {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[filterKey]*inbox.Filter{}
	}
	if _, ok := c.entries[k]; !ok && len(c.entries) >= filterCacheEntries {
		for old := range c.entries {
			delete(c.entries, old)
			break
		}
	}
	c.entries[k] = f
}
