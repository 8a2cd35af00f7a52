package outbound

import (
	"context"

	"github.com/parley-im/parley/storage"
)

// The saver group-commits destination states. A worker records each new
// transaction before sending it (so its ID survives a restart), and a
// message in a room with many servers starts a transaction for each of
// them at once: one commit for all of them, instead of one each, keeps
// the queue from taking the store's single writer (SQLite) away from local
// sends.

const maxSaveBatch = 256

type saveReq struct {
	st   storage.FedDestination
	done chan error // capacity 1
}

func (q *Queue) saveLoop() {
	defer q.wg.Done()
	batch := make([]saveReq, 0, maxSaveBatch)
	states := make([]storage.FedDestination, 0, maxSaveBatch)
	for {
		select {
		case <-q.ctx.Done():
			return
		case r := <-q.saves:
			batch = append(batch[:0], r)
		}
	drain:
		for len(batch) < maxSaveBatch {
			select {
			case r := <-q.saves:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		states = states[:0]
		for _, r := range batch {
			states = append(states, r.st)
		}
		err := q.store.FedPutDestinations(q.ctx, states)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// saveState stores st through the saver and waits for its commit.
func (q *Queue) saveState(ctx context.Context, st storage.FedDestination) error {
	r := saveReq{st: st, done: make(chan error, 1)}
	select {
	case q.saves <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
