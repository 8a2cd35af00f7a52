package desks

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/parley-im/parley/storage"
)

// Run finishes the opens a crash interrupted (FinishPending), then sweeps
// every desk each Config.SweepEvery until ctx ends.
func (s *Service) Run(ctx context.Context) {
	// Opens a crash interrupted come first: their customers have waited.
	if n, err := s.FinishPending(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("desks: finishing pending consultations", "finished", n, "err", err)
	} else if n > 0 {
		s.log.Info("desks: finished consultations a restart interrupted", "finished", n)
	}
	tick := time.NewTicker(s.cfg.SweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.Sweep(ctx, s.cfg.Now())
		}
	}
}

// Sweep does what nothing else triggers: it learns which agents have
// replied, re-routes the consultations of agents who went offline, away or
// were removed, treats an assignment unanswered past the desk's reply
// timeout as its agent being away, hands queued customers to agents who
// came online, and retries room updates that failed. Reply timeouts are
// judged as of now; what the sweep does is stamped with the service's own
// clock, so tests pass a later now to expire timeouts without waiting.
func (s *Service) Sweep(ctx context.Context, now time.Time) {
	for _, d := range s.allDesks() {
		if err := s.sweepDesk(ctx, d, now); err != nil && ctx.Err() == nil {
			s.log.Warn("desk sweep failed", "desk", d.id, "err", err)
		}
	}
}

func (s *Service) sweepDesk(ctx context.Context, d *desk, now time.Time) error {
	replies, replyErr := s.replies(ctx, d)
	if replyErr != nil {
		// Without knowing who replied no timeout can be judged; the rest
		// of the sweep still runs. A zero deadline expires nothing.
		now = time.Time{}
	}
	d.mu.Lock()
	if d.deleted {
		d.mu.Unlock()
		return replyErr
	}
	err := s.sweepLocked(ctx, d, replies, now, s.cfg.Now())
	s.unlockAndReconcile(ctx, d)
	return errors.Join(replyErr, err)
}

// replies asks the store, in one query, whether the agents of d's
// unanswered assignments have replied since they were assigned. Looking at
// the room log, rather than hooking the room writer, keeps desks out of
// the send path; the sweep interval is the only delay it adds, and the
// reply time recorded is the message's own.
func (s *Service) replies(ctx context.Context, d *desk) (map[storage.ReplyCheck]int64, error) {
	d.mu.Lock()
	var checks []storage.ReplyCheck
	for _, c := range d.open {
		if c.state == Assigned && !c.answered {
			checks = append(checks, storage.ReplyCheck{RoomID: c.roomID, Sender: c.agent, SinceTS: ms(c.assignedAt)})
		}
	}
	d.mu.Unlock()
	if len(checks) == 0 {
		return nil, nil
	}
	return s.store.FirstReplies(ctx, checks)
}

func (s *Service) sweepLocked(ctx context.Context, d *desk, replies map[storage.ReplyCheck]int64, deadline, now time.Time) error {
	open := make([]*consultation, 0, len(d.open))
	for _, c := range d.open {
		open = append(open, c)
	}
	sortByOpened(open)
	for _, c := range open {
		if c.state != Assigned || c.answered {
			continue
		}
		ts, ok := replies[storage.ReplyCheck{RoomID: c.roomID, Sender: c.agent, SinceTS: ms(c.assignedAt)}]
		if !ok {
			continue
		}
		if err := s.answeredLocked(ctx, d, c, ts); err != nil {
			return err
		}
	}

	// Who is gone, and why. An agent missing from the desk was removed
	// while a re-route of theirs failed; away and offline are rule 4.
	gone := map[string]string{}
	timeout := time.Duration(d.cfg.ReplyTimeoutS) * time.Second
	for _, c := range open {
		if c.state != Assigned {
			continue
		}
		if _, seen := gone[c.agent]; seen {
			continue
		}
		i := d.agentIndex(c.agent)
		switch {
		case i < 0:
			gone[c.agent] = "removed"
		case d.cands[i].Status == StatusAway:
			gone[c.agent] = "away"
		case s.presence(ctx, c.agent) == "offline":
			gone[c.agent] = "offline"
		case !c.answered && !deadline.IsZero() && deadline.Sub(c.assignedAt) > timeout:
			// Rule 4 reads an unanswered assignment as the agent being
			// gone: they are set away, so nothing comes straight back.
			if err := s.setStatusLocked(ctx, d, i, StatusAway, "timeout", now); err != nil {
				return err
			}
			gone[c.agent] = "" // already re-routed
		}
	}
	agents := make([]string, 0, len(gone))
	for a, reason := range gone {
		if reason != "" {
			agents = append(agents, a)
		}
	}
	slices.Sort(agents)
	for _, a := range agents {
		if err := s.rerouteLocked(ctx, d, a, gone[a], now); err != nil {
			return err
		}
	}
	// Room updates that failed before are still in d.dirty: the caller
	// retries them with the rest.
	return s.drainLocked(ctx, d, now)
}

// answeredLocked records that c's agent replied at ts (Unix ms). The
// first reply of the consultation's life feeds the time-to-first-reply
// figures.
func (s *Service) answeredLocked(ctx context.Context, d *desk, c *consultation, ts int64) error {
	if c.firstReply.IsZero() {
		r := c.row()
		r.FirstReplyTS = ts
		if err := s.store.UpdateConsultation(ctx, r, false); err != nil {
			return err
		}
		c.firstReply = fromMs(ts)
		// In whole milliseconds, as the store keeps them, so the figures
		// are the same before and after a restart.
		d.stats.reply(time.Duration(ts-ms(c.opened)) * time.Millisecond)
	}
	c.answered = true
	return nil
}
