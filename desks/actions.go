package desks

import (
	"context"
	"fmt"
)

// Transfer hands an assigned consultation from its agent to another agent
// of the desk, who must be eligible for it now (rule 1: available, online,
// skilled, under capacity). Its agent or an admin may transfer it; the
// customer is told.
func (s *Service) Transfer(ctx context.Context, deskID, id string, who Actor, to string) (ConsultationView, error) {
	ctx = context.WithoutCancel(ctx)
	d, err := s.lockDesk(deskID)
	if err != nil {
		return ConsultationView{}, err
	}
	c := d.open[id]
	if c == nil {
		d.mu.Unlock()
		if _, err := s.closedRow(ctx, d, id); err != nil {
			return ConsultationView{}, err
		}
		return ConsultationView{}, fmt.Errorf("%w: the consultation is closed", ErrInvalid)
	}
	if !who.Admin && who.UserID != c.agent {
		d.mu.Unlock()
		return ConsultationView{}, fmt.Errorf("%w: only the consultation's agent may transfer it", ErrForbidden)
	}
	if err := s.transferLocked(ctx, d, c, to); err != nil {
		d.mu.Unlock()
		return ConsultationView{}, err
	}
	v := d.viewLocked(c)
	s.unlockAndReconcile(ctx, d)
	return v, nil
}

func (s *Service) transferLocked(ctx context.Context, d *desk, c *consultation, to string) error {
	if c.state != Assigned {
		return fmt.Errorf("%w: only an assigned consultation can be transferred", ErrInvalid)
	}
	if to == c.agent {
		return fmt.Errorf("%w: %s already has this consultation", ErrInvalid, to)
	}
	i := d.agentIndex(to)
	if i < 0 {
		return fmt.Errorf("%w: %s is not an agent of this desk", ErrInvalid, to)
	}
	r := d.routeFor(c)
	if !d.cands[i].eligibleSansPresence(&r) || !s.online(ctx, to) {
		return fmt.Errorf("%w: %s cannot take a %s consultation now (status %s, presence %s, load %d of %d)", ErrInvalid, to,
			c.category, d.cands[i].Status, s.presence(ctx, to), d.cands[i].Load, d.cands[i].capacity(d.cfg.Capacity))
	}
	now := s.cfg.Now()
	if err := s.assignLocked(ctx, d, c, i, now, notice{kind: "transferred", from: c.agent}); err != nil {
		return err
	}
	return s.drainLocked(ctx, d, now) // the old agent has a free slot
}

// Close ends a consultation. Its customer, its agent or an admin may close
// it; only the customer may rate it (1 to 5; 0 means no rating). Closing a
// closed consultation changes nothing, except that its customer may still
// rate it once.
func (s *Service) Close(ctx context.Context, deskID, id string, who Actor, rating int) (ConsultationView, error) {
	if rating < 0 || rating > 5 {
		return ConsultationView{}, fmt.Errorf("%w: rating must be an integer from 1 to 5", ErrInvalid)
	}
	ctx = context.WithoutCancel(ctx)
	d, err := s.lockDesk(deskID)
	if err != nil {
		return ConsultationView{}, err
	}
	c := d.open[id]
	if c == nil {
		d.mu.Unlock()
		return s.rateClosed(ctx, d, id, who, rating)
	}
	if !who.Admin && who.UserID != c.customer && who.UserID != c.agent {
		d.mu.Unlock()
		return ConsultationView{}, fmt.Errorf("%w: only the consultation's customer and agent may close it", ErrForbidden)
	}
	if rating > 0 && who.UserID != c.customer {
		d.mu.Unlock()
		return ConsultationView{}, fmt.Errorf("%w: only the customer may rate a consultation", ErrForbidden)
	}
	now := s.cfg.Now()
	r := c.row()
	r.State, r.ClosedTS, r.ClosedBy, r.Rating = string(Closed), ms(now), who.UserID, rating
	err = s.commitLocked(ctx, d, c, r, false)
	if err == nil {
		d.stats.rate(rating)
		s.say(c, notice{kind: "closed", from: who.UserID, rating: rating})
		err = s.drainLocked(ctx, d, now)
	}
	v := d.viewLocked(c)
	s.unlockAndReconcile(ctx, d)
	if err != nil {
		return ConsultationView{}, err
	}
	return v, nil
}

// rateClosed answers Close on a consultation already closed: a no-op, or
// the customer's late rating.
func (s *Service) rateClosed(ctx context.Context, d *desk, id string, who Actor, rating int) (ConsultationView, error) {
	// Under the desk's lock, so two late ratings cannot both land.
	d.mu.Lock()
	r, err := s.closedRow(ctx, d, id)
	if err != nil {
		d.mu.Unlock()
		return ConsultationView{}, err
	}
	switch {
	case !who.Admin && who.UserID != r.Customer && who.UserID != r.Agent:
		err = fmt.Errorf("%w: only the consultation's customer and agent may close it", ErrForbidden)
	case rating == 0:
	case who.UserID != r.Customer:
		err = fmt.Errorf("%w: only the customer may rate a consultation", ErrForbidden)
	case r.Rating != 0:
		err = fmt.Errorf("%w: this consultation is rated already", ErrInvalid)
	}
	if err != nil || rating == 0 {
		d.mu.Unlock()
		return rowView(r), err
	}
	r.Rating = rating
	if err := s.store.UpdateConsultation(ctx, r, false); err != nil {
		d.mu.Unlock()
		return ConsultationView{}, err
	}
	d.stats.rate(rating)
	c := consultationFromRow(d, r)
	c.stored = true
	s.say(c, notice{kind: "rated", from: who.UserID, rating: rating})
	d.mu.Unlock()
	s.reconcile(ctx, c)
	return rowView(r), nil
}

// SetStatus records an agent's own status on a desk. Away re-routes their
// consultations at once; available may take queued customers at once.
func (s *Service) SetStatus(ctx context.Context, deskID, agent string, who Actor, st Status) (AgentView, error) {
	if !st.valid() {
		return AgentView{}, fmt.Errorf("%w: status must be available, busy or away", ErrInvalid)
	}
	if !who.Admin && who.UserID != agent {
		return AgentView{}, fmt.Errorf("%w: agents set their own status", ErrForbidden)
	}
	ctx = context.WithoutCancel(ctx)
	d, err := s.lockDesk(deskID)
	if err != nil {
		return AgentView{}, err
	}
	i := d.agentIndex(agent)
	if i < 0 {
		d.mu.Unlock()
		return AgentView{}, fmt.Errorf("%w: %s is not an agent of this desk", ErrNotFound, agent)
	}
	now := s.cfg.Now()
	err = s.setStatusLocked(ctx, d, i, st, "away", now)
	if err == nil {
		err = s.drainLocked(ctx, d, now)
	}
	var v AgentView
	if i := d.agentIndex(agent); i >= 0 {
		v = s.agentViewLocked(ctx, d, i)
	}
	s.unlockAndReconcile(ctx, d)
	return v, err
}
