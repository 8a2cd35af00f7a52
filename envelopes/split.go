package envelopes

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"sync"
)

// Kinds of envelope.
const (
	KindRandom = "random"
	KindEqual  = "equal"
)

// Share is the amount the next claim takes from an envelope holding
// remaining minor units for count more claims (count >= 1, remaining >=
// count). The last claim takes the exact remainder.
//
// Random envelopes use the double-average method: the share is drawn
// uniformly from [1, 2 × remaining / count] (integer division), so its mean
// is about remaining / count, the fair share, whatever the order of
// claims. The upper bound is further capped at remaining − (count − 1), so
// every later claim still gets at least one unit; the cap bites only when
// remaining is close to count. Equal envelopes give remaining / count to
// every claim but the last, which takes what is left (at most count − 1
// units more). Both keep the sum exact: the shares of an envelope always add
// up to its total. envelopes_test.go checks mean, bounds and sums.
func Share(r *Rand, kind string, remaining int64, count int) int64 {
	if count <= 1 {
		return remaining
	}
	c := int64(count)
	if kind == KindEqual {
		return remaining / c
	}
	hi := 2 * remaining / c
	if limit := remaining - (c - 1); hi > limit {
		hi = limit
	}
	if hi <= 1 {
		return 1
	}
	return 1 + r.Int64N(hi)
}

// Rand is the split's randomness. By default it is ChaCha8 (a
// cryptographically secure generator) seeded from crypto/rand, so nobody
// can predict shares from earlier ones; tests seed it to replay a split.
// Safe for concurrent use.
type Rand struct {
	mu sync.Mutex
	r  *rand.Rand // guarded by mu
}

// NewRand returns a generator: seeded with seed, or from crypto/rand when
// seed is 0.
func NewRand(seed uint64) *Rand {
	var s [32]byte
	if seed == 0 {
		_, _ = crand.Read(s[:]) // never fails on supported platforms (Go 1.24+ crashes instead)
	} else {
		binary.LittleEndian.PutUint64(s[:], seed)
	}
	return &Rand{r: rand.New(rand.NewChaCha8(s))}
}

// Int64N returns a uniform number in [0, n).
func (r *Rand) Int64N(n int64) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.r.Int64N(n)
}
