package todevice

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/parley-im/parley/graph"
)

// blockCache keeps, for each target user, the list of users they blocked,
// so a room-key share to hundreds of users asks the graph once per user per
// ttl instead of once per request. Blocks made through this server drop the
// blocker's entry at once (Service.ForgetBlocks), so the ttl only bounds how
// long a change made behind the server's back (an operator editing Neo4j)
// takes to show.
type blockCache struct {
	// Static after newBlockCache.
	src Blocks
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[string]blockEntry // target -> whom they blocked; guarded by mu
	gen     uint64                // bumped by forget; guarded by mu
}

type blockEntry struct {
	blocked []string
	expires time.Time
}

func newBlockCache(src Blocks, ttl time.Duration, max int) *blockCache {
	return &blockCache{src: src, ttl: ttl, max: max, entries: map[string]blockEntry{}}
}

// blocks reports whether target blocked sender.
func (c *blockCache) blocks(ctx context.Context, target, sender string, now time.Time) (bool, error) {
	c.mu.Lock()
	e, ok := c.entries[target]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return slices.Contains(e.blocked, sender), nil
	}
	var all []string
	p := graph.Page{Limit: 1000}
	for {
		ids, next, err := c.src.Blocked(ctx, target, p)
		if err != nil {
			return false, err
		}
		all = append(all, ids...)
		if next == "" {
			break
		}
		p.From = next
	}
	c.mu.Lock()
	// A forget while we read may have dropped a newer truth: do not store
	// what we read, only answer with it.
	if c.gen == gen {
		if len(c.entries) >= c.max {
			clear(c.entries) // crude but bounded; a refill costs one query per user
		}
		c.entries[target] = blockEntry{blocked: all, expires: now.Add(c.ttl)}
	}
	c.mu.Unlock()
	return slices.Contains(all, sender), nil
}

func (c *blockCache) forget(userID string) {
	c.mu.Lock()
	delete(c.entries, userID)
	c.gen++
	c.mu.Unlock()
}
