package stateres

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"math"
	"slices"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/tidwall/gjson"
)

// errCycle is returned when auth_events form a cycle, which events whose
// IDs are hashes of their content cannot do: only a broken loader can.
var errCycle = errors.New("stateres: auth_events form a cycle")

// infinitePower is the level of a room version 12 creator (MSC4289): above
// any integer a power levels event can hold (at most 2^53-1).
const infinitePower = math.MaxInt64

// isPowerEvent reports whether ev is a power event: power levels, join
// rules, or a member event removing (leave) or banning someone other than
// its sender. The create event counts too, as Synapse and gomatrixserverlib
// count it; this only matters for forks that disagree on the create event,
// which no valid room has.
func isPowerEvent(ev *pdu.Event) bool {
	if !ev.IsState() {
		return false
	}
	switch ev.Type {
	case "m.room.power_levels", "m.room.join_rules", "m.room.create":
		return *ev.StateKey == ""
	case "m.room.member":
		m := gjson.GetBytes(ev.Content, "membership")
		return (m.Str == "leave" || m.Str == "ban") && m.Type == gjson.String && *ev.StateKey != ev.Sender
	}
	return false
}

// powerOrder returns the power events of full together with the events of
// their auth chains that are in full, in reverse topological power order:
// Kahn's algorithm over auth_events, auth events first, ties broken by the
// sender's power level (highest first, as of the event's own auth events),
// then origin_server_ts, then event ID. The result is the smallest such
// order when compared event by event, which is what the spec asks for.
//
// The graph follows auth_events only while they stay inside the full
// conflicted set, as Synapse does: an event of the set reachable only
// through an event outside it is not pulled in. (v2.1's conflicted
// subgraph puts such in-between events into the set, which closes most of
// that gap.)
func (r *resolver) powerOrder(ctx context.Context, full []string) ([]string, error) {
	inFull := make(map[string]struct{}, len(full))
	for _, id := range full {
		inFull[id] = struct{}{}
	}
	// Collect the graph: power events and their ancestors within full.
	// outdeg counts a node's auth events inside the graph; parents are
	// the nodes that list it.
	outdeg := map[string]int{}
	parents := map[string][]string{}
	var stack []string
	for _, id := range full {
		if isPowerEvent(r.event(id)) {
			if _, ok := outdeg[id]; !ok {
				outdeg[id] = 0
				stack = append(stack, id)
			}
		}
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ev := r.event(id)
		for i, a := range ev.AuthEvents {
			if _, ok := inFull[a]; !ok || slices.Contains(ev.AuthEvents[:i], a) {
				continue
			}
			outdeg[id]++
			parents[a] = append(parents[a], id)
			if _, ok := outdeg[a]; !ok {
				outdeg[a] = 0
				stack = append(stack, a)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	keys := make(map[string]orderKey, len(outdeg))
	for id := range outdeg {
		ev := r.event(id)
		lvl, err := r.powerOf(ctx, ev)
		if err != nil {
			return nil, err
		}
		keys[id] = orderKey{power: lvl, ts: ev.OriginServerTS, id: id}
	}
	h := &keyHeap{}
	for id, n := range outdeg {
		if n == 0 {
			h.items = append(h.items, keys[id])
		}
	}
	heap.Init(h)
	out := make([]string, 0, len(outdeg))
	for h.Len() > 0 {
		k := heap.Pop(h).(orderKey)
		out = append(out, k.id)
		for _, p := range parents[k.id] {
			outdeg[p]--
			if outdeg[p] == 0 {
				heap.Push(h, keys[p])
			}
		}
	}
	if len(out) != len(outdeg) {
		return nil, errCycle
	}
	return out, nil
}

// orderKey sorts power events: higher power first, then older, then by ID.
type orderKey struct {
	power int64
	ts    int64
	id    string
}

func (a orderKey) less(b orderKey) bool {
	if a.power != b.power {
		return a.power > b.power
	}
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	return a.id < b.id
}

type keyHeap struct{ items []orderKey }

func (h *keyHeap) Len() int           { return len(h.items) }
func (h *keyHeap) Less(i, j int) bool { return h.items[i].less(h.items[j]) }
func (h *keyHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *keyHeap) Push(x any)         { h.items = append(h.items, x.(orderKey)) }
func (h *keyHeap) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

// powerOf is ev's sender's power level as ev's own auth events define it:
// the users entry or users_default of its power levels event; without
// one, 100 for the room creator and 0 for anyone else. With
// creatorsInfinite (v12), creators outrank every integer.
func (r *resolver) powerOf(ctx context.Context, ev *pdu.Event) (int64, error) {
	if lvl, ok := r.power[ev.ID]; ok {
		return lvl, nil
	}
	if err := r.load(ctx, ev.AuthEvents); err != nil {
		return 0, err
	}
	var plEv, create *pdu.Event
	for _, a := range ev.AuthEvents {
		ae := r.event(a)
		if ae == nil || !ae.IsState() || *ae.StateKey != "" {
			continue
		}
		switch ae.Type {
		case "m.room.power_levels":
			plEv = ae
		case "m.room.create":
			create = ae
		}
	}
	if create == nil {
		create = r.create
	}
	lvl := int64(0)
	switch {
	case r.p.creatorsInfinite && authrules.IsCreator(r.creatorsVersion(), create, ev.Sender):
		lvl = infinitePower
	case plEv != nil:
		if pl, ok := r.parsePL(plEv); ok {
			lvl = pl.UserLevel(ev.Sender)
		}
	case authrules.IsCreator(r.p.authVersion, create, ev.Sender):
		lvl = 100
	}
	if r.power == nil {
		r.power = map[string]int64{}
	}
	r.power[ev.ID] = lvl
	return lvl, nil
}

// creatorsVersion is the room version whose creators count as infinite:
// 12, also while the tests run the v2.1 steps with version 11 auth rules.
func (r *resolver) creatorsVersion() string { return "12" }

func (r *resolver) parsePL(ev *pdu.Event) (authrules.PowerLevels, bool) {
	if p, ok := r.pl[ev.ID]; ok {
		return p.levels, p.ok
	}
	levels, err := authrules.ParsePowerLevels(ev.Content)
	if r.pl == nil {
		r.pl = map[string]parsedPL{}
	}
	r.pl[ev.ID] = parsedPL{levels: levels, ok: err == nil}
	return levels, err == nil
}

// plAuthEvent returns the power levels event among ev's auth events.
func (r *resolver) plAuthEvent(ctx context.Context, ev *pdu.Event) (*pdu.Event, error) {
	if err := r.load(ctx, ev.AuthEvents); err != nil {
		return nil, err
	}
	for _, a := range ev.AuthEvents {
		if ae := r.event(a); ae != nil && ae.Type == "m.room.power_levels" && ae.StateKeyOr("-") == "" {
			return ae, nil
		}
	}
	return nil, nil
}

// mainlineSort sorts ids in place by mainline order against the power
// levels event plID: by the position of the closest mainline event each
// reaches through power levels auth events (0 when none, 1 for the oldest
// mainline event), then origin_server_ts, then event ID.
func (r *resolver) mainlineSort(ctx context.Context, ids []string, plID string) error {
	if len(ids) == 0 {
		return nil
	}
	// The mainline: plID, its power levels auth event, and so on.
	var mainline []string
	onLine := map[string]int{}
	if plID != "" {
		if err := r.load(ctx, []string{plID}); err != nil {
			return err
		}
	}
	for ev := r.event(plID); ev != nil; {
		if _, dup := onLine[ev.ID]; dup {
			return errCycle
		}
		onLine[ev.ID] = 0
		mainline = append(mainline, ev.ID)
		next, err := r.plAuthEvent(ctx, ev)
		if err != nil {
			return err
		}
		ev = next
	}
	for i, id := range mainline {
		onLine[id] = len(mainline) - i
	}

	depth := make(map[string]int, len(ids))
	for _, id := range ids {
		d := 0
		seen := 0
		for ev := r.event(id); ev != nil; seen++ {
			if pos, ok := onLine[ev.ID]; ok {
				d = pos
				break
			}
			if seen > len(r.events) {
				return errCycle
			}
			next, err := r.plAuthEvent(ctx, ev)
			if err != nil {
				return err
			}
			ev = next
		}
		depth[id] = d
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := cmp.Compare(depth[a], depth[b]); c != 0 {
			return c
		}
		if c := cmp.Compare(r.event(a).OriginServerTS, r.event(b).OriginServerTS); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return nil
}

// iterativeAuthChecks applies each event of ids in order to partial if it
// passes the auth rules against its auth events: those it lists (absent or
// rejected ones skipped), replaced by partial's events for every key the
// auth events selection names.
func (r *resolver) iterativeAuthChecks(ctx context.Context, ids []string, partial *layered) error {
	auth := make(map[authrules.StateKey]*pdu.Event, 8)
	var fromState []string
	for _, id := range ids {
		ev := r.event(id)
		if ev == nil || !ev.IsState() {
			continue
		}
		if err := r.load(ctx, ev.AuthEvents); err != nil {
			return err
		}
		clear(auth)
		for _, a := range ev.AuthEvents {
			if ae := r.event(a); ae != nil && ae.IsState() {
				auth[authrules.StateKey{Type: ae.Type, StateKey: *ae.StateKey}] = ae
			}
		}
		needed := authrules.Needed(ev.Type, ev.StateKey, ev.Sender, ev.Content)
		fromState = fromState[:0]
		for _, k := range needed {
			if sid := partial.get(k); sid != "" {
				fromState = append(fromState, sid)
			}
		}
		if err := r.load(ctx, fromState); err != nil {
			return err
		}
		for _, k := range needed {
			if se := r.event(partial.get(k)); se != nil {
				auth[k] = se
			}
		}
		if r.p.creatorsInfinite && r.create != nil && auth[createKey] == nil {
			// v12 events do not list the create event (MSC4291).
			auth[createKey] = r.create
		}
		if authrules.Check(r.p.authVersion, ev, auth) == nil {
			partial.over[authrules.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = id
		}
	}
	return nil
}
