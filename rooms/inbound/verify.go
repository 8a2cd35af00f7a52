package inbound

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/parley-im/parley/rooms/pdu"
)

// VerifySignatures runs check 2 alone on a parsed event: every server that
// must sign ev has a valid ed25519 signature under a key keys knows. It is
// for events that arrive outside a transaction, such as the state and auth
// chain of a send_join answer, which are checked before their room exists
// here. The errors are those of Check (ErrDropped, ErrKeyUnavailable).
func VerifySignatures(ctx context.Context, keys Keys, version string, ev *pdu.Event) error {
	return (&Pipeline{keys: keys}).verifySignatures(ctx, version, ev)
}

// minParallel is the fewest events worth spreading over goroutines: below
// it the hand-off costs more than one ed25519 verification (about 80 µs).
const minParallel = 8

// VerifyAll runs VerifySignatures on each event, spread over the machine's
// cores, and returns one error (nil when valid) per event, in order. A
// send_join answer for a 10,000-member room holds over 10,000 events, each
// one verification: on one core that alone took seconds. keys must be safe
// for concurrent use (federation/keys.Keyring is).
func VerifyAll(ctx context.Context, keys Keys, version string, evs []*pdu.Event) []error {
	errs := make([]error, len(evs))
	p := &Pipeline{keys: keys}
	parallel(len(evs), func(i int) { errs[i] = p.verifySignatures(ctx, version, evs[i]) })
	return errs
}

// ParseAll parses each raw PDU for version, spread over the machine's
// cores, as pdu.Parse does one: events[i] and errs[i] are Parse's results
// for raws[i].
func ParseAll(raws [][]byte, version string) (events []*pdu.Event, errs []error) {
	events, errs = make([]*pdu.Event, len(raws)), make([]error, len(raws))
	parallel(len(raws), func(i int) { events[i], errs[i] = pdu.Parse(raws[i], version) })
	return events, errs
}

// parallel calls fn(i) for every i in [0, n), on up to GOMAXPROCS
// goroutines; each i is done exactly once. It returns when all are done.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n/minParallel)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	const chunk = 16 // events per hand-off, so the counter stays out of the way
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				j := int(next.Add(chunk)) - chunk
				if j >= n {
					return
				}
				for k := j; k < min(j+chunk, n); k++ {
					fn(k)
				}
			}
		})
	}
	wg.Wait()
}
