package envelopes

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-im/parley/storage"
)

// Grouped claims. Each envelope belongs to one shard (by a hash of its ID),
// and each shard has at most one owner goroutine. Claims queue on their
// shard; the owner takes everything waiting (up to maxBatch) and hands it
// to the store, which decides every claim in arrival order and writes the
// whole batch in one transaction. A claim is answered only after that
// commit, so nothing acknowledged is lost. While one batch commits, the
// next one queues up, so the batch grows with the load by itself: one
// claimer alone gets a batch of one and no added wait, a storm gets large
// batches and one commit (one fsync) per batch instead of per claim.
// docs/envelopes.md explains why every invariant still holds.

// Defaults of the grouping.
const (
	// DefaultClaimShards is how many owner goroutines may commit at once,
	// on different envelopes. PostgreSQL runs them side by side; SQLite's
	// one write connection takes them in turn.
	DefaultClaimShards = 4
	// maxBatch bounds one transaction: its parameters and the time a
	// batch holds its rows.
	maxBatch = 256
	// batchTimeout bounds one batch's transaction. The batch does not
	// use a claimer's context: one claimer hanging up must not undo the
	// others' claims.
	batchTimeout = 30 * time.Second
)

// batchStore is what grouping needs from storage.
type batchStore interface {
	ClaimEnvelopes(ctx context.Context, reqs []storage.ClaimRequest, check func(i int, e storage.RedEnvelope) error,
		pick func(e storage.RedEnvelope) int64, out []storage.ClaimResult) error
}

// errClosed tells a claimer that its envelope is known closed: it answers
// from the read pool instead (Service.closedClaim).
var errClosed = errors.New("envelopes: envelope closed")

// claimReq is one claim waiting for its shard's owner. The owner writes
// res and n, then closes done; the claimer reads them after done.
type claimReq struct {
	ctx                context.Context
	envelopeID, userID string
	res                storage.ClaimResult
	err                error  // the batch's failure; nil when it committed
	n                  notice // filled by check for a new claim
	done               chan struct{}
}

// shard is one owner's queue.
type shard struct {
	mu      sync.Mutex
	queue   []*claimReq // guarded by mu
	running bool        // guarded by mu: an owner goroutine is draining queue
}

// grouper groups claims into batches. Safe for concurrent use.
type grouper struct {
	store  batchStore
	rnd    *Rand
	now    func() time.Time
	seed   maphash.Seed
	shards []shard
	max    int // largest batch; 1 = one transaction a claim
	// batches and claims count committed batches and the claims they
	// decided, for the benchmarks' claims-per-commit figure.
	batches, claims atomic.Int64
	// closed remembers envelopes seen finished or expired, so claims
	// queued on an envelope that closed answer from the read pool
	// instead of taking part in a write transaction. Guarded by closedMu;
	// cleared when it grows past 100,000 (it is only a shortcut: the store
	// stays the truth).
	closedMu sync.Mutex
	closed   map[string]bool
}

func newGrouper(store batchStore, rnd *Rand, now func() time.Time, shards, max int) *grouper {
	if shards <= 0 {
		shards = DefaultClaimShards
	}
	if max <= 0 || max > maxBatch {
		max = maxBatch
	}
	return &grouper{store: store, rnd: rnd, now: now, seed: maphash.MakeSeed(), shards: make([]shard, shards), max: max,
		closed: map[string]bool{}}
}

func (g *grouper) markClosed(id string) {
	g.closedMu.Lock()
	if len(g.closed) >= 100_000 {
		clear(g.closed)
	}
	g.closed[id] = true
	g.closedMu.Unlock()
}

func (g *grouper) isClosed(id string) bool {
	g.closedMu.Lock()
	defer g.closedMu.Unlock()
	return g.closed[id]
}

// claim queues one claim and waits for its batch to commit. It returns
// the store's result for it (its amount, replay flag or refusal), its
// notice, or the batch's error; errClosed when the envelope is known to
// be closed. If ctx ends first the claim may still commit later; a retry
// then returns it.
func (g *grouper) claim(ctx context.Context, envelopeID, userID string) (storage.ClaimResult, notice, error) {
	if g.isClosed(envelopeID) {
		return storage.ClaimResult{}, notice{}, errClosed
	}
	r := &claimReq{ctx: ctx, envelopeID: envelopeID, userID: userID, done: make(chan struct{})}
	sh := &g.shards[maphash.String(g.seed, envelopeID)%uint64(len(g.shards))]
	sh.mu.Lock()
	sh.queue = append(sh.queue, r)
	if !sh.running {
		sh.running = true
		go g.own(sh)
	}
	sh.mu.Unlock()
	select {
	case <-r.done:
		return r.res, r.n, r.err
	case <-ctx.Done():
		return storage.ClaimResult{}, notice{}, ctx.Err()
	}
}

// own is a shard's owner: it commits batches until the queue is empty,
// then exits (the next claim starts a new owner), so no goroutine
// outlives the work.
func (g *grouper) own(sh *shard) {
	for {
		sh.mu.Lock()
		n := min(len(sh.queue), g.max)
		if n == 0 {
			sh.running = false
			sh.queue = nil
			sh.mu.Unlock()
			return
		}
		batch := make([]*claimReq, n)
		copy(batch, sh.queue)
		sh.queue = sh.queue[n:]
		sh.mu.Unlock()
		live := batch[:0]
		for _, r := range batch {
			switch {
			case r.ctx.Err() != nil: // the claimer left before its claim was written
				r.err = r.ctx.Err()
				close(r.done)
			case g.isClosed(r.envelopeID):
				r.err = errClosed
				close(r.done)
			default:
				live = append(live, r)
			}
		}
		if len(live) > 0 {
			g.commit(live)
		}
	}
}

// commit writes one batch and answers its claims. A batch that lost a
// conditional UPDATE (ErrRetry, nothing written) is decided again; one
// that fails otherwise is retried claim by claim, so a claim that poisons
// its batch fails alone.
func (g *grouper) commit(batch []*claimReq) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	reqs := make([]storage.ClaimRequest, len(batch))
	out := make([]storage.ClaimResult, len(batch))
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		nowMs := g.now().UnixMilli()
		for i, r := range batch {
			reqs[i] = storage.ClaimRequest{EnvelopeID: r.envelopeID, UserID: r.userID, TS: nowMs}
			r.n = notice{}
		}
		err = g.store.ClaimEnvelopes(ctx, reqs, func(i int, e storage.RedEnvelope) error {
			switch {
			case e.State == "refunded" || e.State == "open" && e.ExpiresTS <= nowMs:
				return fmt.Errorf("%w: this envelope expired", ErrExpired)
			case e.State != "open" || e.RemainingCount < 1:
				return fmt.Errorf("%w: every share of this envelope is claimed", ErrEmpty)
			}
			batch[i].n = notice{envelopeID: e.ID, roomID: e.RoomID, sender: e.Sender, claimant: batch[i].userID,
				seq: e.Count - e.RemainingCount + 1, count: e.Count}
			return nil
		}, func(e storage.RedEnvelope) int64 { return Share(g.rnd, e.Kind, e.Remaining, e.RemainingCount) }, out)
		if !errors.Is(err, storage.ErrRetry) {
			break
		}
	}
	if err != nil && len(batch) > 1 {
		for _, r := range batch {
			if r.ctx.Err() != nil {
				// The claimer left: do not spend a transaction (up to
				// batchTimeout against a sick database) on it.
				r.err = r.ctx.Err()
				close(r.done)
				continue
			}
			g.commit([]*claimReq{r})
		}
		return
	}
	if err == nil {
		g.batches.Add(1)
		g.claims.Add(int64(len(batch)))
	}
	for i, r := range batch {
		r.res, r.err = out[i], err
		if err == nil {
			switch res := out[i]; {
			case errors.Is(res.Err, ErrEmpty) || errors.Is(res.Err, ErrExpired):
				g.markClosed(r.envelopeID)
			case res.Err == nil && !res.Replay && r.n.seq == r.n.count:
				g.markClosed(r.envelopeID) // the last share
			}
		}
		close(r.done)
	}
}
