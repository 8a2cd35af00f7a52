package inbound

import (
	"context"
	"errors"
	"slices"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// BatchPersister is a Persister that can store several verdicts of one room
// in one write (one writer job, one commit). A Batch uses it when the
// Persister has it.
type BatchPersister interface {
	Persister
	// PersistBatch stores vs in order and returns the positions of those
	// it stored: a prefix of vs, all of them unless it stopped early. It
	// stops, storing nothing more, at the first verdict it cannot store as
	// checked: an Accepted or SoftFailed one whose ExtremitiesSeen are not
	// the room's extremities, or an Accepted one after the first whose
	// StateBefore is not the room's current state (it would fork the room,
	// and the verdicts after it were checked against the state without
	// the fork). err says why it stopped; it is nil when all were stored.
	PersistBatch(ctx context.Context, vs []*Verdict) (pos []int64, err error)
}

// Batch takes one room's PDUs of a transaction through the pipeline in
// order, and stores runs of them in one write instead of one write each.
//
// Why: one commit per PDU, and a whole-state read per PDU for check 5,
// were what bounded how fast another server's events got in. A Batch
// checks each PDU against the room as the batch's earlier PDUs leave it
// (an overlay on the Source holding the verdicts not stored yet), so the
// checks see exactly what they would see had each earlier PDU been stored
// alone. The overlay only runs ahead on the common case: an accepted event
// that extends exactly the room's extremities (a linear history), or an
// event that is rejected or soft-failed (neither moves current state). Any
// other outcome (a fork or merge, an error, missing events) first stores
// what waits and then takes the PDU through Accept as before. When the
// writer cannot store a waiting verdict as checked (the room moved on
// meanwhile, a local send for example), that PDU and those after it go
// through Accept one by one, which checks them again.
//
// A Batch is used by one goroutine, for one room, and is done after Flush.
type Batch struct {
	p       *Pipeline // the real pipeline
	ov      *overlay
	pending []pendingPDU
	pre     map[*byte]*prepared // Prepare's work, by the raw PDU's first byte
}

type pendingPDU struct {
	c    *checked
	raw  []byte
	done func(*Verdict, error)
}

// NewBatch returns an empty Batch over p.
func (p *Pipeline) NewBatch() *Batch {
	return &Batch{p: p, ov: newOverlay(p.src)}
}

// Prepare runs checks 1 and 2 (parsing, hashes, signatures) on raws, the
// PDUs the caller will Add, for a room of version, spread over the cores:
// one ed25519 verification per PDU is most of the checks' CPU, and the
// PDUs of a room are otherwise checked one after another. Add then uses
// the result for the very slice given here (the same backing array and
// length); other PDUs are checked as usual. Optional.
func (b *Batch) Prepare(ctx context.Context, version string, raws [][]byte) {
	if len(raws) < minParallel {
		return // not worth it; Add checks them as usual
	}
	evs, errs := ParseAll(raws, version)
	verify := make([]*pdu.Event, 0, len(raws))
	at := make([]int, 0, len(raws))
	for i, ev := range evs {
		if ev != nil && (errs[i] == nil || errors.Is(errs[i], pdu.ErrBadHash)) {
			verify, at = append(verify, ev), append(at, i)
		}
	}
	verrs := VerifyAll(ctx, b.p.keys, version, verify)
	if b.pre == nil {
		b.pre = make(map[*byte]*prepared, len(raws))
	}
	for i, raw := range raws {
		if len(raw) > 0 {
			b.pre[&raw[0]] = &prepared{n: len(raw), version: version, ev: evs[i], parseErr: errs[i]}
		}
	}
	for j, i := range at {
		if raw := raws[i]; len(raw) > 0 {
			b.pre[&raw[0]].verifyErr = verrs[j]
		}
	}
}

// Add checks raw, a PDU of the batch's room, and calls done with the
// verdict stored, or with Accept's error, exactly once: at once when the
// PDU is refused or taken through Accept, or later, when its verdict is
// stored with others (by a later Add or by Flush). An error is handed
// over only once everything before the PDU is stored, so the caller may
// recover from it (fetch missing events) on the stored room.
func (b *Batch) Add(ctx context.Context, raw []byte, done func(*Verdict, error)) {
	op := Pipeline{src: b.ov, keys: b.p.keys, pre: b.pre}
	c, err := op.check(ctx, "", raw, false)
	switch {
	case errors.Is(err, ErrDropped), errors.Is(err, ErrAlreadyHeld):
		// Checks 1 and 2 read nothing of the room. An event held, or
		// waiting here, needs nothing (a transaction sent again after a
		// timeout is all of these): if its waiting copy fails to store, that
		// copy's own answer, given later, is the one that counts.
		done(nil, err)
		return
	case err == nil && b.runsAhead(c):
		b.ov.add(c.verdict)
		b.pending = append(b.pending, pendingPDU{c: c, raw: raw, done: done})
		return
	}
	// Anything else is decided on the stored room, as Accept alone would.
	b.Flush(ctx)
	v, _, err := b.p.Accept(ctx, raw)
	done(v, err)
}

// runsAhead reports whether c's verdict may wait in the overlay: the
// overlay can then answer for the room with it exactly as the store would.
func (b *Batch) runsAhead(c *checked) bool {
	v := c.verdict
	switch v.Kind {
	case Rejected, SoftFailed:
		return true
	case Accepted:
		// Extending exactly the extremities: no fork, so the current state
		// after it is the state before it plus the event itself.
		return len(v.ExtremitiesSeen) == 1 && sameSet(v.ExtremitiesSeen, c.ev.PrevEvents)
	}
	return false
}

// Flush stores the verdicts waiting and calls their done functions. The
// Batch may be used again afterwards.
func (b *Batch) Flush(ctx context.Context) {
	pending := b.pending
	b.pending = nil
	b.ov = newOverlay(b.p.src)
	if len(pending) == 0 {
		return
	}
	stored := 0
	if bp, ok := b.p.persist.(BatchPersister); ok && len(pending) > 1 {
		vs := make([]*Verdict, len(pending))
		for i, pp := range pending {
			vs[i] = pp.c.verdict
		}
		pos, _ := bp.PersistBatch(ctx, vs) // a stop is handled below
		stored = len(pos)
		for i := range stored {
			pending[i].done(pending[i].c.verdict, nil)
		}
	}
	// The rest, one at a time: the first through store (which checks
	// again when the room moved), the others through Accept in full once
	// one fails, since their checks assumed it stored.
	failed := false
	for _, pp := range pending[stored:] {
		if failed {
			v, _, err := b.p.Accept(ctx, pp.raw)
			pp.done(v, err)
			continue
		}
		v, _, err := b.p.store(ctx, pp.c)
		if err != nil {
			failed = true
			if !errors.Is(err, ErrTooManyAttempts) && ctx.Err() == nil {
				// Not stored as checked: decide on the stored room.
				v, _, err = b.p.Accept(ctx, pp.raw)
			}
		}
		pp.done(v, err)
	}
}

// overlay is a Source that answers for a room as it would be with the
// pending verdicts stored. It reads the Source for everything else, and
// keeps what it read of the current state, which the pending events alone
// change while the Batch runs (the writer refuses them if the room moved).
type overlay struct {
	src     Source
	byID    map[string]*Verdict // pending verdicts
	patched StateMap            // current state keys set by pending accepted events
	// base is the current state read from src under the keys asked so far,
	// and absent the keys known to be absent; extrem the extremities with
	// the pending accepted events applied. Valid when read is true.
	base   StateMap
	absent map[authrules.StateKey]bool
	extrem []string
	read   bool
	// moved is set once a pending accepted event changed the extremities:
	// from then on the overlay's extremities are the answer.
	moved bool
}

func newOverlay(src Source) *overlay {
	return &overlay{src: src}
}

// add makes v pending: the overlay answers with it from now on.
func (o *overlay) add(v *Verdict) {
	if o.byID == nil {
		o.byID = map[string]*Verdict{}
		o.patched = StateMap{}
	}
	o.byID[v.Event.ID] = v
	if v.Kind != Accepted {
		return
	}
	ev := v.Event
	if ev.StateKey != nil {
		o.patched[authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = ev.ID
	}
	// runsAhead allows only events whose prev events are all the
	// extremities: they become the one extremity.
	o.extrem = []string{ev.ID}
	o.moved = true
}

// RoomVersion implements Source.
func (o *overlay) RoomVersion(ctx context.Context, roomID string) (string, error) {
	return o.src.RoomVersion(ctx, roomID)
}

// Events implements Source: a pending event as it will be stored.
func (o *overlay) Events(ctx context.Context, ids []string) ([]Stored, error) {
	var rest []string
	for _, id := range ids {
		if o.byID[id] == nil {
			rest = append(rest, id)
		}
	}
	var got []Stored
	if len(rest) > 0 {
		var err error
		if got, err = o.src.Events(ctx, rest); err != nil {
			return nil, err
		}
		if len(got) != len(rest) {
			return got, nil // the caller reports the Source's inconsistency
		}
	}
	if len(rest) == len(ids) {
		return got, nil
	}
	out := make([]Stored, len(ids))
	j := 0
	for i, id := range ids {
		if v := o.byID[id]; v != nil {
			out[i] = Stored{Event: v.Event, Rejected: v.Kind == Rejected}
			continue
		}
		out[i] = got[j]
		j++
	}
	return out, nil
}

// StatesAfter implements Source: after a pending accepted or soft-failed
// event its state before plus itself; after a rejected one its state
// before, as the store keeps them.
func (o *overlay) StatesAfter(ctx context.Context, ids []string) ([]StateMap, error) {
	var rest []string
	for _, id := range ids {
		if o.byID[id] == nil {
			rest = append(rest, id)
		}
	}
	var got []StateMap
	if len(rest) > 0 {
		var err error
		if got, err = o.src.StatesAfter(ctx, rest); err != nil {
			return nil, err
		}
		if len(got) != len(rest) {
			return got, nil
		}
	}
	if len(rest) == len(ids) {
		return got, nil
	}
	out := make([]StateMap, len(ids))
	j := 0
	for i, id := range ids {
		v := o.byID[id]
		if v == nil {
			out[i] = got[j]
			j++
			continue
		}
		out[i] = stateAfter(v)
	}
	return out, nil
}

// stateAfter is the state after a pending verdict's event. Verdicts share
// their StateBefore maps with the Source and each other, so a changed
// state is a copy.
func stateAfter(v *Verdict) StateMap {
	ev := v.Event
	if v.Kind == Rejected || ev.StateKey == nil {
		return v.StateBefore
	}
	k := authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}
	if id, ok := v.StateBefore[k]; ok && id == ev.ID {
		return v.StateBefore
	}
	after := make(StateMap, len(v.StateBefore)+1)
	for sk, id := range v.StateBefore {
		after[sk] = id
	}
	after[k] = ev.ID
	return after
}

// Current implements Source: the current state read from the Source (each
// key once per Batch) with the pending accepted events applied.
func (o *overlay) Current(ctx context.Context, roomID string, keys []authrules.StateKey) (StateMap, []string, error) {
	var want []authrules.StateKey
	for _, k := range keys {
		if _, ok := o.base[k]; !ok && !o.absent[k] {
			want = append(want, k)
		}
	}
	if len(want) > 0 || !o.read {
		cur, extrem, err := o.src.Current(ctx, roomID, want)
		if err != nil {
			return nil, nil, err
		}
		if !o.read {
			o.base, o.absent, o.read = StateMap{}, map[authrules.StateKey]bool{}, true
		}
		if !o.moved {
			o.extrem = extrem
		}
		for _, k := range want {
			if id, ok := cur[k]; ok {
				o.base[k] = id
			} else {
				o.absent[k] = true
			}
		}
	}
	out := make(StateMap, len(keys))
	for _, k := range keys {
		if id, ok := o.patched[k]; ok {
			out[k] = id
		} else if id, ok := o.base[k]; ok {
			out[k] = id
		}
	}
	return out, slices.Clone(o.extrem), nil
}
