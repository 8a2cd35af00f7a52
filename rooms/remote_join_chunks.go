package rooms

import (
	"cmp"
	"context"
	"slices"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/rooms/pdu"
)

// joinChunk is how many of a remote join's state and auth events one
// writer job stores ahead of the join itself. A 10,000-member room's
// answer stored in one job held the writer, and every other room's
// writes, for most of a second; in jobs of this size other rooms' sends
// get in between.
const joinChunk = 1000

// prestoreJoined stores the state and auth chain events of rj ahead of
// the join, joinChunk at a time, each chunk its own writer job: the state
// events as history (backfilled positions, no state group: what the
// join's own job would write for them), the rest as outliers. None of it
// is the room's visible head: the current state, the state group and the
// forward extremity move only in the join's job (persistJoined), which
// finds these events held and skips them. If the join fails after some
// chunks, what they stored are checked events of the room, which a retry
// reuses. Small answers are stored in the join's job alone; done says
// whether the events were stored here.
func (s *Service) prestoreJoined(ctx context.Context, rj RemoteJoin) (done bool, err error) {
	if len(rj.Events) <= joinChunk {
		return false, nil
	}
	inState := make(map[string]bool, len(rj.State))
	for _, id := range rj.State {
		inState[id] = true
	}
	// Newest first, as persistJoined orders them: the oldest event gets
	// the lowest position.
	evs := slices.Clone(rj.Events)
	slices.SortStableFunc(evs, func(x, y *pdu.Event) int { return cmp.Compare(y.Depth, x.Depth) })
	for start := 0; start < len(evs); start += joinChunk {
		chunk := evs[start:min(start+joinChunk, len(evs))]
		err := s.submitCost(ctx, "", len(chunk)/64+1, func(ctx context.Context, b *batch) error {
			return b.prestoreChunk(ctx, rj.RoomID, chunk, inState)
		})
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

func (b *batch) prestoreChunk(ctx context.Context, roomID string, chunk []*pdu.Event, inState map[string]bool) error {
	ids := make([]string, len(chunk))
	for i, ev := range chunk {
		ids[i] = ev.ID
	}
	held, err := b.tx.EventsByID(ctx, ids)
	if err != nil {
		return dbErr(err)
	}
	have := make(map[string]dag.StoredPDU, len(held))
	for _, h := range held {
		have[h.EventID] = h
	}
	// Only the room's ID is read of it by insertInbound: the room itself
	// (its row, its cache entry) is made by the join's job.
	rs := &roomState{id: roomID, state: map[authrules.StateKey]*stateEntry{}}
	now := b.s.cfg.Now().UnixMilli()
	for _, ev := range chunk {
		h, ok := have[ev.ID]
		switch {
		case ok && h.Kind != dag.Outlier:
			continue // held as history (or rejected) already
		case ok && !inState[ev.ID]:
			continue // an outlier, and it stays one
		case ok:
			if err := b.tx.DeleteUnlisted(ctx, ev.ID); err != nil {
				return dbErr(err)
			}
		}
		if inState[ev.ID] {
			if err := b.insertInbound(ctx, rs, ev, ev.Raw, b.nextBackfillPos(), 0); err != nil {
				return err
			}
			continue
		}
		if err := b.tx.InsertUnlisted(ctx, dag.UnlistedEvent{EventID: ev.ID, RoomID: roomID, Kind: dag.Outlier,
			Depth: ev.Depth, PrevIDs: ev.PrevEvents, AuthIDs: ev.AuthEvents, PDU: ev.Raw, ReceivedTS: now}); err != nil {
			return dbErr(err)
		}
	}
	return nil
}
