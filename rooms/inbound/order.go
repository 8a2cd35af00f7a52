package inbound

import (
	"cmp"
	"encoding/json"
	"slices"

	"github.com/parley-im/parley/rooms/pdu"
)

// ParseRoomEvents parses raws (events another server sent: missing events,
// state, auth chains, backfill) for version, keeping the events of roomID,
// each once. An event whose content hash fails comes back redacted, as the
// checks take it; one that does not parse is left out.
func ParseRoomEvents(raws []json.RawMessage, version, roomID string) []*pdu.Event {
	out := make([]*pdu.Event, 0, len(raws))
	seen := make(map[string]bool, len(raws))
	for _, raw := range raws {
		e, _ := pdu.Parse(raw, version)
		if e == nil || e.RoomID != roomID || seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		out = append(out, e)
	}
	return out
}

// AuthOrder sorts evs so that each comes after those of its auth events
// that are among evs, so they can be checked in turn. An auth chain is a
// DAG; a cycle, which only a forged chain has, is broken by depth order.
func AuthOrder(evs []*pdu.Event) []*pdu.Event {
	slices.SortStableFunc(evs, func(a, b *pdu.Event) int { return cmp.Compare(a.Depth, b.Depth) })
	byID := make(map[string]*pdu.Event, len(evs))
	for _, e := range evs {
		byID[e.ID] = e
	}
	out := make([]*pdu.Event, 0, len(evs))
	state := make(map[string]int8, len(evs)) // 1 visiting, 2 done
	var visit func(e *pdu.Event)
	visit = func(e *pdu.Event) {
		if state[e.ID] != 0 {
			return
		}
		state[e.ID] = 1
		for _, a := range e.AuthEvents {
			if dep := byID[a]; dep != nil {
				visit(dep)
			}
		}
		state[e.ID] = 2
		out = append(out, e)
	}
	for _, e := range evs {
		visit(e)
	}
	return out
}
