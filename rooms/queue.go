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
}

// userQueue is one user's waiting jobs, oldest at jobs[head]. Guarded by
// fairQueue.mu.
type userQueue struct {
	key  string
	jobs []*job
	head int
}

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
	if q.total >= q.max {
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
	} else if len(u.jobs)-u.head >= q.perUser {
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
// maxCost, one per user in turn; a heavy job is taken alone. A job costing more than maxCost alone is
// still taken, alone, so that it runs at all; the caller bounds such jobs
// before they are queued.
func (q *fairQueue) take(dst []*job, maxJobs, maxCost int) []*job {
	q.mu.Lock()
	defer q.mu.Unlock()
	cost := 0
	for len(dst) < maxJobs && q.head < len(q.ring) {
		u := q.ring[q.head]
		j := u.jobs[u.head]
		// A heavy job (a quarter of the budget or more, such as a createRoom
		// with a big initial_state) commits alone, and light jobs never ride
		// along with one: a send then waits for at most one heavy commit
		// before its own short one, not for a long commit it shares.
		if len(dst) > 0 && (cost+j.cost > maxCost || 4*j.cost >= maxCost || 4*dst[0].cost >= maxCost) {
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
