package desks

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley-im/parley/storage"
)

// serviceUserPrefix starts the localpart of every desk's service account:
// @desk.<deskId>:<server> creates the rooms and posts the notices.
const serviceUserPrefix = "desk."

// State is where a consultation stands.
type State string

// Consultation states.
const (
	Queued   State = "queued"
	Assigned State = "assigned"
	Closed   State = "closed"
)

// desk is one desk's live model. Everything in it is guarded by mu.
type desk struct {
	id string // static

	mu       sync.Mutex
	cfg      storage.Desk
	cands    []Candidate              // the agents, sorted by UserID
	open     map[string]*consultation // queued and assigned, by ID
	queue    []*consultation          // queued, front first (by seq)
	nextSeq  int64                    // the next queue number at the back
	frontSeq int64                    // the next queue number at the front
	rrLast   string                   // round_robin's last choice
	stats    stats
	dirty    map[string]*consultation // rooms not yet in line with the model
	opening  map[string]bool          // customer+category of opens in flight
	deleted  bool
}

func newDesk(cfg storage.Desk) *desk {
	return &desk{id: cfg.DeskID, cfg: cfg, open: map[string]*consultation{}, dirty: map[string]*consultation{},
		opening: map[string]bool{}, nextSeq: 1, frontSeq: 0}
}

// consultation is one customer's consultation.
type consultation struct {
	// Static after creation.
	id, roomID, customer, category string
	opened                         time.Time
	desk                           *desk

	// Guarded by desk.mu.
	state      State
	agent      string // current agent; the last one once closed
	preferred  string // the customer's previous agent, for sticky
	seq        int64
	queuedAt   time.Time
	assignedAt time.Time
	firstReply time.Time
	closedAt   time.Time
	closedBy   string
	rating     int
	reroutes   int
	answered   bool     // the current agent has replied since assignment
	stored     bool     // the row exists in the store
	outbox     []notice // notices not yet posted, in order

	// Owned by whoever holds fx: what the room is known to hold.
	fx       sync.Mutex
	fxLoaded bool
	fxAgents map[string]string // agents in the room: their membership (invite or join)
	fxState  string            // the state event content last written
}

// notice is an m.notice to post in a consultation's room. Its text is
// formatted when it is posted, so display names are looked up outside the
// desk's lock.
type notice struct {
	txn      string // idempotency key: a retried post writes it once
	kind     string // assigned, queued, transferred, rerouted, closed, rated
	agent    string // the agent now in charge, if any
	from     string // the previous agent, or who closed
	reason   string // why a re-route happened: offline, away, timeout, removed
	position int    // queue position, for queued
	rating   int
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMs(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// row is c as the store keeps it.
func (c *consultation) row() storage.Consultation {
	return storage.Consultation{
		ID: c.id, DeskID: c.desk.id, RoomID: c.roomID, Customer: c.customer, Category: c.category,
		State: string(c.state), Agent: c.agent, PreferredAgent: c.preferred, QueueSeq: c.seq,
		OpenedTS: ms(c.opened), QueuedTS: ms(c.queuedAt), AssignedTS: ms(c.assignedAt), FirstReplyTS: ms(c.firstReply),
		ClosedTS: ms(c.closedAt), ClosedBy: c.closedBy, Rating: c.rating, Reroutes: c.reroutes,
	}
}

func consultationFromRow(d *desk, r storage.Consultation) *consultation {
	return &consultation{
		id: r.ID, roomID: r.RoomID, customer: r.Customer, category: r.Category, opened: fromMs(r.OpenedTS), desk: d,
		state: State(r.State), agent: r.Agent, preferred: r.PreferredAgent, seq: r.QueueSeq,
		queuedAt: fromMs(r.QueuedTS), assignedAt: fromMs(r.AssignedTS), firstReply: fromMs(r.FirstReplyTS),
		closedAt: fromMs(r.ClosedTS), closedBy: r.ClosedBy, rating: r.Rating, reroutes: r.Reroutes,
	}
}

// restoreLocked puts an open consultation loaded at start back in the model.
func (d *desk) restoreLocked(r storage.Consultation) {
	c := consultationFromRow(d, r)
	c.stored = true
	d.open[c.id] = c
	if c.state == Assigned {
		if i := d.agentIndex(c.agent); i >= 0 {
			d.cands[i].Load++
			return
		}
		// Its agent was removed while the server was down: queue it at
		// the front; the first sweep routes it and tells the customer.
		c.state, c.agent, c.seq = Queued, "", d.frontSeq
		d.frontSeq--
		d.markDirty(c)
	}
	d.insertQueued(c)
}

func (d *desk) takeBackSeq() int64 {
	v := d.nextSeq
	d.nextSeq++
	return v
}

// insertQueued places c in the queue by its seq.
func (d *desk) insertQueued(c *consultation) {
	i, _ := slices.BinarySearchFunc(d.queue, c.seq, func(q *consultation, seq int64) int {
		switch {
		case q.seq < seq:
			return -1
		case q.seq > seq:
			return 1
		}
		return 0
	})
	d.queue = slices.Insert(d.queue, i, c)
}

func (d *desk) removeQueued(c *consultation) {
	if i := slices.Index(d.queue, c); i >= 0 {
		d.queue = slices.Delete(d.queue, i, i+1)
	}
}

// position is c's place among queued consultations of its category, from 1;
// 0 when c is not queued. Customers wait for agents with their category's
// skill, so this is the number that tells them how long.
func (d *desk) position(c *consultation) int {
	if c.state != Queued {
		return 0
	}
	n := 0
	for _, q := range d.queue {
		if q.category == c.category {
			n++
		}
		if q == c {
			return n
		}
	}
	return 0
}

func (d *desk) agentIndex(userID string) int {
	i, found := slices.BinarySearchFunc(d.cands, userID, func(c Candidate, id string) int { return strings.Compare(c.UserID, id) })
	if !found {
		return -1
	}
	return i
}

// putAgentLocked adds or updates an agent, keeping cands sorted.
func (d *desk) putAgentLocked(userID string, skills []string, capacity int, status Status, lastAssigned time.Time) {
	if i := d.agentIndex(userID); i >= 0 {
		d.cands[i].Skills, d.cands[i].Capacity = skills, capacity
		return
	}
	if !status.valid() {
		status = StatusAvailable
	}
	c := Candidate{UserID: userID, Skills: skills, Capacity: capacity, Status: status, LastAssigned: lastAssigned}
	i, _ := slices.BinarySearchFunc(d.cands, userID, func(c Candidate, id string) int { return strings.Compare(c.UserID, id) })
	d.cands = slices.Insert(d.cands, i, c)
}

func (d *desk) markDirty(c *consultation) { d.dirty[c.id] = c }

// markQueueDirty marks every queued consultation: their positions may have
// moved. reconcile writes only those whose state event really changed.
func (d *desk) markQueueDirty() {
	for _, q := range d.queue {
		d.dirty[q.id] = q
	}
}

// openOf returns the customer's open consultation in category, if any.
func (d *desk) openOf(customer, category string) *consultation {
	for _, c := range d.open {
		if c.customer == customer && c.category == category {
			return c
		}
	}
	return nil
}

// consultationsOf lists the open consultations assigned to agent, oldest first.
func (d *desk) consultationsOf(agent string) []*consultation {
	var out []*consultation
	for _, c := range d.open {
		if c.state == Assigned && c.agent == agent {
			out = append(out, c)
		}
	}
	sortByOpened(out)
	return out
}

// sortByOpened orders consultations oldest first; the ID breaks ties so
// the order is the same on every run.
func sortByOpened(cs []*consultation) {
	slices.SortFunc(cs, func(a, b *consultation) int {
		if c := a.opened.Compare(b.opened); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
}
