package outbound

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/parley-im/parley/storage"
)

// Window bounds, in positions, of one read of a destination's PDUs. The
// read joins the destination's rooms with the events in the window and
// keeps the first 50, so its cost is the events of those rooms in the
// window: the worker sizes the window to find about 50 (twice the span the
// last full read needed), and widens it fourfold when a read finds fewer.
const (
	minWindow = 256
	maxWindow = 1 << 20
)

// ackSaveEvery bounds how long a destination's acknowledged cursor may stay
// in memory only. A crash loses at most that much of it: those PDUs go
// again, and receivers drop events they already have.
const ackSaveEvery = time.Second

// worker serves one destination: at most one transaction in flight, PDUs in
// position order. It lives while the destination has work or waits out a
// backoff, then exits; its state is in the store.
type worker struct {
	q *Queue
	d *dest
	// All owned by the worker goroutine.
	st      storage.FedDestination
	loaded  bool
	unsaved bool // st is ahead of the store (an acknowledgement, a moved cursor)
	savedAt time.Time
	window  int64 // the next read's width in positions
	eduN    int   // durable EDUs in the transaction being sent
}

func (q *Queue) runDest(d *dest) {
	defer q.wg.Done()
	w := &worker{q: q, d: d, window: 4 * minWindow}
	w.run(q.ctx)
}

func (w *worker) run(ctx context.Context) {
	q, d := w.q, w.d
	defer w.saveOnExit()
	for {
		q.mu.Lock()
		d.dirty = false
		q.mu.Unlock()
		select {
		case <-d.wakeCh: // the dirty flag above says it all
		default:
		}
		err := w.load(ctx)
		if err == nil {
			if wait := time.UnixMilli(w.st.RetryAtTS).Sub(q.cfg.Now()); w.st.RetryAtTS > 0 && wait > 0 {
				if !w.sleep(ctx, wait) {
					return
				}
			}
		}
		idle := false
		if err == nil {
			idle, err = w.sendOne(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.st.Failures++
			delay := backoff(w.st.Failures, q.cfg.MinBackoff, q.cfg.MaxBackoff, q.cfg.Jitter())
			w.st.RetryAtTS = q.cfg.Now().Add(delay).UnixMilli()
			q.log.Info("federation outbound: send failed; backing off", "destination", d.name,
				"failures", w.st.Failures, "retry_in", delay, "err", err)
			if w.loaded {
				// The transaction in flight, its ID and the backoff go to
				// the store: a restart retries the same transaction, and
				// does not hammer a server that is down.
				w.save(ctx)
			}
			if !w.sleep(ctx, delay) {
				return
			}
			continue
		}
		if !idle {
			if w.unsaved && q.cfg.Now().Sub(w.savedAt) >= ackSaveEvery {
				w.save(ctx)
			}
			continue
		}
		woken, ok := w.linger(ctx)
		if !ok {
			return
		}
		if woken {
			continue
		}
		q.mu.Lock()
		if d.dirty {
			q.mu.Unlock()
			continue
		}
		d.running = false
		if len(d.ephemeral) == 0 {
			delete(q.dests, d.name)
		}
		q.mu.Unlock()
		return
	}
}

// linger waits, when acknowledgements are unsaved, up to ackSaveEvery for
// more work before saving them: under steady traffic a destination's
// cursor is written about once a second, not once per transaction, and it
// is saved before the worker ends (a successor loads it from the store).
// woken means new work came; ok is false when the queue stops.
func (w *worker) linger(ctx context.Context) (woken, ok bool) {
	if !w.unsaved {
		return false, true
	}
	t := time.NewTimer(ackSaveEvery)
	defer t.Stop()
	select {
	case <-w.d.wakeCh:
		return true, true
	case <-t.C:
		w.save(ctx)
		return false, true
	case <-ctx.Done():
		return false, false
	}
}

// saveOnExit saves unsaved acknowledgements when the queue stops (the
// saver has stopped too), so a clean shutdown sends nothing twice.
func (w *worker) saveOnExit() {
	if !w.unsaved {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.q.store.FedPutDestinations(ctx, []storage.FedDestination{w.st}); err == nil {
		w.unsaved = false
	}
}

func (w *worker) load(ctx context.Context) error {
	if w.loaded {
		return nil
	}
	st, err := w.q.store.FedDestination(ctx, w.d.name)
	if err != nil {
		return err
	}
	w.st, w.loaded = st, true
	return nil
}

func (w *worker) save(ctx context.Context) {
	if err := w.q.saveState(ctx, w.st); err != nil {
		if ctx.Err() == nil {
			w.q.log.Warn("federation outbound: saving queue state failed", "destination", w.d.name, "err", err)
		}
		return
	}
	w.unsaved, w.savedAt = false, w.q.cfg.Now()
}

// sleep waits d, or less if the destination is reported reachable. It
// returns false when the queue stops.
func (w *worker) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.d.reachable:
		w.st.Failures, w.st.RetryAtTS = 0, 0
	case <-ctx.Done():
		return false
	}
	w.st.RetryAtTS = 0
	return true
}

// sendOne builds and sends one transaction. idle means there was nothing to
// send.
func (w *worker) sendOne(ctx context.Context) (idle bool, err error) {
	q := w.q
	txn, fresh, err := w.build(ctx)
	if err != nil || txn == nil {
		return txn == nil && err == nil, err
	}
	if fresh && w.eduN > 0 {
		// Durable EDUs have no ID of their own that the receiver checks:
		// record the transaction before it leaves, so that after a crash
		// it goes again under the same ID and the receiver drops it as a
		// repeat. (PDUs need no such write: a receiver drops events it
		// already has, so after a crash the last second's PDUs may go
		// again in a new transaction, harmlessly.) The same write carries
		// the previous acknowledgement.
		if err := q.saveState(ctx, w.st); err != nil {
			return false, err
		}
		w.unsaved, w.savedAt = false, q.cfg.Now()
	}
	sctx, cancel := context.WithTimeout(ctx, q.cfg.SendTimeout)
	res, err := q.cfg.Transport.SendTransaction(sctx, w.d.name, txn)
	cancel()
	if err != nil {
		return false, fmt.Errorf("transaction %s: %w", txn.ID, err)
	}
	for id, e := range res.PDUErrors {
		q.log.Debug("federation outbound: destination refused a PDU", "destination", w.d.name, "event_id", id, "err", e)
	}
	w.acked()
	return false, nil
}

// acked moves the cursors past the transaction in flight.
func (w *worker) acked() {
	st := &w.st
	st.SentPos = max(st.SentPos, st.TxnPos)
	st.SentEDU = max(st.SentEDU, st.TxnEDU)
	st.TxnID, st.Failures, st.RetryAtTS = "", 0, 0
	w.unsaved = true
	select {
	case <-w.d.reachable: // it answered: a stale "reachable" must not cut a later backoff short
	default:
	}
	if w.eduN > 0 {
		w.q.ackedEDUs(w.d.name, w.eduN)
		w.eduN = 0
	}
}

// build returns the next transaction, or nil when there is nothing to send.
// fresh is false for a transaction recorded earlier (a retry, maybe after a
// restart): it is rebuilt from the store with the same ID and the same PDUs
// and durable EDUs; ephemeral EDUs it carried are gone.
func (w *worker) build(ctx context.Context) (txn *Transaction, fresh bool, err error) {
	q, st := w.q, &w.st
	origin := q.cfg.ServerName
	for st.TxnID != "" {
		pdus, err := q.store.FedPDUs(ctx, w.d.name, origin, st.SentPos, st.TxnPos, maxTxnPDUs)
		if err != nil {
			return nil, false, err
		}
		var edus []storage.FedEDU
		if st.TxnEDU > st.SentEDU {
			if edus, err = q.store.FedEDUs(ctx, w.d.name, st.SentEDU, st.TxnEDU, maxTxnEDUs); err != nil {
				return nil, false, err
			}
		}
		if len(pdus) == 0 && len(edus) == 0 {
			w.acked() // it carried only ephemeral EDUs: nothing left to resend
			continue
		}
		w.eduN = len(edus)
		return w.txn(st.TxnID, pdus, edus, nil), false, nil
	}

	// A new transaction: the first PDUs after the cursor, read in windows
	// up to the scan position (past it, spans may not be recorded yet).
	scanned := q.scanned.Load()
	var pdus []storage.FedPDU
	upto := st.SentPos
	for upto < scanned {
		lo, hi := upto, min(upto+w.window, scanned)
		rows, err := q.store.FedPDUs(ctx, w.d.name, origin, lo, hi, maxTxnPDUs)
		if err != nil {
			return nil, false, err
		}
		if len(rows) == maxTxnPDUs {
			upto = rows[len(rows)-1].Pos
			w.window = max(minWindow, 2*(upto-lo))
			pdus = rows
			break
		}
		upto = hi
		w.window = min(maxWindow, 4*w.window)
		if len(rows) > 0 {
			pdus = rows
			break
		}
	}
	if len(pdus) == 0 && upto > st.SentPos {
		st.SentPos, w.unsaved = upto, true // nothing for it up there
	}
	var edus []storage.FedEDU
	if q.pendingEDUs(w.d.name) {
		if edus, err = q.store.FedEDUs(ctx, w.d.name, st.SentEDU, math.MaxInt64, maxTxnEDUs); err != nil {
			return nil, false, err
		}
	}
	var eph []EDU
	if room := maxTxnEDUs - len(edus); room > 0 {
		q.mu.Lock()
		n := min(room, len(w.d.ephemeral))
		eph = append(eph, w.d.ephemeral[:n]...)
		w.d.ephemeral = append(w.d.ephemeral[:0], w.d.ephemeral[n:]...)
		q.mu.Unlock()
	}
	if len(pdus) == 0 && len(edus) == 0 && len(eph) == 0 {
		return nil, false, nil
	}
	st.TxnID = newTxnID(q.cfg.Now())
	st.TxnPos = max(upto, st.SentPos)
	st.TxnEDU = st.SentEDU
	if len(edus) > 0 {
		st.TxnEDU = edus[len(edus)-1].ID
	}
	w.eduN = len(edus)
	return w.txn(st.TxnID, pdus, edus, eph), true, nil
}

func (w *worker) txn(id string, pdus []storage.FedPDU, edus []storage.FedEDU, eph []EDU) *Transaction {
	t := &Transaction{ID: id, Origin: w.q.cfg.ServerName, OriginServerTS: w.q.cfg.Now().UnixMilli(),
		PDUs: make([]json.RawMessage, len(pdus))}
	for i, p := range pdus {
		t.PDUs[i] = p.PDU
	}
	if n := len(edus) + len(eph); n > 0 {
		t.EDUs = make([]EDU, 0, n)
		for _, e := range edus {
			t.EDUs = append(t.EDUs, EDU{Type: e.Type, Content: e.Content})
		}
		t.EDUs = append(t.EDUs, eph...)
	}
	return t
}

// newTxnID returns a transaction ID unique for this server: the time and
// random bits, in URL-safe characters.
func newTxnID(now time.Time) string {
	return fmt.Sprintf("%x.%08x", now.UnixMilli(), rand.Uint32())
}
