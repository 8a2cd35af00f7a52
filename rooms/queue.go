package rooms

import (
	"fmt"
	"sync"
)

// fairQueue holds the writes waiting for the writer, one FIFO per user,
// served round-robin: each batch takes one job from each waiting user in
// turn, so a user with a thousand writes queued delays a user with one by at
// most one job per batch, not by the whole backlog. A user's own writes keep
// their order.
//
// The queue is bounded twice: a user whose backlog reaches perUser is told to
// slow down (ErrBusy, 429), and when the whole queue reaches max every new
// write is refused (ErrOverloaded, 503). Either way nothing is written and the
// caller may retry; the queue never grows without limit.
type fairQueue struct {
	// Static after newFairQueue.
	max, perUser int
	// wake holds one token when jobs may be waiting; the writer waits on it.
	wake chan struct{}

	mu sync.Mutex
	// Guarded by mu.
	users  map[string]*userQueue // users with at least one job waiting
	ring   []*userQueue          // round-robin order; the next to serve is ring[head]
	head   int
	total  int          // jobs waiting, over all users
	free   []*userQueue // emptied queues kept for reuse, so a steady sender allocates none
	closed bool         // set by close: no job is accepted after the writer drains

	busy, overloaded int64 // refusals since start, for metrics
	// deferred is set when the last batch let light jobs pass the heavy job
	// first in turn: the next batch is that heavy job's, so it waits for at
	// most one light batch and cannot be starved.
	deferred bool
}

// userQueue is one user's waiting jobs, oldest at jobs[head]. Guarded by
// fairQueue.mu.
type userQueue struct {
	key  string
	jobs []*job
	head int
}

// turnsPerBatch caps the writes one user puts in one batch. A commit costs
// about 0.1-0.2 ms an event plus one fsync, so 16 writes keep a flooding
// user's share of a batch to a few milliseconds, while one user alone still
// commits 16 writes per fsync (thousands a second).
const turnsPerBatch = 16

func newFairQueue(max, perUser int) *fairQueue {
	return &fairQueue{
		max: max, perUser: perUser,
		wake:  make(chan struct{}, 1),
		users: map[string]*userQueue{},
	}
}

// push queues j behind key's earlier jobs, or refuses it.
func (q *fairQueue) push(key string, j *job) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrStopped
	}
	// The server's own writes (key "") are bounded by their callers, and
	// refusing them could drop a step of a flow nobody retries.
	if key != "" && q.total >= q.max {
		q.overloaded++
		q.mu.Unlock()
		return fmt.Errorf("%w: %d writes are waiting, the most the server queues", ErrOverloaded, q.max)
	}
	u := q.users[key]
	if u == nil {
		if n := len(q.free); n > 0 {
			u, q.free = q.free[n-1], q.free[:n-1]
		} else {
			u = &userQueue{}
		}
		u.key = key
		q.users[key] = u
		q.ring = append(q.ring, u)
	} else if key != "" && len(u.jobs)-u.head >= q.perUser {
		q.busy++
		q.mu.Unlock()
		return fmt.Errorf("%w: %d of your writes are waiting, the most one user may have", ErrBusy, q.perUser)
	}
	if u.head > 0 && u.head*2 >= len(u.jobs) {
		// A user who never empties their queue would otherwise grow the
		// served prefix for ever.
		n := copy(u.jobs, u.jobs[u.head:])
		clear(u.jobs[n:])
		u.jobs, u.head = u.jobs[:n], 0
	}
	u.jobs = append(u.jobs, j)
	q.total++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	return nil
}

// take appends to dst up to maxJobs jobs whose costs add up to at most
// maxCost, one per user in turn. A heavy job (a quarter of maxCost or more)
// is taken alone; one costing more than maxCost still runs, alone, since the
// caller bounds such jobs before they are queued. When the next job in turn
// is heavy, the light jobs waiting behind it go first, in one batch, and the
// heavy one keeps its place for the next: a send then waits for at most the
// one heavy commit already under way.
func (q *fairQueue) take(dst []*job, maxJobs, maxCost int) []*job {
	q.mu.Lock()
	defer q.mu.Unlock()
	heavy := func(j *job) bool { return 4*j.cost >= maxCost }
	if len(dst) == 0 && q.head < len(q.ring) && !q.deferred {
		if u := q.ring[q.head]; heavy(u.jobs[u.head]) {
			if dst = q.takeLightLocked(dst, maxJobs, maxCost, heavy); len(dst) > 0 {
				q.deferred = true // the heavy job goes next, whatever arrives
				return dst
			}
		}
	}
	q.deferred = false
	cost := 0
	// A round serves each user waiting at its start once. Capping the rounds
	// caps any one user's share of a batch, so a user whose write arrives
	// behind a flood shares its commit with at most turnsPerBatch of the
	// flood's writes, not with a whole batch of them.
	rounds, left := 0, len(q.ring)-q.head
	for len(dst) < maxJobs && q.head < len(q.ring) {
		if left == 0 {
			if rounds++; rounds == turnsPerBatch {
				break
			}
			left = len(q.ring) - q.head
		}
		left--
		u := q.ring[q.head]
		j := u.jobs[u.head]
		// A heavy job (a quarter of the budget or more, such as a createRoom
		// with a big initial_state) commits alone, and light jobs never ride
		// along with one: a send then waits for at most one heavy commit
		// before its own short one, not for a long commit it shares.
		if len(dst) > 0 && (cost+j.cost > maxCost || heavy(j) || heavy(dst[0])) {
			break
		}
		cost += j.cost
		dst = append(dst, j)
		u.jobs[u.head] = nil
		u.head++
		q.total--
		q.ring[q.head] = nil
		q.head++
		if u.head < len(u.jobs) {
			q.ring = append(q.ring, u) // back of the line for its next job
		} else {
			delete(q.users, u.key)
			u.jobs, u.head, u.key = u.jobs[:0], 0, ""
			if len(q.free) < 1024 {
				q.free = append(q.free, u)
			}
		}
	}
	// Reclaim the served prefix of the ring once it is most of it, so the
	// ring's backing array stays proportional to the users waiting.
	if q.head > 0 && q.head*2 >= len(q.ring) {
		n := copy(q.ring, q.ring[q.head:])
		clear(q.ring[n:])
		q.ring, q.head = q.ring[:n], 0
	}
	return dst
}

// takeLightLocked takes the light jobs waiting, up to turnsPerBatch per
// user, skipping users whose next job is heavy, who keep their places.
func (q *fairQueue) takeLightLocked(dst []*job, maxJobs, maxCost int, heavy func(*job) bool) []*job {
	waiting := q.ring[q.head:]
	cost := 0
rounds:
	for range turnsPerBatch {
		progressed := false
		for _, u := range waiting {
			if u.head == len(u.jobs) || heavy(u.jobs[u.head]) {
				continue
			}
			j := u.jobs[u.head]
			if len(dst) == maxJobs || cost+j.cost > maxCost {
				break rounds
			}
			cost += j.cost
			dst = append(dst, j)
			u.jobs[u.head] = nil
			u.head++
			q.total--
			progressed = true
		}
		if !progressed {
			break
		}
	}
	if len(dst) == 0 {
		return dst
	}
	// Keep the ring's order, dropping users left with nothing.
	n := 0
	for _, u := range waiting {
		if u.head < len(u.jobs) {
			q.ring[n] = u
			n++
			continue
		}
		delete(q.users, u.key)
		u.jobs, u.head, u.key = u.jobs[:0], 0, ""
		if len(q.free) < 1024 {
			q.free = append(q.free, u)
		}
	}
	clear(q.ring[n:])
	q.ring, q.head = q.ring[:n], 0
	return dst
}

// close refuses further jobs. Jobs already queued stay for take.
func (q *fairQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// len is the number of jobs waiting.
func (q *fairQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}

// refusals reports how many writes were refused, per reason, since start.
func (q *fairQueue) refusals() (busy, overloaded int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busy, q.overloaded
}
