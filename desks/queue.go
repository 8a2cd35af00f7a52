package desks

import (
	"context"
	"time"

	"github.com/parley-im/parley/storage"
)

// The functions here change a desk's model and are called with desk.mu
// held. Each writes the store first and changes memory only when the write
// succeeded, so a failed write leaves the model as it was.

// commitLocked writes r as c's next row and then makes it c's state in
// memory: the queue, the agents' loads and the open set follow. assigned
// says c has just been given to r.Agent (which moves their last-assignment
// time, for least_busy's idle-longest rule).
func (s *Service) commitLocked(ctx context.Context, d *desk, c *consultation, r storage.Consultation, assigned bool) error {
	var err error
	if c.stored {
		err = s.store.UpdateConsultation(ctx, r, assigned)
	} else {
		err = s.store.InsertConsultation(ctx, r)
	}
	if err != nil {
		return err
	}
	c.stored = true
	switch c.state {
	case Assigned:
		if i := d.agentIndex(c.agent); i >= 0 {
			d.cands[i].Load--
		}
	case Queued:
		d.removeQueued(c)
		d.markQueueDirty()
	}
	c.state, c.agent, c.preferred, c.seq = State(r.State), r.Agent, r.PreferredAgent, r.QueueSeq
	c.queuedAt, c.assignedAt, c.firstReply, c.closedAt = fromMs(r.QueuedTS), fromMs(r.AssignedTS), fromMs(r.FirstReplyTS), fromMs(r.ClosedTS)
	c.closedBy, c.rating, c.reroutes = r.ClosedBy, r.Rating, r.Reroutes
	switch c.state {
	case Assigned:
		if i := d.agentIndex(c.agent); i >= 0 {
			d.cands[i].Load++
			if assigned {
				d.cands[i].LastAssigned = c.assignedAt
				d.rrLast = c.agent
			}
		}
		if assigned {
			c.answered = false // the new agent has not replied yet
		}
		d.open[c.id] = c
	case Queued:
		d.insertQueued(c)
		d.markQueueDirty()
		d.open[c.id] = c
	case Closed:
		delete(d.open, c.id)
	}
	d.markDirty(c)
	return nil
}

// assignLocked gives c to the agent at cands[i] and queues notice n for
// the customer. A re-route counts in the desk's metrics.
func (s *Service) assignLocked(ctx context.Context, d *desk, c *consultation, i int, now time.Time, n notice) error {
	r := c.row()
	r.State, r.Agent, r.AssignedTS = string(Assigned), d.cands[i].UserID, ms(now)
	if n.kind == "rerouted" {
		r.Reroutes++
	}
	if err := s.commitLocked(ctx, d, c, r, true); err != nil {
		return err
	}
	if n.kind == "rerouted" {
		d.stats.reroutes++
	}
	n.agent = r.Agent
	s.say(c, n)
	return nil
}

// enqueueLocked puts c in the queue at seq: d.takeBackSeq() for a
// newcomer, a front number for a re-routed consultation, which has waited
// already.
func (s *Service) enqueueLocked(ctx context.Context, d *desk, c *consultation, now time.Time, seq int64, n notice) error {
	r := c.row()
	r.State, r.Agent, r.QueuedTS, r.QueueSeq = string(Queued), "", ms(now), seq
	if n.kind == "rerouted" {
		r.Reroutes++
	}
	if err := s.commitLocked(ctx, d, c, r, false); err != nil {
		return err
	}
	if n.kind == "rerouted" {
		d.stats.reroutes++
	}
	n.position = d.position(c)
	s.say(c, n)
	return nil
}

// say queues a notice for c's room.
func (s *Service) say(c *consultation, n notice) {
	n.txn = newID()
	c.outbox = append(c.outbox, n)
}

// routeFor is the routing question for c on d.
func (d *desk) routeFor(c *consultation) Route {
	return Route{Category: c.category, Strategy: Strategy(d.cfg.Strategy), DefaultCapacity: d.cfg.Capacity,
		Preferred: c.preferred, After: d.rrLast, Exclude: c.customer}
}

// pickLocked applies the routing rules for c; -1 when nobody is eligible.
func (s *Service) pickLocked(ctx context.Context, d *desk, c *consultation) int {
	return Pick(d.cands, d.routeFor(c), func(u string) bool { return s.online(ctx, u) })
}

// routeLocked assigns a new consultation or queues it at the back.
func (s *Service) routeLocked(ctx context.Context, d *desk, c *consultation, now time.Time) error {
	if i := s.pickLocked(ctx, d, c); i >= 0 {
		return s.assignLocked(ctx, d, c, i, now, notice{kind: "assigned"})
	}
	return s.enqueueLocked(ctx, d, c, now, d.takeBackSeq(), notice{kind: "queued"})
}

// drainLocked hands queued consultations, front first, to agents who can
// take them. Within a category the queue is strictly FIFO: an entry is only
// passed over when no agent can take its category at all (or only its own
// customer could).
func (s *Service) drainLocked(ctx context.Context, d *desk, now time.Time) error {
	for i := 0; i < len(d.queue); {
		c := d.queue[i]
		j := s.pickLocked(ctx, d, c)
		if j < 0 {
			i++
			continue
		}
		if err := s.assignLocked(ctx, d, c, j, now, notice{kind: "assigned"}); err != nil {
			return err
		}
	}
	return nil
}

// rerouteLocked moves every open consultation of agent (who is gone for
// reason) to an eligible agent, oldest first. Those nobody can take go to
// the front of the queue, keeping their order among themselves.
func (s *Service) rerouteLocked(ctx context.Context, d *desk, agent, reason string, now time.Time) error {
	var left []*consultation
	for _, c := range d.consultationsOf(agent) {
		n := notice{kind: "rerouted", from: agent, reason: reason}
		if i := s.pickLocked(ctx, d, c); i >= 0 && d.cands[i].UserID != agent {
			if err := s.assignLocked(ctx, d, c, i, now, n); err != nil {
				return err
			}
			continue
		}
		left = append(left, c)
	}
	// The front numbers go oldest first, so they keep their order, and each
	// is told the place it will have once all are in.
	first := d.frontSeq - int64(len(left)) + 1
	d.frontSeq -= int64(len(left))
	for k, c := range left {
		if err := s.enqueueLocked(ctx, d, c, now, first+int64(k), notice{kind: "rerouted", from: agent, reason: reason}); err != nil {
			return err
		}
	}
	return nil
}

// setStatusLocked records an agent's status; away re-routes what they hold.
func (s *Service) setStatusLocked(ctx context.Context, d *desk, i int, st Status, reason string, now time.Time) error {
	agent := d.cands[i].UserID
	if d.cands[i].Status != st {
		if err := s.store.SetDeskAgentStatus(ctx, d.id, agent, string(st)); err != nil {
			return err
		}
		d.cands[i].Status = st
	}
	if st == StatusAway {
		return s.rerouteLocked(ctx, d, agent, reason, now)
	}
	return nil
}

// takeDirty returns the consultations whose rooms need bringing in line,
// and forgets them: the caller reconciles them after unlocking.
func (d *desk) takeDirty() []*consultation {
	if len(d.dirty) == 0 {
		return nil
	}
	out := make([]*consultation, 0, len(d.dirty))
	for id, c := range d.dirty {
		out = append(out, c)
		delete(d.dirty, id)
	}
	sortByOpened(out)
	return out
}
