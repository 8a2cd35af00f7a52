package stateres

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
)

// StateMap is a room state: the event ID holding each piece of state.
type StateMap = map[authrules.StateKey]string

// ErrUnsupportedVersion marks a room version this package cannot resolve.
var ErrUnsupportedVersion = errors.New("stateres: unsupported room version")

// Loader gives state resolution the events it needs. It is defined here,
// where it is used, so that any holder of events can back it.
//
// Resolution walks auth_events itself through Loader instead of asking for
// whole auth chains: it only needs the chains of the conflicted events, cut
// where they meet the unconflicted state's chain, and the walk asks for one
// batch per level of the DAG, so a store answers with one query per level.
type Loader interface {
	// Events returns the events with the given IDs, in the same order. An
	// event the caller does not hold, or has rejected, is nil: resolution
	// then treats it as absent, as the spec treats rejected events. The
	// error is for failures of the loader itself.
	Events(ctx context.Context, ids []string) ([]*pdu.Event, error)
}

// params are the knobs that distinguish the state resolution algorithms.
type params struct {
	// authVersion is the room version whose auth rules the iterative auth
	// checks apply.
	authVersion string
	// v21 turns on MSC4297: the conflicted state subgraph joins the full
	// conflicted set and the first iterative auth checks start empty.
	v21 bool
	// creatorsInfinite gives the create event's sender and
	// content.additional_creators unlimited power (MSC4289) when ordering
	// power events.
	creatorsInfinite bool
}

// paramsFor maps a room version to its algorithm.
func paramsFor(roomVersion string) (params, error) {
	switch roomVersion {
	case "10", "11":
		return params{authVersion: roomVersion}, nil
	case "12":
		return params{authVersion: roomVersion, v21: true, creatorsInfinite: true}, nil
	}
	return params{}, fmt.Errorf("%w %q", ErrUnsupportedVersion, roomVersion)
}

// Resolve returns the resolution of stateSets, the states of a room of
// roomVersion at each of the forks being merged (the states after the
// prev_events of an event, or the current states of the extremities).
// The answer does not depend on the order of stateSets. stateSets and the
// maps in it are only read; the result is a new map the caller owns.
func Resolve(ctx context.Context, roomVersion string, stateSets []StateMap, loader Loader) (StateMap, error) {
	p, err := paramsFor(roomVersion)
	if err != nil {
		return nil, err
	}
	return resolve(ctx, p, stateSets, loader)
}

func resolve(ctx context.Context, p params, stateSets []StateMap, loader Loader) (StateMap, error) {
	switch len(stateSets) {
	case 0:
		return StateMap{}, nil
	case 1:
		return copyState(stateSets[0], 0), nil
	}
	unconflicted, conflicted := separate(stateSets)
	if len(conflicted) == 0 {
		return unconflicted, nil
	}
	r := &resolver{p: p, loader: loader, events: make(map[string]*pdu.Event, 64)}
	full, err := r.fullConflictedSet(ctx, stateSets, unconflicted, conflicted)
	if err != nil {
		return nil, err
	}
	if err := r.findCreate(ctx, stateSets); err != nil {
		return nil, err
	}

	// Power events, with the parts of their auth chains in the full
	// conflicted set, in reverse topological power order.
	sortedPower, err := r.powerOrder(ctx, full)
	if err != nil {
		return nil, err
	}
	partial := &layered{over: make(StateMap, len(full))}
	if !p.v21 {
		partial.base = unconflicted
	}
	if err := r.iterativeAuthChecks(ctx, sortedPower, partial); err != nil {
		return nil, err
	}

	// The remaining events, by mainline order of the resolved power levels.
	inPower := make(map[string]struct{}, len(sortedPower))
	for _, id := range sortedPower {
		inPower[id] = struct{}{}
	}
	leftover := make([]string, 0, len(full)-len(sortedPower))
	for _, id := range full {
		if _, ok := inPower[id]; !ok {
			leftover = append(leftover, id)
		}
	}
	if err := r.mainlineSort(ctx, leftover, partial.get(plKey)); err != nil {
		return nil, err
	}
	if err := r.iterativeAuthChecks(ctx, leftover, partial); err != nil {
		return nil, err
	}

	// The unconflicted state map applies on top of everything.
	out := copyState(unconflicted, len(partial.over))
	for k, id := range partial.over {
		if _, ok := unconflicted[k]; !ok {
			out[k] = id
		}
	}
	return out, nil
}

var (
	createKey = authrules.StateKey{Type: "m.room.create"}
	plKey     = authrules.StateKey{Type: "m.room.power_levels"}
)

// separate splits the state sets into the unconflicted state map (keys
// present in every set with the same event) and the conflicted keys, each
// with its distinct event IDs in first-seen order (later sorting makes the
// order irrelevant).
func separate(sets []StateMap) (StateMap, map[authrules.StateKey][]string) {
	first := sets[0]
	unconflicted := make(StateMap, len(first))
	conflicted := map[authrules.StateKey][]string{}
	for k, id := range first {
		same := true
		for _, s := range sets[1:] {
			if other, ok := s[k]; !ok || other != id {
				same = false
				break
			}
		}
		if same {
			unconflicted[k] = id
			continue
		}
		ids := []string{id}
		for _, s := range sets[1:] {
			if other, ok := s[k]; ok && !contains(ids, other) {
				ids = append(ids, other)
			}
		}
		conflicted[k] = ids
	}
	// Keys absent from the first set are conflicted by definition.
	for _, s := range sets[1:] {
		for k, id := range s {
			if _, ok := first[k]; ok {
				continue
			}
			if !contains(conflicted[k], id) {
				conflicted[k] = append(conflicted[k], id)
			}
		}
	}
	return unconflicted, conflicted
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func copyState(s StateMap, extra int) StateMap {
	out := make(StateMap, len(s)+extra)
	for k, v := range s {
		out[k] = v
	}
	return out
}

// layered is the partially resolved state: over on top of base, so the
// unconflicted map (10,000 entries in a big room) is never copied for it.
// Owned by one resolve call.
type layered struct {
	base StateMap
	over StateMap
}

func (l *layered) get(k authrules.StateKey) string {
	if id, ok := l.over[k]; ok {
		return id
	}
	return l.base[k]
}
