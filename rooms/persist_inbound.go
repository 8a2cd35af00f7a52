package rooms

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/parley-im/parley/pushrules"
	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/rooms/stateres"
	"github.com/parley-im/parley/storage"
)

// InboundKind says how the inbound pipeline (rooms/inbound) judged another
// server's event, and so how the writer stores it.
type InboundKind int

const (
	// Accepted: passed every check; it joins the timeline and the DAG, and
	// may change current state (through state resolution on a fork).
	Accepted InboundKind = iota + 1
	// Rejected: failed auth; kept with its reason, never used for state,
	// never shown.
	Rejected
	// SoftFailed: passed auth against its own DAG but not against current
	// state; kept with its state, not shown, never an extremity.
	SoftFailed
	// Outlier: known without its place in the DAG (auth chains, state
	// fetched for a join); no position, no state.
	Outlier
	// Backfilled: history older than what the room holds; it gets a
	// negative position, never reaches /sync, and changes neither current
	// state nor extremities.
	Backfilled
)

// InboundEvent is another server's event, checked, for the writer to store.
type InboundEvent struct {
	Raw    []byte // the PDU as received (canonical JSON)
	Event  *pdu.Event
	Kind   InboundKind
	Reason string // why it was rejected or soft-failed
	// StateBefore is the state before the event, resolved over its
	// prev_events (event IDs). Needed for Accepted, SoftFailed and
	// Backfilled events.
	StateBefore map[authrules.StateKey]string
	// ExtremitiesSeen are the room's extremities when the checks ran
	// (Service.Extremities). For an Accepted event the writer refuses with
	// ErrExtremitiesMoved when they changed since.
	ExtremitiesSeen []string
	// OnBehalfOf names the origin server of an accepted event that this
	// server took as the resident server (send_join, send_leave): the
	// outbound queue then sends it to the room's other servers, which the
	// origin may not reach. Recorded in the event's own write.
	OnBehalfOf string
}

// ErrExtremitiesMoved refuses an accepted event whose checks ran against
// extremities that have moved since: the caller re-runs its checks (current
// state may have changed) and submits again.
var ErrExtremitiesMoved = errors.New("the room's forward extremities moved")

// PersistInbound stores another server's event as its kind says and
// returns its position (0 for events without one). An event already stored
// is not stored twice: its position is returned, except that an outlier may
// be stored again as accepted or backfilled, taking its place in the DAG.
//
// The writer never waits on the network: everything it needs is in in or
// in the store. For an accepted event whose state before differs from the
// current state (a fork), the new current state is the resolution of the
// two, and only what changed is written (current_state_deltas, the commit
// notice).
func (s *Service) PersistInbound(ctx context.Context, in InboundEvent) (int64, error) {
	if in.Event == nil {
		return 0, fmt.Errorf("%w: no event", ErrInvalid)
	}
	if in.Kind < Accepted || in.Kind > Backfilled {
		return 0, fmt.Errorf("%w: unknown inbound kind %d", ErrInvalid, in.Kind)
	}
	if len(in.Raw) == 0 {
		in.Raw = in.Event.Raw
	}
	var pos int64
	err := s.submit(ctx, "", func(ctx context.Context, b *batch) error {
		var err error
		pos, err = b.persistInbound(ctx, in, false)
		return err
	})
	return pos, err
}

// ErrWouldFork refuses, in PersistInboundBatch, an accepted event after the
// first whose state before is not the room's current state: storing it
// would fork the room, which the checks of the events after it did not
// foresee.
var ErrWouldFork = errors.New("the event's state before is not the room's current state")

// PersistInboundBatch stores one room's inbound events in order, in one
// writer job (one commit), and returns the positions of those it stored: a
// prefix of ins. It stops at the first event PersistInbound would refuse
// (ErrExtremitiesMoved), or, after the first, at an accepted event that
// would fork the room (ErrWouldFork), and returns why; the events from
// there on are not stored. Another server's transaction carries up to 50
// events of a room: stored one job each, their commits were most of the
// time they took to get in.
func (s *Service) PersistInboundBatch(ctx context.Context, ins []InboundEvent) ([]int64, error) {
	for i := range ins {
		in := &ins[i]
		if in.Event == nil {
			return nil, fmt.Errorf("%w: no event", ErrInvalid)
		}
		if in.Kind < Accepted || in.Kind > Backfilled {
			return nil, fmt.Errorf("%w: unknown inbound kind %d", ErrInvalid, in.Kind)
		}
		if len(in.Raw) == 0 {
			in.Raw = in.Event.Raw
		}
	}
	var pos []int64
	var stop error
	err := s.submitCost(ctx, "", len(ins), func(ctx context.Context, b *batch) error {
		pos, stop = pos[:0], nil
		for i, in := range ins {
			p, err := b.persistInbound(ctx, in, i > 0)
			if errors.Is(err, ErrExtremitiesMoved) || errors.Is(err, ErrWouldFork) {
				// Refused before it wrote anything: the events before it
				// commit.
				stop = err
				break
			}
			if err != nil {
				return err // the job fails: none of it is stored
			}
			pos = append(pos, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return pos, stop
}

// persistInbound stores in. With strict, an accepted event whose state
// before differs from the current state is refused with ErrWouldFork
// before anything is written.
func (b *batch) persistInbound(ctx context.Context, in InboundEvent, strict bool) (int64, error) {
	ev := in.Event
	rs, err := b.room(ctx, ev.RoomID)
	if err != nil {
		return 0, err
	}
	have, err := b.tx.EventsByID(ctx, []string{ev.ID})
	if err != nil {
		return 0, dbErr(err)
	}
	if len(have) > 0 {
		h := have[0]
		if h.Kind != dag.Outlier || in.Kind == Outlier || in.Kind == Rejected || in.Kind == SoftFailed {
			return h.Pos, nil // already stored
		}
		if err := b.tx.DeleteUnlisted(ctx, ev.ID); err != nil {
			return 0, dbErr(err)
		}
	}
	now := b.s.cfg.Now().UnixMilli()
	unlisted := func(kind dag.UnlistedKind, group int64) (int64, error) {
		if err := b.tx.InsertUnlisted(ctx, dag.UnlistedEvent{EventID: ev.ID, RoomID: rs.id, Kind: kind, Reason: in.Reason,
			Depth: ev.Depth, StateGroup: group, PrevIDs: ev.PrevEvents, AuthIDs: ev.AuthEvents, PDU: in.Raw, ReceivedTS: now}); err != nil {
			return 0, dbErr(err)
		}
		return 0, nil
	}
	switch in.Kind {
	case Outlier:
		return unlisted(dag.Outlier, 0)
	case Rejected:
		// A rejected event never takes effect, so the state after it is
		// the state before it: an event built on it is checked against
		// that (as Synapse does), instead of waiting for ever for a state
		// no one can supply.
		if in.StateBefore == nil {
			return unlisted(dag.Rejected, 0)
		}
		before, err := b.stateAfterInbound(ctx, rs, InboundEvent{Event: ev, StateBefore: in.StateBefore}, false)
		if err != nil {
			return 0, err
		}
		return unlisted(dag.Rejected, before.group)
	case SoftFailed:
		after, err := b.stateAfterInbound(ctx, rs, in, true)
		if err != nil {
			return 0, err
		}
		return unlisted(dag.SoftFailed, after.group)
	case Backfilled:
		after, err := b.stateAfterInbound(ctx, rs, in, true)
		if err != nil {
			return 0, err
		}
		pos := b.nextBackfillPos()
		if err := b.insertInbound(ctx, rs, ev, in.Raw, pos, after.group); err != nil {
			return 0, err
		}
		return pos, nil
	}

	// Accepted.
	if !sameSet(in.ExtremitiesSeen, rs.extrem) {
		return 0, ErrExtremitiesMoved
	}
	linear, err := b.linearAfter(ctx, rs, in)
	if err != nil {
		return 0, err
	}
	var current dag.StateMap
	var after groupState
	forks := false
	if !linear.ok {
		current = make(dag.StateMap, len(rs.state))
		for k, e := range rs.state {
			current[dag.StateTuple(k)] = e.ev.ID
		}
		before := make(dag.StateMap, len(in.StateBefore))
		for k, id := range in.StateBefore {
			before[dag.StateTuple(k)] = id
		}
		forks = !maps.Equal(current, before)
		if strict && forks {
			return 0, ErrWouldFork
		}
		if after, err = b.stateAfterInbound(ctx, rs, in, true); err != nil {
			return 0, err
		}
	} else {
		after = groupState{group: linear.group, hops: linear.hops}
	}
	pos := b.nextPos()
	// A federated event counts in unread badges and pushes as a local one
	// does, judged against the state before it.
	cls := classify(ev, rs)
	row, err := b.insertInboundRow(ctx, rs, ev, in.Raw, pos, after.group, cls)
	if err != nil {
		return 0, err
	}
	thread, err := b.recordCounting(ctx, rs, row, ev, cls)
	if err != nil {
		return 0, err
	}
	if in.OnBehalfOf != "" {
		if err := b.tx.MarkSendOnBehalf(ctx, pos, in.OnBehalfOf); err != nil {
			return 0, dbErr(err)
		}
	}
	if err := b.advanceExtremitiesTx(ctx, rs, ev); err != nil {
		return 0, err
	}
	if linear.ok {
		if ev.StateKey != nil {
			if err := b.applyOwnState(ctx, rs, pos, ev, linear.group, linear.hops); err != nil {
				return 0, err
			}
		}
	} else if err := b.changeCurrentStateResolved(ctx, rs, pos, ev, current, after, forks); err != nil {
		return 0, err
	}
	// The notifier routes on the membership the room now holds for the
	// event's target: the event's own unless it lost state resolution.
	// (Members that resolution changed otherwise are in Commit.State.)
	var membership string
	if ev.Type == "m.room.member" && ev.StateKey != nil {
		membership = rs.membership(*ev.StateKey)
	}
	b.commit.Events = append(b.commit.Events, CommittedEvent{
		RoomID: rs.id, Pos: pos, Type: ev.Type, StateKey: ev.StateKey, Membership: membership, Sender: ev.Sender,
		Notify: cls.Notify, RoomMention: cls.RoomMention, Mentions: cls.Mentions, Thread: thread,
	})
	return pos, nil
}

// changeCurrentStateResolved moves the current state after an accepted
// event by the full path: to the state after it, or on a fork to the
// resolution of that and the current state.
func (b *batch) changeCurrentStateResolved(ctx context.Context, rs *roomState, pos int64, ev *pdu.Event, current dag.StateMap, after groupState, forks bool) error {
	next := after.state
	if forks {
		// A fork: resolve current state against the state after the event.
		sets := []stateres.StateMap{toStateres(current), toStateres(after.state)}
		resolved, err := stateres.Resolve(ctx, rs.version, sets, &txLoader{b: b, version: rs.version})
		if err != nil {
			return &txError{err: fmt.Errorf("resolve state of %s: %w", rs.id, err)}
		}
		next = make(dag.StateMap, len(resolved))
		for k, id := range resolved {
			next[dag.StateTuple(k)] = id
		}
	}
	return b.changeCurrentState(ctx, rs, pos, current, next, after, ev)
}

// linearState is linearAfter's answer: when ok, the event extends the
// room's current state, and group (hops deltas above a snapshot) holds
// the state after it.
type linearState struct {
	ok    bool
	group int64
	hops  int
}

// linearAfter handles the common case of an accepted event in O(1) rather
// than O(state): its one prev event holds the room's current state group,
// so the state before it is the current state (the checks resolved it
// over that one prev event) and nothing forks. The state after it is then
// the room's group with the event's own key changed: one delta row on the
// room's group, and no whole-state map built, read or compared. ok is
// false otherwise (several prev events, a prev event elsewhere in the DAG,
// a room without state groups, a snapshot due): the full path resolves.
func (b *batch) linearAfter(ctx context.Context, rs *roomState, in InboundEvent) (linearState, error) {
	ev := in.Event
	if rs.group == 0 || len(ev.PrevEvents) != 1 || len(in.StateBefore) != len(rs.state) {
		return linearState{}, nil
	}
	prevs, err := b.tx.EventsByID(ctx, ev.PrevEvents)
	if err != nil {
		return linearState{}, dbErr(err)
	}
	if len(prevs) != 1 || prevs[0].Kind != "" || prevs[0].StateGroup != rs.group {
		return linearState{}, nil
	}
	if ev.StateKey == nil {
		return linearState{ok: true, group: rs.group, hops: rs.groupHops}, nil
	}
	if rs.groupHops+1 >= maxGroupHops {
		return linearState{}, nil // a snapshot is due: groupFor writes it from the whole state
	}
	id := b.nextGroup()
	delta := []dag.StateDelta{{Type: ev.Type, StateKey: *ev.StateKey, EventID: ev.ID}}
	if err := b.tx.InsertStateGroup(ctx, dag.StateGroupRow{ID: id, RoomID: rs.id, Parent: rs.group, Hops: rs.groupHops + 1}, delta, nil); err != nil {
		return linearState{}, dbErr(err)
	}
	return linearState{ok: true, group: id, hops: rs.groupHops + 1}, nil
}

// applyOwnState makes ev, a state event that extends the current state
// (linearAfter), current: its one row, the room's group, the cache and
// the commit notice, as changeCurrentState does for a whole state.
func (b *batch) applyOwnState(ctx context.Context, rs *roomState, pos int64, ev *pdu.Event, group int64, hops int) error {
	key := authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}
	c := dag.CurrentChange{Type: key.Type, StateKey: key.StateKey, EventID: ev.ID, Sender: ev.Sender}
	if key.Type == "m.room.member" {
		c.Membership = membershipOf(ev.Content)
	}
	if err := b.tx.ApplyCurrentState(ctx, rs.id, pos, []dag.CurrentChange{c}); err != nil {
		return dbErr(err)
	}
	b.setGroup(rs, group, hops)
	b.setState(rs, key, &stateEntry{ev: ev, pos: pos})
	b.commit.State = append(b.commit.State, StateChange{RoomID: rs.id, Pos: pos, Type: c.Type, StateKey: c.StateKey, EventID: c.EventID, Membership: c.Membership})
	return nil
}

// groupState is a state with the group that holds it.
type groupState struct {
	state dag.StateMap
	group int64
	hops  int
}

// stateAfterInbound computes the state after an inbound event (its
// StateBefore, plus itself when withSelf) and writes its group, as a delta
// on the group of its first prev_event that has one.
func (b *batch) stateAfterInbound(ctx context.Context, rs *roomState, in InboundEvent, withSelf bool) (groupState, error) {
	ev := in.Event
	if in.StateBefore == nil {
		return groupState{}, fmt.Errorf("%w: the state before %s is needed", ErrInvalid, ev.ID)
	}
	state := make(dag.StateMap, len(in.StateBefore)+1)
	for k, id := range in.StateBefore {
		state[dag.StateTuple(k)] = id
	}
	if withSelf && ev.StateKey != nil {
		state[dag.StateTuple{Type: ev.Type, StateKey: *ev.StateKey}] = ev.ID
	}
	var parent int64
	var parentState dag.StateMap
	var parentHops int
	if len(ev.PrevEvents) > 0 {
		prevs, err := b.tx.EventsByID(ctx, ev.PrevEvents)
		if err != nil {
			return groupState{}, dbErr(err)
		}
		for _, p := range prevs {
			if p.StateGroup != 0 && p.Kind != dag.Rejected {
				parent = p.StateGroup
				break
			}
		}
	}
	if parent != 0 {
		var err error
		if parentState, parentHops, err = b.tx.StateGroupState(ctx, parent); err != nil {
			return groupState{}, dbErr(err)
		}
	}
	group, hops, err := b.groupFor(ctx, rs.id, state, parent, parentState, parentHops)
	if err != nil {
		return groupState{}, err
	}
	return groupState{state: state, group: group, hops: hops}, nil
}

// insertInbound writes an inbound event's row, with its edges (never making
// it current state itself).
func (b *batch) insertInbound(ctx context.Context, rs *roomState, ev *pdu.Event, raw []byte, pos, group int64) error {
	_, err := b.insertInboundRow(ctx, rs, ev, raw, pos, group, pushrules.Class{})
	return err
}

// insertInboundRow is insertInbound for an event that may count in unread
// counts (cls), returning the stored row.
func (b *batch) insertInboundRow(ctx context.Context, rs *roomState, ev *pdu.Event, raw []byte, pos, group int64, cls pushrules.Class) (*storage.Event, error) {
	row := &storage.Event{
		Pos: pos, EventID: ev.ID, RoomID: rs.id, Type: ev.Type, StateKey: ev.StateKey, Sender: ev.Sender,
		Depth: ev.Depth, OriginTS: ev.OriginServerTS, Client: clientJSON(ev), StateGroup: group, NotCurrent: true, PrevIDs: ev.PrevEvents, AuthIDs: ev.AuthEvents,
		Notify: cls.Notify, RoomMention: cls.RoomMention,
	}
	if ev.Type == "m.room.member" {
		row.Membership = membershipOf(ev.Content)
	}
	if err := b.tx.InsertEvent(ctx, row, raw); err != nil {
		return nil, dbErr(err)
	}
	return row, nil
}

// changeCurrentState moves the room's current state from current to next:
// the rows and their deltas at pos, the cached state, the room's group and
// the commit notice. known are events the caller holds parsed (the event
// stored, a join's whole state): only the others are read back and parsed.
func (b *batch) changeCurrentState(ctx context.Context, rs *roomState, pos int64, current, next dag.StateMap, after groupState, known ...*pdu.Event) error {
	var changes []dag.CurrentChange
	var added []string
	for k, id := range next {
		if current[k] != id {
			changes = append(changes, dag.CurrentChange{Type: k.Type, StateKey: k.StateKey, EventID: id})
			added = append(added, id)
		}
	}
	for k := range current {
		if _, ok := next[k]; !ok {
			changes = append(changes, dag.CurrentChange{Type: k.Type, StateKey: k.StateKey})
		}
	}
	if len(changes) == 0 {
		return nil
	}
	byID := make(map[string]*pdu.Event, len(known))
	for _, ev := range known {
		byID[ev.ID] = ev
	}
	unknown := added[:0:0]
	for _, id := range added {
		if byID[id] == nil {
			unknown = append(unknown, id)
		}
	}
	events, err := b.loadEvents(ctx, rs.version, unknown)
	if err != nil {
		return err
	}
	for id, ev := range byID {
		if _, ok := events[id]; !ok {
			events[id] = ev
		}
	}
	for i := range changes {
		c := &changes[i]
		if c.EventID == "" {
			continue
		}
		ev := events[c.EventID]
		if ev == nil {
			return &txError{err: fmt.Errorf("state event %s is not stored", c.EventID)}
		}
		c.Sender = ev.Sender
		if c.Type == "m.room.member" {
			c.Membership = membershipOf(ev.Content)
		}
	}
	if err := b.tx.ApplyCurrentState(ctx, rs.id, pos, changes); err != nil {
		return dbErr(err)
	}
	group, hops := after.group, after.hops
	if !maps.Equal(next, after.state) {
		var err error
		if group, hops, err = b.groupFor(ctx, rs.id, next, after.group, after.state, after.hops); err != nil {
			return err
		}
	}
	b.setGroup(rs, group, hops)
	for _, c := range changes {
		key := authrules.StateKey{Type: c.Type, StateKey: c.StateKey}
		if c.EventID == "" {
			b.setState(rs, key, nil)
		} else {
			b.setState(rs, key, &stateEntry{ev: events[c.EventID], pos: pos})
		}
		b.commit.State = append(b.commit.State, StateChange{RoomID: rs.id, Pos: pos, Type: c.Type, StateKey: c.StateKey, EventID: c.EventID, Membership: c.Membership})
	}
	return nil
}

// loadEvents parses stored events by ID, inside the batch. Rejected events
// are left out.
func (b *batch) loadEvents(ctx context.Context, version string, ids []string) (map[string]*pdu.Event, error) {
	out := make(map[string]*pdu.Event, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	stored, err := b.tx.EventsByID(ctx, ids)
	if err != nil {
		return nil, dbErr(err)
	}
	for _, st := range stored {
		if st.Kind == dag.Rejected {
			continue
		}
		ev, err := pdu.Parse(st.PDU, version)
		if errors.Is(err, pdu.ErrBadHash) && ev != nil {
			err = nil // a redacted event
		}
		if err != nil {
			return nil, dbErr(fmt.Errorf("parse stored event %s: %w", st.EventID, err))
		}
		out[st.EventID] = ev
	}
	return out, nil
}

// txLoader gives state resolution the events it asks for, from inside the
// batch (so events the batch wrote are seen).
type txLoader struct {
	b       *batch
	version string
}

func (l *txLoader) Events(ctx context.Context, ids []string) ([]*pdu.Event, error) {
	m, err := l.b.loadEvents(ctx, l.version, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*pdu.Event, len(ids))
	for i, id := range ids {
		out[i] = m[id]
	}
	return out, nil
}

func toStateres(m dag.StateMap) stateres.StateMap {
	out := make(stateres.StateMap, len(m))
	for k, id := range m {
		out[authrules.StateKey(k)] = id
	}
	return out
}

// sameSet reports whether ids name exactly the extremities xs.
func sameSet(ids []string, xs []dag.Extremity) bool {
	if len(ids) != len(xs) {
		return false
	}
	for _, x := range xs {
		found := false
		for _, id := range ids {
			if id == x.EventID {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Read side for the inbound pipeline. These read committed data only; the
// writer re-checks extremities when it persists.

// Extremities returns the room's forward extremities, deepest first.
func (s *Service) Extremities(ctx context.Context, roomID string) ([]dag.Extremity, error) {
	return s.store.Extremities(ctx, roomID)
}

// ErrNoState marks an event without a state (an outlier, a rejected event
// stored without the state before it, one not stored).
var ErrNoState = errors.New("no state is known for the event")

// StateAfterEvent returns the room state after an event (accepted,
// backfilled or soft-failed), from its state group; for a rejected event
// stored with the state before it, that state.
func (s *Service) StateAfterEvent(ctx context.Context, eventID string) (stateres.StateMap, error) {
	stored, err := s.store.EventsByID(ctx, []string{eventID})
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 || stored[0].Kind == dag.Outlier || (stored[0].Kind == dag.Rejected && stored[0].StateGroup == 0) {
		return nil, fmt.Errorf("%w: %s", ErrNoState, eventID)
	}
	if stored[0].StateGroup == 0 {
		// Written before state groups: linear history, read by position.
		m, err := s.store.StateMapAtPos(ctx, stored[0].RoomID, stored[0].Pos)
		if err != nil {
			return nil, err
		}
		return toStateres(m), nil
	}
	m, _, err := s.store.StateGroupState(ctx, stored[0].StateGroup)
	if err != nil {
		return nil, err
	}
	return toStateres(m), nil
}

// EventsByID returns stored events, listed or unlisted, with their kind
// ("" for accepted and backfilled events); IDs not stored are left out.
func (s *Service) EventsByID(ctx context.Context, ids []string) ([]dag.StoredPDU, error) {
	return s.store.EventsByID(ctx, ids)
}

// StateLoader returns a stateres.Loader over the committed store, for the
// pipeline's own resolutions. Rejected events load as nil, as resolution
// expects.
func (s *Service) StateLoader(roomVersion string) stateres.Loader {
	return storeLoader{s: s.store, version: roomVersion}
}

type storeLoader struct {
	s       Store
	version string
}

func (l storeLoader) Events(ctx context.Context, ids []string) ([]*pdu.Event, error) {
	stored, err := l.s.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	m := make(map[string]*pdu.Event, len(stored))
	for _, st := range stored {
		if st.Kind == dag.Rejected {
			continue
		}
		ev, err := pdu.Parse(st.PDU, l.version)
		if errors.Is(err, pdu.ErrBadHash) && ev != nil {
			err = nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse stored event %s: %w", st.EventID, err)
		}
		m[st.EventID] = ev
	}
	out := make([]*pdu.Event, len(ids))
	for i, id := range ids {
		out[i] = m[id]
	}
	return out, nil
}
