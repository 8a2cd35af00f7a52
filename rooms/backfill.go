package rooms

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/storage"
)

// Backfill (issue 11): history from before this server joined a room,
// fetched from another server (federation/backfill), checked by the
// inbound pipeline, and stored here as backfilled events. They take
// positions below every position the server has given, never reach /sync,
// and change neither the current state nor the forward extremities.
// /messages orders them by depth (topological order) like all history.

// PersistBackfill stores one page of another server's history, checked by
// the caller, in one writer job. Each event's Kind is Backfilled or
// Rejected, with its StateBefore (the state resolved over its prev events,
// or given by the remote at a backward extremity). It returns how many
// events it stored.
//
// Within the page, deeper events get higher positions, so the stream order
// of the page agrees with its topological order; the page as a whole sits
// below everything stored before, which is right as backfill walks back in
// time. Events are written oldest first, so each state group is a delta on
// the group of its prev event. An event already held is skipped, except
// that an outlier takes its place in the history, and a state event that a
// remote join stored as history without a state group gets one.
func (s *Service) PersistBackfill(ctx context.Context, roomID string, evs []InboundEvent) (int, error) {
	for i := range evs {
		in := &evs[i]
		switch {
		case in.Event == nil:
			return 0, fmt.Errorf("%w: no event", ErrInvalid)
		case in.Kind != Backfilled && in.Kind != Rejected:
			return 0, fmt.Errorf("%w: backfill of a %d event", ErrInvalid, in.Kind)
		case in.Event.RoomID != roomID:
			return 0, fmt.Errorf("%w: event %s is in room %s, not %s", ErrInvalid, in.Event.ID, in.Event.RoomID, roomID)
		case in.StateBefore == nil:
			return 0, fmt.Errorf("%w: the state before %s is needed", ErrInvalid, in.Event.ID)
		}
		if len(in.Raw) == 0 {
			in.Raw = in.Event.Raw
		}
	}
	if len(evs) == 0 {
		return 0, nil
	}
	page := slices.Clone(evs)
	slices.SortStableFunc(page, func(a, b InboundEvent) int {
		return cmp.Or(cmp.Compare(a.Event.Depth, b.Event.Depth), cmp.Compare(a.Event.ID, b.Event.ID))
	})
	var stored int
	err := s.submitCost(ctx, "", len(page)/64+1, func(ctx context.Context, b *batch) error {
		var err error
		stored, err = b.persistBackfill(ctx, roomID, page)
		return err
	})
	return stored, err
}

// persistBackfill writes page, sorted oldest first.
func (b *batch) persistBackfill(ctx context.Context, roomID string, page []InboundEvent) (int, error) {
	rs, err := b.room(ctx, roomID)
	if err != nil {
		return 0, err
	}
	ids := make([]string, len(page))
	for i, in := range page {
		ids[i] = in.Event.ID
	}
	held, err := b.tx.EventsByID(ctx, ids)
	if err != nil {
		return 0, dbErr(err)
	}
	have := make(map[string]dag.StoredPDU, len(held))
	for _, h := range held {
		have[h.EventID] = h
	}
	// Positions for the new rows: reserved newest first, so the oldest
	// event gets the lowest.
	fresh := 0
	for _, in := range page {
		if h, ok := have[in.Event.ID]; in.Kind == Backfilled && (!ok || h.Kind == dag.Outlier) {
			fresh++
		}
	}
	positions := make([]int64, fresh)
	for i := range positions {
		positions[i] = b.nextBackfillPos()
	}
	next := fresh - 1
	now := b.s.cfg.Now().UnixMilli()
	stored := 0
	// The state after the last event written, so the next event of the
	// page (whose prev event it usually is) needs no read of its parent
	// group. Only one is kept: a room's state can be big.
	var lastID string
	var last groupState
	remember := func(id string, after groupState) { lastID, last = id, after }
	stateAfter := func(in InboundEvent, withSelf bool) (groupState, error) {
		if len(in.Event.PrevEvents) == 0 || in.Event.PrevEvents[0] != lastID {
			return b.stateAfterInbound(ctx, rs, in, withSelf)
		}
		parent := last
		state := make(dag.StateMap, len(in.StateBefore)+1)
		for k, id := range in.StateBefore {
			state[dag.StateTuple(k)] = id
		}
		if withSelf && in.Event.StateKey != nil {
			state[dag.StateTuple{Type: in.Event.Type, StateKey: *in.Event.StateKey}] = in.Event.ID
		}
		group, hops, err := b.groupFor(ctx, rs.id, state, parent.group, parent.state, parent.hops)
		if err != nil {
			return groupState{}, err
		}
		return groupState{state: state, group: group, hops: hops}, nil
	}
	for _, in := range page {
		ev := in.Event
		h, ok := have[ev.ID]
		switch {
		case ok && h.Kind == "" && in.Kind == Backfilled && h.StateGroup == 0 && h.Pos < 0:
			// A join's state event, stored as history without its state:
			// now that the history around it is here, it gets it.
			after, err := stateAfter(in, true)
			if err != nil {
				return 0, err
			}
			if err := b.tx.SetEventStateGroup(ctx, ev.ID, after.group); err != nil {
				return 0, dbErr(err)
			}
			remember(ev.ID, after)
			continue
		case ok && h.Kind != dag.Outlier, ok && in.Kind == Rejected:
			continue // held already
		case ok:
			if err := b.tx.DeleteUnlisted(ctx, ev.ID); err != nil {
				return 0, dbErr(err)
			}
		}
		if in.Kind == Rejected {
			before, err := stateAfter(InboundEvent{Event: ev, StateBefore: in.StateBefore}, false)
			if err != nil {
				return 0, err
			}
			remember(ev.ID, before)
			if err := b.tx.InsertUnlisted(ctx, dag.UnlistedEvent{EventID: ev.ID, RoomID: rs.id, Kind: dag.Rejected, Reason: in.Reason,
				Depth: ev.Depth, StateGroup: before.group, PrevIDs: ev.PrevEvents, AuthIDs: ev.AuthEvents, PDU: in.Raw, ReceivedTS: now}); err != nil {
				return 0, dbErr(err)
			}
			stored++
			continue
		}
		after, err := stateAfter(in, true)
		if err != nil {
			return 0, err
		}
		if err := b.insertInbound(ctx, rs, ev, in.Raw, positions[next], after.group); err != nil {
			return 0, err
		}
		remember(ev.ID, after)
		next--
		stored++
	}
	return stored, nil
}

// historyOf is the room's history visibility at e. Events with negative
// positions (history stored before the join, or backfilled later) did not
// arrive in the order they happened, so for them the visibility change in
// force is the last one before them in topological order (depth, then
// position), as /messages orders them; that also finds one this server
// held from an earlier stay in the room. Live events keep stream order.
func (v *Visibility) historyOf(e *storage.Event) string {
	if e.Pos >= 0 {
		return v.historyAt(e.Pos)
	}
	h := "shared"
	var best *storage.Event
	for i := range v.vis {
		x := &v.vis[i]
		if cmp.Or(cmp.Compare(x.Depth, e.Depth), cmp.Compare(x.Pos, e.Pos)) > 0 {
			continue
		}
		if best == nil || cmp.Or(cmp.Compare(x.Depth, best.Depth), cmp.Compare(x.Pos, best.Pos)) > 0 {
			best = x
		}
	}
	if best != nil {
		if hv := visibilityOf(best); hv != "" {
			h = hv
		}
	}
	return h
}

// visibilityOf reads an m.room.history_visibility event's setting.
func visibilityOf(e *storage.Event) string {
	return gjson.GetBytes(e.Client, "content.history_visibility").String()
}
