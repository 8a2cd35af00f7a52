package rooms

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// InboundStore is the room service as the inbound pipeline (rooms/inbound)
// sees it: its Source (what the checks read) and its Persister (the writer's
// PersistInbound). Federation builds its pipeline on it:
//
//	p := inbound.New(svc.InboundStore(), keyring, svc.InboundStore())
type InboundStore struct{ s *Service }

// InboundStore returns the adapter; it holds no state of its own.
func (s *Service) InboundStore() InboundStore { return InboundStore{s: s} }

var (
	_ inbound.Source         = InboundStore{}
	_ inbound.Persister      = InboundStore{}
	_ inbound.BatchPersister = InboundStore{}
)

// RoomVersion implements inbound.Source.
func (a InboundStore) RoomVersion(ctx context.Context, roomID string) (string, error) {
	r, err := a.s.store.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("%w: %s", inbound.ErrUnknownRoom, roomID)
	}
	if err != nil {
		return "", err
	}
	return r.Version, nil
}

// Events implements inbound.Source: stored events parsed for their room's
// version, outliers and rejected events marked.
func (a InboundStore) Events(ctx context.Context, ids []string) ([]inbound.Stored, error) {
	stored, err := a.s.store.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	versions := map[string]string{}
	byID := make(map[string]inbound.Stored, len(stored))
	for _, st := range stored {
		v, ok := versions[st.RoomID]
		if !ok {
			if v, err = a.RoomVersion(ctx, st.RoomID); err != nil {
				return nil, err
			}
			versions[st.RoomID] = v
		}
		ev, err := pdu.Parse(st.PDU, v)
		if errors.Is(err, pdu.ErrBadHash) && ev != nil {
			err = nil // stored as its redacted copy (check 2)
		}
		if err != nil {
			return nil, fmt.Errorf("parse stored event %s: %w", st.EventID, err)
		}
		byID[st.EventID] = inbound.Stored{Event: ev, Rejected: st.Kind == dag.Rejected, Outlier: st.Kind == dag.Outlier}
	}
	out := make([]inbound.Stored, len(ids))
	for i, id := range ids {
		out[i] = byID[id]
	}
	return out, nil
}

// StatesAfter implements inbound.Source from the events' state groups; nil
// where no state is known (outliers, events not held).
func (a InboundStore) StatesAfter(ctx context.Context, ids []string) ([]inbound.StateMap, error) {
	out := make([]inbound.StateMap, len(ids))
	for i, id := range ids {
		st, err := a.s.StateAfterEvent(ctx, id)
		if errors.Is(err, ErrNoState) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[i] = st
	}
	return out, nil
}

// Current implements inbound.Source. The extremities are read before the
// state: every accepted event moves the extremities, so if the state read
// is newer than them the writer refuses the verdict (ErrExtremitiesMoved)
// and the checks run again; they are never paired with an older state.
func (a InboundStore) Current(ctx context.Context, roomID string, keys []authrules.StateKey) (inbound.StateMap, []string, error) {
	xs, err := a.s.store.Extremities(ctx, roomID)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(xs))
	for i, x := range xs {
		ids[i] = x.EventID
	}
	tuples := make([]dag.StateTuple, len(keys))
	for i, k := range keys {
		tuples[i] = dag.StateTuple(k)
	}
	// Only the keys asked for: a whole-state read per checked event cost
	// O(members) in a big room.
	cur, err := a.s.store.CurrentStateKeys(ctx, roomID, tuples)
	if err != nil {
		return nil, nil, err
	}
	state := make(inbound.StateMap, len(cur))
	for k, id := range cur {
		state[authrules.StateKey(k)] = id
	}
	return state, ids, nil
}

// Persist implements inbound.Persister through the writer.
func (a InboundStore) Persist(ctx context.Context, v *inbound.Verdict) (int64, error) {
	kind, err := inboundKind(v.Kind)
	if err != nil {
		return 0, err
	}
	pos, err := a.s.PersistInbound(ctx, InboundEvent{Raw: v.Raw, Event: v.Event, Kind: kind, Reason: v.Reason,
		StateBefore: v.StateBefore, ExtremitiesSeen: v.ExtremitiesSeen})
	if errors.Is(err, ErrExtremitiesMoved) {
		return 0, fmt.Errorf("%w: %w", inbound.ErrExtremitiesMoved, err)
	}
	return pos, err
}

// PersistBatch implements inbound.BatchPersister through one writer job
// (PersistInboundBatch).
func (a InboundStore) PersistBatch(ctx context.Context, vs []*inbound.Verdict) ([]int64, error) {
	ins := make([]InboundEvent, len(vs))
	for i, v := range vs {
		kind, err := inboundKind(v.Kind)
		if err != nil {
			return nil, err
		}
		ins[i] = InboundEvent{Raw: v.Raw, Event: v.Event, Kind: kind, Reason: v.Reason,
			StateBefore: v.StateBefore, ExtremitiesSeen: v.ExtremitiesSeen}
	}
	pos, err := a.s.PersistInboundBatch(ctx, ins)
	if errors.Is(err, ErrExtremitiesMoved) || errors.Is(err, ErrWouldFork) {
		return pos, fmt.Errorf("%w: %w", inbound.ErrExtremitiesMoved, err)
	}
	return pos, err
}

// inboundKind maps the pipeline's verdict to how the writer stores the
// event; both persisters (InboundStore and a join's behalfPersister) use it.
func inboundKind(k inbound.Kind) (InboundKind, error) {
	switch k {
	case inbound.Accepted:
		return Accepted, nil
	case inbound.Rejected:
		return Rejected, nil
	case inbound.SoftFailed:
		return SoftFailed, nil
	case inbound.Outlier:
		return Outlier, nil
	}
	return 0, fmt.Errorf("%w: verdict %v", ErrInvalid, k)
}
