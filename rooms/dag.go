package rooms

import (
	"context"
	"slices"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/rooms/pdu"
)

// The room as a DAG, on the writer's side: forward extremities, edges and
// state groups. See docs/architecture.md, "Rooms as DAGs".

// maxPrevEvents is the most prev_events a local event lists (the spec's
// limit). When a room has more extremities, the deepest are taken: they
// carry the newest history, and the shallow ones left over are merged by
// the next event.
const maxPrevEvents = 20

// maxGroupHops is how many deltas a state group may sit above its nearest
// snapshot: reading a group's state walks at most this many rows' worth of
// chain.
const maxGroupHops = 100

// prevEvents returns a new local event's prev_events (the deepest
// extremities, at most maxPrevEvents) and depth (the deepest plus one).
func (rs *roomState) prevEvents() ([]string, int64) {
	n := min(len(rs.extrem), maxPrevEvents)
	prev := make([]string, n)
	var depth int64
	for i := range n {
		prev[i] = rs.extrem[i].EventID
		depth = max(depth, rs.extrem[i].Depth)
	}
	return prev, depth + 1
}

// advanceExtremitiesTx makes ev an extremity in place of those of its
// prev_events that were; the store follows at flushDAG.
func (b *batch) advanceExtremitiesTx(ctx context.Context, rs *roomState, ev *pdu.Event) error {
	if b.extrem == nil {
		b.extrem = make(map[*roomState][]dag.Extremity, 1)
	}
	if _, ok := b.extrem[rs]; !ok {
		b.extrem[rs] = rs.extrem
		b.onUndo(func() { delete(b.extrem, rs) })
	}
	b.advanceExtremities(rs, ev)
	return nil
}

// flushDAG writes the extremities and current state group of the rooms the
// batch moved, just before the commit.
func (b *batch) flushDAG(ctx context.Context) error {
	for rs := range b.extrem {
		if len(rs.extrem) == 1 && rs.extrem[0].EventID == rs.latest {
			if rs.extremLatest {
				continue // the row already says "the latest event": nothing to write
			}
			if err := b.tx.SetExtremitiesLatest(ctx, rs.id); err != nil {
				return err
			}
			b.setExtremLatest(rs, true)
			continue
		}
		if err := b.tx.SetExtremities(ctx, rs.id, rs.extrem); err != nil {
			return err
		}
		b.setExtremLatest(rs, false)
	}
	for rs, before := range b.groups {
		if rs.group != before {
			if err := b.tx.SetRoomStateGroup(ctx, rs.id, rs.group); err != nil {
				return err
			}
		}
	}
	return nil
}

// advanceExtremities updates the cached extremities only.
func (b *batch) advanceExtremities(rs *roomState, ev *pdu.Event) {
	old := rs.extrem
	next := make([]dag.Extremity, 0, len(old)+1)
	next = append(next, dag.Extremity{EventID: ev.ID, Depth: ev.Depth})
	for _, x := range old {
		if !slices.Contains(ev.PrevEvents, x.EventID) {
			next = append(next, x)
		}
	}
	slices.SortStableFunc(next, func(a, b dag.Extremity) int {
		switch {
		case a.Depth > b.Depth:
			return -1
		case a.Depth < b.Depth:
			return 1
		}
		return 0
	})
	oldLatest := rs.latest
	rs.extrem, rs.latest = next, ev.ID // ev always takes the room's newest position
	b.onUndo(func() { rs.extrem, rs.latest = old, oldLatest })
}

// setExtremLatest notes whether the room's row stores its extremities as
// "the latest event", undone on rollback.
func (b *batch) setExtremLatest(rs *roomState, v bool) {
	if rs.extremLatest == v {
		return
	}
	rs.extremLatest = v
	b.onUndo(func() { rs.extremLatest = !v })
}

// setGroup moves the room's current state group, undone on rollback; the
// store follows at flushDAG.
func (b *batch) setGroup(rs *roomState, group int64, hops int) {
	if rs.group == group {
		return
	}
	if b.groups == nil {
		b.groups = make(map[*roomState]int64, 1)
	}
	if _, ok := b.groups[rs]; !ok {
		b.groups[rs] = rs.group
		b.onUndo(func() { delete(b.groups, rs) })
	}
	oldGroup, oldHops := rs.group, rs.groupHops
	rs.group, rs.groupHops = group, hops
	b.onUndo(func() { rs.group, rs.groupHops = oldGroup, oldHops })
}

// extendGroup writes the group of the room's current state with key (when
// not nil) set to eventID: one delta row on the current group, or a
// snapshot when there is no current group yet or the chain reached
// maxGroupHops.
func (b *batch) extendGroup(ctx context.Context, rs *roomState, key *authrules.StateKey, eventID string) (int64, int, error) {
	id := b.nextGroup()
	if rs.group == 0 || rs.groupHops+1 >= maxGroupHops || key == nil {
		snap := make(dag.StateMap, len(rs.state)+1)
		for k, e := range rs.state {
			snap[dag.StateTuple(k)] = e.ev.ID
		}
		if key != nil {
			snap[dag.StateTuple(*key)] = eventID
		}
		if err := b.tx.InsertStateGroup(ctx, dag.StateGroupRow{ID: id, RoomID: rs.id}, nil, snap); err != nil {
			return 0, 0, dbErr(err)
		}
		return id, 0, nil
	}
	d := []dag.StateDelta{{Type: key.Type, StateKey: key.StateKey, EventID: eventID}}
	hops := rs.groupHops + 1
	if err := b.tx.InsertStateGroup(ctx, dag.StateGroupRow{ID: id, RoomID: rs.id, Parent: rs.group, Hops: hops}, d, nil); err != nil {
		return 0, 0, dbErr(err)
	}
	return id, hops, nil
}

// groupFor writes (or reuses) a state group holding state, as a delta on
// the group parent (whose state is parentState, hops deep) or a snapshot.
// It returns parent itself when state equals parentState.
func (b *batch) groupFor(ctx context.Context, roomID string, state dag.StateMap, parent int64, parentState dag.StateMap, parentHops int) (int64, int, error) {
	var deltas []dag.StateDelta
	if parent != 0 {
		for k, id := range state {
			if parentState[k] != id {
				deltas = append(deltas, dag.StateDelta{Type: k.Type, StateKey: k.StateKey, EventID: id})
			}
		}
		for k := range parentState {
			if _, ok := state[k]; !ok {
				deltas = append(deltas, dag.StateDelta{Type: k.Type, StateKey: k.StateKey})
			}
		}
		if len(deltas) == 0 {
			return parent, parentHops, nil
		}
	}
	id := b.nextGroup()
	if parent == 0 || parentHops+1 >= maxGroupHops || len(deltas) > len(state)/2 {
		if err := b.tx.InsertStateGroup(ctx, dag.StateGroupRow{ID: id, RoomID: roomID}, nil, state); err != nil {
			return 0, 0, dbErr(err)
		}
		return id, 0, nil
	}
	slices.SortFunc(deltas, func(a, b dag.StateDelta) int {
		if a.Type != b.Type {
			if a.Type < b.Type {
				return -1
			}
			return 1
		}
		if a.StateKey < b.StateKey {
			return -1
		}
		if a.StateKey > b.StateKey {
			return 1
		}
		return 0
	})
	if err := b.tx.InsertStateGroup(ctx, dag.StateGroupRow{ID: id, RoomID: roomID, Parent: parent, Hops: parentHops + 1}, deltas, nil); err != nil {
		return 0, 0, dbErr(err)
	}
	return id, parentHops + 1, nil
}
