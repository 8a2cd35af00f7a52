// Package ratelimit owns Parley's request rate limits: token buckets keyed by a
// string (a user ID or a client address), which the HTTP layer consults before
// doing work and turns into 429 M_LIMIT_EXCEEDED with retry_after_ms.
//
// The package keeps no clock and starts no goroutines: callers pass the time
// in, which keeps tests exact, and call Sweep on their own schedule.
package ratelimit

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// shardCount spreads keys over independent locks so that concurrent requests
// for different users rarely wait on each other. A power of two, so a shard is
// picked with a mask.
const shardCount = 64

// Limiter is a set of token buckets, one per key, all with the same rate and
// capacity. It is safe for concurrent use. A nil *Limiter allows everything,
// so a disabled limit can simply be left nil.
//
// Each bucket is stored as the instant it will be full again rather than as a
// token count and a timestamp (the GCRA form of a token bucket): one value per
// key, no floating-point drift, and "idle" is simply "full again by now".
type Limiter struct {
	unlimited bool
	// interval is the time one token takes to come back (1/rate).
	interval time.Duration
	// window is how far ahead of now a bucket's full-again time may be while
	// still holding a token: burst*interval, or the time an empty bucket takes
	// to refill completely.
	window time.Duration
	seed   maphash.Seed
	shards [shardCount]shard
}

type shard struct {
	mu sync.Mutex
	// full maps a key to the instant its bucket is full again. A key that is
	// absent has a full bucket.
	full map[string]time.Time
	// Pad to a cache line so that neighbouring shards' locks do not contend
	// through false sharing.
	_ [64 - 16]byte
}

// New returns a Limiter whose buckets hold burst tokens and regain perSecond
// tokens a second. perSecond <= 0 (or NaN) means unlimited: Allow always
// succeeds and keeps no state; so does a rate too fast to measure in
// nanoseconds. A burst below 1 means 1, since a bucket that can hold no token
// would refuse everything. Rates slower than one token a year count as one a
// year, which keeps the time arithmetic far from overflow.
func New(perSecond float64, burst int) *Limiter {
	if !(perSecond > 0) {
		return &Limiter{unlimited: true}
	}
	interval := maxInterval
	if ns := float64(time.Second) / perSecond; ns < float64(maxInterval) {
		interval = time.Duration(ns)
	}
	if interval <= 0 {
		return &Limiter{unlimited: true}
	}
	burst = max(burst, 1)
	window := maxWindow
	if int64(burst) <= int64(maxWindow/interval) {
		window = interval * time.Duration(burst)
	}
	l := &Limiter{interval: interval, window: window, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].full = make(map[string]time.Time)
	}
	return l
}

// Bounds that keep full-again times within a century of now.
const (
	maxInterval = 365 * 24 * time.Hour
	maxWindow   = 100 * maxInterval
)

// Allow takes one token for key at time now. When none is left it returns
// ok=false and how long until one is, which is always positive; a refused call
// takes nothing, so retrying early does not push the wait further out.
//
// For a key that already has a bucket, Allow does not allocate.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil || l.unlimited {
		return true, 0
	}
	s := &l.shards[maphash.String(l.seed, key)&(shardCount-1)]
	s.mu.Lock()
	defer s.mu.Unlock()

	full, known := s.full[key]
	if !known || full.Before(now) {
		full = now
	}
	next := full.Add(l.interval)
	if ahead := next.Sub(now); ahead > l.window {
		return false, ahead - l.window
	}
	if !known {
		// Clone so the map does not pin whatever larger buffer (a request
		// line, a JSON body) the caller's key was sliced from.
		key = strings.Clone(key)
	}
	s.full[key] = next
	return true, 0
}

// Sweep drops the buckets that are full again at now: they carry no
// information, since a missing bucket is a full one. Run it periodically so
// memory tracks recently active keys rather than every key ever seen. It
// returns how many buckets it dropped.
func (l *Limiter) Sweep(now time.Time) int {
	if l == nil || l.unlimited {
		return 0
	}
	dropped := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for key, full := range s.full {
			if !full.After(now) {
				delete(s.full, key)
				dropped++
			}
		}
		s.mu.Unlock()
	}
	return dropped
}

// Len reports how many buckets are held (keys seen and not yet swept), for
// metrics and tests.
func (l *Limiter) Len() int {
	if l == nil || l.unlimited {
		return 0
	}
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.full)
		s.mu.Unlock()
	}
	return n
}

// Refund gives back one token taken from key by Allow, for limits that count
// only failures: take a token before the costly check, so concurrent
// attempts cannot all slip past an empty bucket, and refund it when the
// attempt succeeds. A bucket is never filled beyond full.
func (l *Limiter) Refund(key string, now time.Time) {
	if l == nil || l.unlimited {
		return
	}
	s := &l.shards[maphash.String(l.seed, key)&(shardCount-1)]
	s.mu.Lock()
	defer s.mu.Unlock()
	full, known := s.full[key]
	if !known {
		return
	}
	if full = full.Add(-l.interval); full.After(now) {
		s.full[key] = full
	} else {
		delete(s.full, key) // full again: a missing bucket is a full one
	}
}
