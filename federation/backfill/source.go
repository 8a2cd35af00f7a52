package backfill

import (
	"context"
	"maps"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/dag"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
)

// pageSource is the room as the inbound checks see it while one backfill
// page is checked, oldest first. It adds to the store's view:
//   - the page's events already checked, with the state after each, so a
//     newer event of the page is checked against them before anything is
//     written (the page is written in one writer job at the end);
//   - the state the remote gave (state_ids) before the event being
//     checked, standing for the state after each of its prev events whose
//     state is not known here (not held, an outlier, or a join's state
//     event stored without its state);
//   - no current state: check 5 (soft failure against the current state)
//     is for new events, not for history, so Current answers only the
//     create-event question of check 4.
//
// Owned by one fill; not safe for concurrent use.
type pageSource struct {
	checks.Source
	rooms Rooms
	// upgrade holds the page's events that the store lists without a
	// state (a join's state events): shown as outliers, so the checks
	// run on them in full and give them their state.
	upgrade map[string]bool
	page    map[string]pageEvent
	// given is the state before the event being checked, from the remote;
	// nil when none was fetched.
	given checks.StateMap
	// held caches the store's events (parsed) for the page: the events of
	// a page cite mostly the same auth events, which would otherwise be
	// read and parsed again for each.
	held map[string]checks.Stored
	// stateFetches is how many more state_ids requests the page may make.
	stateFetches int
}

type pageEvent struct {
	ev       *pdu.Event
	rejected bool
	after    checks.StateMap
}

func newPageSource(src checks.Source, r Rooms) *pageSource {
	return &pageSource{Source: src, rooms: r, upgrade: map[string]bool{}, page: map[string]pageEvent{}, held: map[string]checks.Stored{}}
}

// record adds a checked event of the page, so later ones see it.
func (p *pageSource) record(v *checks.Verdict) {
	ev := v.Event
	after := v.StateBefore
	rejected := v.Kind == checks.Rejected
	if !rejected && ev.StateKey != nil {
		after = maps.Clone(v.StateBefore)
		if after == nil {
			after = checks.StateMap{}
		}
		after[authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = ev.ID
	}
	p.page[ev.ID] = pageEvent{ev: ev, rejected: rejected, after: after}
}

// Events implements checks.Source.
func (p *pageSource) Events(ctx context.Context, ids []string) ([]checks.Stored, error) {
	out := make([]checks.Stored, len(ids))
	var miss []string
	for i, id := range ids {
		if st, ok := p.held[id]; ok {
			out[i] = st
		} else if _, ok := p.page[id]; !ok {
			miss = append(miss, id)
		}
	}
	if len(miss) > 0 {
		got, err := p.Source.Events(ctx, miss)
		if err != nil {
			return nil, err
		}
		for i, id := range miss {
			if i < len(got) && got[i].Event != nil {
				p.held[id] = got[i]
			}
		}
		for i, id := range ids {
			if st, ok := p.held[id]; ok {
				out[i] = st
			}
		}
	}
	for i, id := range ids {
		if pe, ok := p.page[id]; ok {
			out[i] = checks.Stored{Event: pe.ev, Rejected: pe.rejected}
		} else if p.upgrade[id] && out[i].Event != nil {
			out[i].Outlier = true
		}
	}
	return out, nil
}

// StatesAfter implements checks.Source.
func (p *pageSource) StatesAfter(ctx context.Context, ids []string) ([]checks.StateMap, error) {
	out := make([]checks.StateMap, len(ids))
	var rest []string
	for i, id := range ids {
		if pe, ok := p.page[id]; ok {
			out[i] = pe.after
		} else if !p.upgrade[id] {
			rest = append(rest, id)
		}
	}
	if len(rest) > 0 {
		stored, err := p.rooms.EventsByID(ctx, rest)
		if err != nil {
			return nil, err
		}
		known := make(map[string]bool, len(stored))
		for _, st := range stored {
			// A join's state event has a row but no state of its own.
			if !(st.Kind == "" && st.StateGroup == 0 && st.Pos < 0) && st.Kind != dag.Outlier {
				known[st.EventID] = true
			}
		}
		for i, id := range ids {
			if out[i] != nil || !known[id] {
				continue
			}
			s, err := p.Source.StatesAfter(ctx, []string{id})
			if err != nil {
				return nil, err
			}
			if len(s) == 1 {
				out[i] = s[0]
			}
		}
	}
	if p.given != nil {
		for i := range out {
			if out[i] == nil {
				out[i] = p.given
			}
		}
	}
	return out, nil
}

// Current implements checks.Source: see pageSource.
func (p *pageSource) Current(ctx context.Context, roomID string, keys []authrules.StateKey) (checks.StateMap, []string, error) {
	if len(keys) == 1 && keys[0] == (authrules.StateKey{Type: "m.room.create"}) {
		return p.Source.Current(ctx, roomID, keys)
	}
	return checks.StateMap{}, nil, nil
}
