package outbound

import (
	"context"
	"time"
)

// Status is one destination's queue state as the store has it, for
// operators and tests.
type Status struct {
	Destination string
	SentPos     int64  // every PDU for it at or below was acknowledged
	ScannedPos  int64  // how far the queue has read the room logs
	InFlight    string // the ID of the transaction in flight, "" when none
	Failures    int    // consecutive failed attempts
	RetryAt     time.Time
	// CaughtUp: the scan has read every committed event, nothing it read
	// waits for this destination, and no transaction or durable EDU is
	// pending. Ephemeral EDUs are not counted.
	CaughtUp bool
}

// Status reports destination's queue state. It reads the store: a worker
// saves its state when it goes idle, so an idle destination is exact.
func (q *Queue) Status(ctx context.Context, destination string) (Status, error) {
	st, err := q.store.FedDestination(ctx, destination)
	if err != nil {
		return Status{}, err
	}
	s := Status{Destination: destination, SentPos: st.SentPos, ScannedPos: q.scanned.Load(), InFlight: st.TxnID,
		Failures: st.Failures}
	if st.RetryAtTS > 0 {
		s.RetryAt = time.UnixMilli(st.RetryAtTS)
	}
	if st.TxnID != "" || s.ScannedPos < q.latest.Load() || q.pendingEDUs(destination) {
		return s, nil
	}
	waiting, err := q.store.FedPDUs(ctx, destination, q.cfg.ServerName, st.SentPos, s.ScannedPos, 1)
	if err != nil {
		return Status{}, err
	}
	s.CaughtUp = len(waiting) == 0
	return s, nil
}
