package inbound

import (
	"sync"
	"time"
)

// txnCache remembers the answers to recent transactions, keyed by origin
// and transaction ID, so a retried transaction gets the first answer and
// is not processed again. It is in memory and also holds the transactions
// in flight, so a concurrent retry waits for the first copy's answer; the
// Config.TxnLog, when set, keeps answers across restarts. Without one, a
// transaction retried after a restart is processed again, which is
// harmless for PDUs (each is then already held) and repeats its EDUs.
type txnCache struct {
	max int
	ttl time.Duration

	mu      sync.Mutex
	entries map[txnKey]*txnEntry // guarded by mu
	// order is the keys in insertion order, oldest first, from head on;
	// a key may appear twice when its entry was replaced. Guarded by mu.
	order []txnKey
	head  int
}

type txnKey struct{ origin, txnID string }

// txnEntry is one transaction's answer: body, or err when the
// transaction was refused before any work. They are written once, before
// done is closed, and only read after.
type txnEntry struct {
	done chan struct{}
	body []byte
	err  error
	at   time.Time
}

func newTxnCache(max int, ttl time.Duration) *txnCache {
	return &txnCache{max: max, ttl: ttl, entries: map[txnKey]*txnEntry{}}
}

// start returns the entry of (origin, txnID) and whether the caller is the
// first to ask, and so must process it and then call finish or abandon.
func (c *txnCache) start(origin, txnID string, now time.Time) (*txnEntry, bool) {
	k := txnKey{origin, txnID}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		select {
		case <-e.done:
			if now.Sub(e.at) <= c.ttl {
				return e, false
			}
		default:
			return e, false // in flight: wait for its answer
		}
	}
	e := &txnEntry{done: make(chan struct{}), at: now}
	c.entries[k] = e
	c.order = append(c.order, k)
	c.evictLocked(now)
	return e, true
}

// finish records e's answer and wakes those waiting on it.
func (c *txnCache) finish(e *txnEntry, body []byte, now time.Time) {
	c.mu.Lock()
	e.body, e.at = body, now
	c.mu.Unlock()
	close(e.done)
}

// abandon forgets a transaction that was refused before any work (a
// limit, a bad body), so that it can be sent again; those waiting on it
// get the same refusal.
func (c *txnCache) abandon(origin, txnID string, e *txnEntry, err error) {
	c.mu.Lock()
	if c.entries[txnKey{origin, txnID}] == e {
		delete(c.entries, txnKey{origin, txnID})
	}
	e.err = err
	c.mu.Unlock()
	close(e.done)
}

// evictLocked drops the oldest entries beyond max or past the TTL. An
// entry still in flight past the TTL is kept (they are few: one per
// origin); over the size bound it is forgotten, and its finish still
// wakes its waiters.
func (c *txnCache) evictLocked(now time.Time) {
	defer func() {
		if c.head > len(c.order)/2 {
			c.order = append(c.order[:0], c.order[c.head:]...)
			c.head = 0
		}
	}()
	for c.head < len(c.order) {
		k := c.order[c.head]
		e, ok := c.entries[k]
		over := len(c.entries) > c.max
		if ok && !over {
			select {
			case <-e.done:
				if now.Sub(e.at) <= c.ttl {
					return
				}
			default:
				return
			}
		}
		if ok && (over || now.Sub(e.at) > c.ttl) {
			delete(c.entries, k)
		}
		c.order[c.head] = txnKey{}
		c.head++
	}
}
