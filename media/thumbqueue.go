package media

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/parley-im/parley/apierr"
)

// decodeQueue runs thumbnail generations: at most `slots` at once, cheapest
// first, with at most `maxPending` waiting behind them, one job per source
// however many requests want it, and each job cancelled once every request
// waiting for it has gone.
//
// Cheapest first (by pixel count) is what keeps a legitimate photo from
// waiting behind a queue of large images: it waits for at most the jobs
// already running. A large job can wait while small ones keep arriving, but
// the queue is bounded, so the wait is too, and the client is told to retry.
type decodeQueue struct {
	slots      int
	maxPending int
	deadline   time.Duration // per job, from when it starts running

	mu      sync.Mutex
	running int                   // guarded by mu
	pending jobHeap               // guarded by mu; jobs not started yet
	byKey   map[string]*decodeJob // guarded by mu; pending and running jobs
	seq     uint64                // guarded by mu; FIFO among equal costs
}

// decodeJob is one generation. Its fields other than done and err are
// guarded by decodeQueue.mu; err is written once before done is closed.
type decodeJob struct {
	key     string
	cost    int64
	seq     uint64
	index   int // in the heap; -1 once started or dropped
	waiters int
	ctx     context.Context
	cancel  context.CancelFunc
	run     func(ctx context.Context) error
	done    chan struct{}
	err     error
	// expired is closed when the job has run for the queue's deadline, so
	// waiters answer then even if the decoder has not yet reached a point
	// where it checks its context (it stops at the next one).
	expired chan struct{}
}

func newDecodeQueue(slots, maxPending int, deadline time.Duration) *decodeQueue {
	return &decodeQueue{slots: slots, maxPending: maxPending, deadline: deadline, byKey: map[string]*decodeJob{}}
}

// errQueueFull is the answer when the queue is full: 429 M_LIMIT_EXCEEDED,
// which the spec lists for the thumbnail endpoints, with a retry delay.
func errQueueFull() error { return apierr.LimitExceeded(2000) }

// errDeadline means a job ran out of time: the image costs too much.
var errDeadline = errors.New("thumbnail generation exceeded its deadline")

// do runs run (or joins the job already running for key) and waits for it
// or for ctx. run gets a context that ends when the job's deadline passes or
// when no request waits any more; decoding must check it.
func (q *decodeQueue) do(ctx context.Context, key string, cost int64, run func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("waiting for thumbnail: %w", err)
	}
	q.mu.Lock()
	j := q.byKey[key]
	if j == nil {
		if q.running >= q.slots && len(q.pending) >= q.maxPending {
			q.mu.Unlock()
			return errQueueFull()
		}
		jctx, cancel := context.WithCancel(context.Background())
		q.seq++
		j = &decodeJob{key: key, cost: cost, seq: q.seq, ctx: jctx, cancel: cancel, run: run,
			done: make(chan struct{}), expired: make(chan struct{})}
		q.byKey[key] = j
		heap.Push(&q.pending, j)
		q.startLocked()
	}
	j.waiters++
	q.mu.Unlock()

	select {
	case <-j.done:
		return j.err
	case <-j.expired:
		return errDeadline
	case <-ctx.Done():
		q.mu.Lock()
		j.waiters--
		if j.waiters == 0 {
			// Nobody wants it any more: stop it, queued or running.
			j.cancel()
			if q.byKey[key] == j {
				delete(q.byKey, key)
			}
			if j.index >= 0 {
				heap.Remove(&q.pending, j.index)
				j.index = -1
			}
		}
		q.mu.Unlock()
		return fmt.Errorf("waiting for thumbnail: %w", ctx.Err())
	}
}

// startLocked starts pending jobs, cheapest first, while slots are free.
func (q *decodeQueue) startLocked() {
	for q.running < q.slots && len(q.pending) > 0 {
		j := heap.Pop(&q.pending).(*decodeJob)
		j.index = -1
		q.running++
		go q.runJob(j)
	}
}

func (q *decodeQueue) runJob(j *decodeJob) {
	ctx, cancel := context.WithTimeoutCause(j.ctx, q.deadline, errDeadline)
	timer := time.AfterFunc(q.deadline, func() { close(j.expired) })
	err := runRecovered(ctx, j.run)
	timer.Stop()
	if cerr := context.Cause(ctx); err != nil && errors.Is(cerr, errDeadline) {
		err = errDeadline
	}
	cancel()
	j.cancel()
	q.mu.Lock()
	j.err = err
	close(j.done)
	q.running--
	if q.byKey[j.key] == j {
		delete(q.byKey, j.key)
	}
	q.startLocked()
	q.mu.Unlock()
}

// stats reports running and pending jobs, for tests and metrics.
func (q *decodeQueue) stats() (running, pending int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running, len(q.pending)
}

// jobHeap orders pending jobs by cost, then by arrival.
type jobHeap []*decodeJob

func (h jobHeap) Len() int { return len(h) }
func (h jobHeap) Less(a, b int) bool {
	if h[a].cost != h[b].cost {
		return h[a].cost < h[b].cost
	}
	return h[a].seq < h[b].seq
}
func (h jobHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].index, h[b].index = a, b
}
func (h *jobHeap) Push(x any) {
	j := x.(*decodeJob)
	j.index = len(*h)
	*h = append(*h, j)
}
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}

// runRecovered runs a job outside any request goroutine, where net/http's
// own recovery no longer applies: a decoder panicking on crafted input must
// fail that thumbnail, not the process.
func runRecovered(ctx context.Context, run func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("thumbnail generation panicked: %v: %w", p, cannotThumbnail())
		}
	}()
	return run(ctx)
}
