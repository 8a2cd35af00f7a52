package desks

import (
	"context"
	"encoding/json"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/parley-im/parley/rooms"
)

// StateEventType is the room state event that carries a consultation's
// desk-side state (see the package comment for its schema).
const StateEventType = "io.parley.desk.consultation"

// noticeKey is the content key of a notice's machine-readable part.
const noticeKey = "io.parley.desk.notice"

// stateContent is the content of StateEventType. Its fields are marshalled
// in a fixed order, so equal contents compare equal as strings.
type stateContent struct {
	DeskID         string  `json:"desk_id"`
	DeskName       string  `json:"desk_name"`
	ConsultationID string  `json:"consultation_id"`
	Customer       string  `json:"customer"`
	Category       string  `json:"category"`
	State          State   `json:"state"`
	Agent          *string `json:"agent"`
	QueuePosition  int     `json:"queue_position"`
	Rating         int     `json:"rating,omitempty"`
}

// roomTarget is what a consultation's room should show, taken from the
// model under the desk's lock.
type roomTarget struct {
	service string
	agent   string // the agent who should be in the room; "" for none
	content string
	notices []notice
}

func (d *desk) targetLocked(c *consultation) roomTarget {
	sc := stateContent{DeskID: d.id, DeskName: d.cfg.Name, ConsultationID: c.id, Customer: c.customer,
		Category: c.category, State: c.state, QueuePosition: d.position(c), Rating: c.rating}
	t := roomTarget{service: d.cfg.ServiceUser, notices: c.outbox}
	if c.agent != "" {
		agent := c.agent
		sc.Agent = &agent
		if c.state == Assigned {
			t.agent = agent
		}
	}
	b, _ := json.Marshal(sc) // a struct of strings and ints always marshals
	t.content = string(b)
	return t
}

// unlockAndReconcile releases d, which the caller holds, and then brings the
// rooms of the consultations changed under the lock in line with the model:
// room writes never happen under a desk's lock.
func (s *Service) unlockAndReconcile(ctx context.Context, d *desk) {
	touched := d.takeDirty()
	d.mu.Unlock()
	s.reconcileAll(ctx, touched)
}

// reconcileAll brings several consultations' rooms in line at once, so
// their writes share the room writer's group commits.
func (s *Service) reconcileAll(ctx context.Context, cs []*consultation) {
	if len(cs) == 1 {
		s.reconcile(ctx, cs[0])
		return
	}
	var g errgroup.Group
	g.SetLimit(8)
	for _, c := range cs {
		g.Go(func() error {
			s.reconcile(ctx, c)
			return nil
		})
	}
	_ = g.Wait() // reconcile reports its own failures
}

// reconcile brings c's room in line with the model: the current agent
// invited and joined, pending notices posted in order, the state event up
// to date, and agents no longer in charge gone. A failure leaves c
// dirty with its unposted notices, for the next sweep to retry; posting is
// idempotent (notices carry transaction IDs), so a retry repeats nothing.
func (s *Service) reconcile(ctx context.Context, c *consultation) {
	c.fx.Lock()
	defer c.fx.Unlock()
	d := c.desk
	d.mu.Lock()
	t := d.targetLocked(c)
	c.outbox = nil
	d.mu.Unlock()

	posted, err := s.applyRoom(ctx, c, t)
	if err == nil {
		return
	}
	s.log.Warn("desk room update failed; the sweep retries it", "desk", d.id, "consultation", c.id, "err", err)
	d.mu.Lock()
	c.outbox = append(t.notices[posted:len(t.notices):len(t.notices)], c.outbox...)
	d.markDirty(c)
	d.mu.Unlock()
}

// applyRoom does reconcile's room writes; it returns how many notices it
// posted. Called with c.fx held.
func (s *Service) applyRoom(ctx context.Context, c *consultation, t roomTarget) (int, error) {
	if !c.fxLoaded {
		ms, err := s.store.RoomMemberships(ctx, c.roomID)
		if err != nil {
			return 0, err
		}
		c.fxAgents = map[string]string{}
		for _, m := range ms {
			if m.UserID != c.customer && m.UserID != t.service && (m.Membership == "join" || m.Membership == "invite") {
				c.fxAgents[m.UserID] = m.Membership
			}
		}
		c.fxLoaded = true
	}
	if a := t.agent; a != "" && c.fxAgents[a] != "join" {
		if c.fxAgents[a] != "invite" {
			if _, err := s.rooms.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: c.roomID, Sender: t.service, Target: a,
				Membership: "invite", Profile: s.profile(ctx, a), ByService: true}); err != nil { // an assigned agent
				return 0, fmt.Errorf("invite %s: %w", a, err)
			}
			c.fxAgents[a] = "invite"
		}
		if _, err := s.rooms.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: c.roomID, Sender: a, Target: a,
			Membership: "join", Profile: s.profile(ctx, a), ByService: true}); err != nil { // routed here, not the agent's own join
			return 0, fmt.Errorf("join %s: %w", a, err)
		}
		c.fxAgents[a] = "join"
	}
	for i, n := range t.notices {
		if err := s.postNotice(ctx, c, t.service, n); err != nil {
			return i, err
		}
	}
	if t.content != c.fxState {
		key := ""
		if _, err := s.rooms.Send(ctx, rooms.SendRequest{RoomID: c.roomID, Sender: t.service, Type: StateEventType,
			StateKey: &key, Content: json.RawMessage(t.content), ByService: true}); err != nil {
			return len(t.notices), fmt.Errorf("state event: %w", err)
		}
		c.fxState = t.content
	}
	// Agents no longer in charge leave last, so they too see why.
	for a := range c.fxAgents {
		if a == t.agent {
			continue
		}
		if _, err := s.rooms.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: c.roomID, Sender: a, Target: a, Membership: "leave"}); err != nil {
			return len(t.notices), fmt.Errorf("leave %s: %w", a, err)
		}
		delete(c.fxAgents, a)
	}
	return len(t.notices), nil
}

// postNotice sends one m.notice from the desk's service user.
func (s *Service) postNotice(ctx context.Context, c *consultation, service string, n notice) error {
	meta := map[string]any{"kind": n.kind, "consultation_id": c.id}
	if n.agent != "" {
		meta["agent"] = n.agent
	}
	if n.position > 0 {
		meta["queue_position"] = n.position
	}
	if n.reason != "" {
		meta["reason"] = n.reason
	}
	if n.rating > 0 {
		meta["rating"] = n.rating
	}
	content, err := json.Marshal(map[string]any{"msgtype": "m.notice", "body": s.noticeText(ctx, n), noticeKey: meta})
	if err != nil {
		return err
	}
	_, err = s.rooms.Send(ctx, rooms.SendRequest{RoomID: c.roomID, Sender: service, DeviceID: "desk", TxnID: n.txn,
		Type: "m.room.message", Content: content, ByService: true})
	if err != nil {
		return fmt.Errorf("notice: %w", err)
	}
	return nil
}

// noticeText is what a notice says to people.
func (s *Service) noticeText(ctx context.Context, n notice) string {
	name := func(u string) string { return s.displayName(ctx, u) }
	switch n.kind {
	case "assigned":
		return fmt.Sprintf("You are now talking to %s.", name(n.agent))
	case "queued":
		return fmt.Sprintf("All our agents are busy. You are number %d in the queue.", n.position)
	case "transferred":
		return fmt.Sprintf("%s transferred you to %s. You are now talking to %s.", name(n.from), name(n.agent), name(n.agent))
	case "rerouted":
		why := fmt.Sprintf("%s is no longer available.", name(n.from))
		if n.reason == "timeout" {
			why = fmt.Sprintf("%s has not answered in time.", name(n.from))
		}
		if n.agent != "" {
			return fmt.Sprintf("%s You are now talking to %s.", why, name(n.agent))
		}
		return fmt.Sprintf("%s You are number %d in the queue.", why, n.position)
	case "closed":
		if n.rating > 0 {
			return fmt.Sprintf("%s closed this consultation and rated it %d/5.", name(n.from), n.rating)
		}
		return fmt.Sprintf("%s closed this consultation.", name(n.from))
	case "rated":
		return fmt.Sprintf("%s rated this consultation %d/5.", name(n.from), n.rating)
	}
	return n.kind
}
