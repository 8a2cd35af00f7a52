package stateres

import (
	"context"
	"fmt"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// resolver holds what one Resolve call has learnt. Owned by that call.
type resolver struct {
	p      params
	loader Loader
	// events caches every event asked for; nil marks one the loader does
	// not have (or rejected).
	events map[string]*pdu.Event
	// create is the room's create event, nil if no state set has one.
	create *pdu.Event
	// power caches each event's sender power level (powerOf).
	power map[string]int64
	// pl caches parsed power levels by event ID; ok false if malformed.
	pl map[string]parsedPL
	// missing is scratch space for load.
	missing []string
}

type parsedPL struct {
	levels authrules.PowerLevels
	ok     bool
}

// load makes sure every ID in ids is in r.events, asking the loader once
// for all that are not.
func (r *resolver) load(ctx context.Context, ids []string) error {
	r.missing = r.missing[:0]
	for _, id := range ids {
		if _, ok := r.events[id]; !ok {
			r.events[id] = nil // also dedupes ids within this batch
			r.missing = append(r.missing, id)
		}
	}
	if len(r.missing) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	got, err := r.loader.Events(ctx, r.missing)
	if err != nil {
		return fmt.Errorf("stateres: load %d events: %w", len(r.missing), err)
	}
	if len(got) != len(r.missing) {
		return fmt.Errorf("stateres: loader returned %d events for %d IDs", len(got), len(r.missing))
	}
	for i, ev := range got {
		// An event whose ID is not the one asked for is treated as absent:
		// trusting it would let a confused loader reshape the DAG.
		if ev != nil && ev.ID == r.missing[i] {
			r.events[r.missing[i]] = ev
		}
	}
	return nil
}

// event returns a loaded event, or nil.
func (r *resolver) event(id string) *pdu.Event { return r.events[id] }

// walk visits start and everything reachable from it over auth_events,
// breadth first with one load per level, skipping what stop or seen
// already hold. It adds every visited, loaded event to seen.
func (r *resolver) walk(ctx context.Context, start []string, stop, seen map[string]struct{}) error {
	frontier := make([]string, 0, len(start))
	for _, id := range start {
		if _, ok := stop[id]; ok {
			continue
		}
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		frontier = append(frontier, id)
	}
	var next []string
	for len(frontier) > 0 {
		if err := r.load(ctx, frontier); err != nil {
			return err
		}
		next = next[:0]
		for _, id := range frontier {
			ev := r.event(id)
			if ev == nil {
				delete(seen, id)
				continue
			}
			for _, a := range ev.AuthEvents {
				if _, ok := stop[a]; ok {
					continue
				}
				if _, ok := seen[a]; ok {
					continue
				}
				seen[a] = struct{}{}
				next = append(next, a)
			}
		}
		frontier, next = next, frontier
	}
	return nil
}

// fullConflictedSet returns the conflicted events, the auth difference
// and (v2.1) the conflicted state subgraph, deduplicated, limited to events
// the loader has.
//
// The auth difference counts each state set's auth chain together with the
// set's own events (which changes nothing: an event in some but not all
// sets is conflicted anyway). Everything reachable from the unconflicted
// state is in every set's chain, so it is walked once as "common" and the
// per-set walks stop there: only the conflicted events' own chains are
// walked per set.
func (r *resolver) fullConflictedSet(ctx context.Context, sets []StateMap, unconflicted StateMap, conflicted map[authrules.StateKey][]string) ([]string, error) {
	conflictedIDs := make(map[string]struct{}, 2*len(conflicted))
	for _, ids := range conflicted {
		for _, id := range ids {
			conflictedIDs[id] = struct{}{}
		}
	}
	start := make([]string, 0, len(unconflicted))
	for _, id := range unconflicted {
		start = append(start, id)
	}
	common := make(map[string]struct{}, 2*len(unconflicted))
	if err := r.walk(ctx, start, nil, common); err != nil {
		return nil, err
	}

	// count[id] is how many sets' chains (outside common) hold id.
	count := map[string]int{}
	seen := map[string]struct{}{}
	for _, s := range sets {
		start = start[:0]
		for k := range conflicted {
			if id, ok := s[k]; ok {
				start = append(start, id)
			}
		}
		clear(seen)
		if err := r.walk(ctx, start, common, seen); err != nil {
			return nil, err
		}
		for id := range seen {
			count[id]++
		}
	}

	full := make(map[string]struct{}, len(conflictedIDs)+len(count))
	for id := range conflictedIDs {
		full[id] = struct{}{}
	}
	for id, n := range count {
		if n < len(sets) {
			full[id] = struct{}{}
		}
	}
	if r.p.v21 {
		if err := r.conflictedSubgraph(ctx, conflictedIDs, full); err != nil {
			return nil, err
		}
	}
	if err := r.load(ctx, keys(full)); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(full))
	for id := range full {
		if r.event(id) != nil {
			out = append(out, id)
		}
	}
	return out, nil
}

// conflictedSubgraph adds to full every event on an auth_events path from
// one conflicted event to another (MSC4297): events reachable from a
// conflicted event that themselves reach a conflicted event.
func (r *resolver) conflictedSubgraph(ctx context.Context, conflicted, full map[string]struct{}) error {
	reach := map[string]struct{}{}
	if err := r.walk(ctx, keys(conflicted), nil, reach); err != nil {
		return err
	}
	// memo: 1 reaches a conflicted event, 2 does not, 3 being visited (a
	// cycle, which real event IDs cannot form, counts as not reaching).
	memo := make(map[string]uint8, len(reach))
	var reaches func(id string) bool
	reaches = func(id string) bool {
		switch memo[id] {
		case 1:
			return true
		case 2, 3:
			return false
		}
		memo[id] = 3
		ev := r.event(id)
		found := false
		if ev != nil {
			for _, a := range ev.AuthEvents {
				if _, ok := conflicted[a]; ok && r.event(a) != nil {
					found = true
				}
				if reaches(a) {
					found = true
				}
			}
		}
		if _, ok := conflicted[id]; ok && ev != nil {
			found = true
		}
		if found {
			memo[id] = 1
		} else {
			memo[id] = 2
		}
		return found
	}
	for id := range reach {
		if reaches(id) {
			full[id] = struct{}{}
		}
	}
	return ctx.Err()
}

// findCreate loads the room's create event from the state sets; with
// several candidates (a malformed input) the smallest ID wins, so the
// answer stays independent of the order of the sets.
func (r *resolver) findCreate(ctx context.Context, sets []StateMap) error {
	var best string
	for _, s := range sets {
		if id, ok := s[createKey]; ok && (best == "" || id < best) {
			best = id
		}
	}
	if best == "" {
		return nil
	}
	if err := r.load(ctx, []string{best}); err != nil {
		return err
	}
	r.create = r.event(best)
	return nil
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
