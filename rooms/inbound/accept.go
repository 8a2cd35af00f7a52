package inbound

import (
	"context"
	"errors"
	"fmt"
)

// Accept checks raw as Check does and stores the verdict. When the writer
// answers ErrExtremitiesMoved, the room moved on after check 5 read it:
// Accept re-runs check 5 against the new current state and tries again,
// MaxAttempts times in all, then gives up with ErrTooManyAttempts. Checks
// 1–4 are not repeated: they depend only on the event and its ancestors.
// It returns the verdict stored and the position the writer gave it.
//
// Concurrent calls are safe, but each event the writer stores first costs
// the others of that room one attempt; a caller should feed one room's
// events one at a time (as Synapse does per room) and may run rooms in
// parallel.
func (p *Pipeline) Accept(ctx context.Context, raw []byte) (*Verdict, int64, error) {
	c, err := p.check(ctx, "", raw, false)
	if err != nil {
		return nil, 0, err
	}
	return p.store(ctx, c)
}

// AcceptOutlier checks raw as CheckOutlier does and stores the verdict.
func (p *Pipeline) AcceptOutlier(ctx context.Context, roomID string, raw []byte) (*Verdict, int64, error) {
	c, err := p.check(ctx, roomID, raw, true)
	if err != nil {
		return nil, 0, err
	}
	return p.store(ctx, c)
}

func (p *Pipeline) store(ctx context.Context, c *checked) (*Verdict, int64, error) {
	if p.persist == nil {
		return nil, 0, errors.New("inbound: pipeline has no persister")
	}
	for attempt := 1; ; attempt++ {
		pos, err := p.persist.Persist(ctx, c.verdict)
		if err == nil {
			return c.verdict, pos, nil
		}
		k := c.verdict.Kind
		if !errors.Is(err, ErrExtremitiesMoved) || (k != Accepted && k != SoftFailed) {
			return nil, 0, fmt.Errorf("persist %s event %s: %w", k, c.ev.ID, err)
		}
		if attempt >= MaxAttempts {
			return nil, 0, fmt.Errorf("%w: event %s, %d attempts: %w", ErrTooManyAttempts, c.ev.ID, attempt, err)
		}
		// A fresh verdict, so the writer never sees one it was given
		// change under it.
		v := *c.verdict
		c.verdict = &v
		if err := p.checkCurrent(ctx, c); err != nil {
			return nil, 0, err
		}
	}
}
