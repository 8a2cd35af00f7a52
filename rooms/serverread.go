package rooms

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/federation/serveracl"
	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/rooms/stateres"
	"github.com/parley-im/parley/storage"
)

// This file answers other servers' reads of room data (federation's
// event, state, state_ids, event_auth, backfill and get_missing_events).
// The access rule lives here, not in the HTTP handlers, so every route
// that hands room data to a server runs it:
//
//   - the room's m.room.server_acl must allow the server;
//   - the server must have a joined user in the room now, or may see the
//     event under the history visibility at it (world_readable; or one of
//     its users joined, or invited under "invited" and "shared").
//
// A server in the room gets events it may not see redacted, as Synapse
// does, so its DAG stays whole without their content.

// Bounds on what one server read returns.
const (
	// MaxBackfill caps backfill's limit (Synapse caps it at 100 too).
	MaxBackfill = 100
	// MaxMissingEvents caps get_missing_events' limit (Synapse: 20).
	MaxMissingEvents = 20
	// maxAuthChain bounds an auth chain walk: a real chain is a few events
	// per state key; more means something is wrong, and the answer is cut
	// rather than the server's memory.
	maxAuthChain = 100_000
)

// ServerPDU is a stored event as another server gets it: its PDU (maybe
// redacted) and its depth.
type ServerPDU struct {
	EventID string
	Depth   int64
	PDU     json.RawMessage
}

// serverRead is one server's read of one room: its ACL and current
// membership are looked up once.
type serverRead struct {
	s        *Service
	server   string
	roomID   string
	version  string
	inRoom   bool
	memberOK map[string]bool // state group or event -> visible, per event checked
}

// openServerRead checks the room exists and its ACL allows server.
func (s *Service) openServerRead(ctx context.Context, server, roomID string) (*serverRead, error) {
	room, err := s.store.GetRoom(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownRoom, roomID)
	}
	if err != nil {
		return nil, err
	}
	acl, err := s.currentACL(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if !acl.Allowed(server) {
		return nil, fmt.Errorf("%w: server %s is denied by the room's server ACL", ErrForbidden, server)
	}
	in, err := s.store.ServerInRoom(ctx, roomID, server)
	if err != nil {
		return nil, err
	}
	return &serverRead{s: s, server: server, roomID: roomID, version: room.Version, inRoom: in, memberOK: map[string]bool{}}, nil
}

// currentACL is the room's current m.room.server_acl; AllowAll without one.
func (s *Service) currentACL(ctx context.Context, roomID string) (*serveracl.ACL, error) {
	state, err := s.store.CurrentState(ctx, roomID)
	if err != nil {
		return nil, fmt.Errorf("current state of %s: %w", roomID, err)
	}
	for _, e := range state {
		if e.Type == "m.room.server_acl" && e.StateKeyOr() == "" {
			return serveracl.Parse([]byte(gjson.GetBytes(e.Client, "content").Raw)), nil
		}
	}
	return serveracl.AllowAll(), nil
}

// load returns the room's stored, non-rejected events among ids.
func (r *serverRead) load(ctx context.Context, ids []string) (map[string]dag.StoredPDU, error) {
	stored, err := r.s.store.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]dag.StoredPDU, len(stored))
	for _, st := range stored {
		if st.RoomID != r.roomID || st.Kind == dag.Rejected {
			continue
		}
		out[st.EventID] = st
	}
	return out, nil
}

// visible reports whether the server may see the event, whose stored row
// is st, under the history visibility and memberships in the state after
// it. Events without known state (outliers) are visible only to a server
// in the room.
func (r *serverRead) visible(ctx context.Context, st dag.StoredPDU) (bool, error) {
	key := st.EventID
	if st.StateGroup != 0 {
		key = fmt.Sprintf("g%d", st.StateGroup) // events sharing a state share the answer
	}
	if ok, seen := r.memberOK[key]; seen {
		return ok, nil
	}
	state, err := r.s.StateAfterEvent(ctx, st.EventID)
	if errors.Is(err, ErrNoState) {
		return r.inRoom, nil
	}
	if err != nil {
		return false, err
	}
	ok, err := r.visibleIn(ctx, state)
	if err != nil {
		return false, err
	}
	r.memberOK[key] = ok
	return ok, nil
}

// visibleIn applies the history-visibility rule for servers to a state.
func (r *serverRead) visibleIn(ctx context.Context, state stateres.StateMap) (bool, error) {
	ids := []string{}
	hvID := state[authrules.StateKey{Type: "m.room.history_visibility"}]
	if hvID != "" {
		ids = append(ids, hvID)
	}
	suffix := ":" + r.server
	for k, id := range state {
		if k.Type == "m.room.member" && strings.HasSuffix(k.StateKey, suffix) && pdu.Domain(k.StateKey) == r.server {
			ids = append(ids, id)
		}
	}
	events, err := r.s.store.EventsByID(ctx, ids)
	if err != nil {
		return false, err
	}
	hv := "shared"
	joined, invited := false, false
	for _, e := range events {
		if e.EventID == hvID {
			if v := gjson.GetBytes(e.PDU, "content.history_visibility").String(); v != "" {
				hv = v
			}
			continue
		}
		switch gjson.GetBytes(e.PDU, "content.membership").String() {
		case "join":
			joined = true
		case "invite":
			invited = true
		}
	}
	switch {
	case hv == "world_readable", joined:
		return true, nil
	case invited && (hv == "invited" || hv == "shared"):
		return true, nil
	case hv == "shared" && r.inRoom:
		return true, nil
	}
	return false, nil
}

// serve returns st as the server gets it: whole when visible, redacted
// when the server is in the room but may not see it; ok false otherwise.
func (r *serverRead) serve(ctx context.Context, st dag.StoredPDU) (ServerPDU, bool, error) {
	vis, err := r.visible(ctx, st)
	if err != nil {
		return ServerPDU{}, false, err
	}
	out := ServerPDU{EventID: st.EventID, Depth: st.Depth, PDU: st.PDU}
	switch {
	case vis:
		return out, true, nil
	case r.inRoom:
		out.PDU = redactPDU(st.PDU, r.version)
		return out, true, nil
	}
	return ServerPDU{}, false, nil
}

// redactPDU returns a PDU with its content redacted; the hashes and
// signatures still verify, since they cover the redacted form.
func redactPDU(raw []byte, version string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	typ := gjson.GetBytes(raw, "type").String()
	m["content"] = pdu.RedactContent(typ, m["content"], version)
	out, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return out
}

// ServerEvent returns one event for server (GET /event): ErrNotFound when
// not held (or rejected), ErrForbidden when the server may not see it.
func (s *Service) ServerEvent(ctx context.Context, server, eventID string) (ServerPDU, error) {
	stored, err := s.store.EventsByID(ctx, []string{eventID})
	if err != nil {
		return ServerPDU{}, err
	}
	if len(stored) == 0 || stored[0].Kind == dag.Rejected {
		return ServerPDU{}, fmt.Errorf("%w: event %s", ErrNotFound, eventID)
	}
	r, err := s.openServerRead(ctx, server, stored[0].RoomID)
	if err != nil {
		return ServerPDU{}, err
	}
	p, ok, err := r.serve(ctx, stored[0])
	if err != nil {
		return ServerPDU{}, err
	}
	if !ok {
		return ServerPDU{}, fmt.Errorf("%w: server %s may not see event %s", ErrForbidden, server, eventID)
	}
	return p, nil
}

// eventForServer loads eventID of roomID and checks that server may read
// the room's state there: in the room now, or able to see the event.
func (r *serverRead) eventForServer(ctx context.Context, eventID string) (dag.StoredPDU, error) {
	got, err := r.load(ctx, []string{eventID})
	if err != nil {
		return dag.StoredPDU{}, err
	}
	st, ok := got[eventID]
	if !ok {
		return dag.StoredPDU{}, fmt.Errorf("%w: event %s in room %s", ErrNotFound, eventID, r.roomID)
	}
	if r.inRoom {
		return st, nil
	}
	vis, err := r.visible(ctx, st)
	if err != nil {
		return dag.StoredPDU{}, err
	}
	if !vis {
		return dag.StoredPDU{}, fmt.Errorf("%w: server %s is not in room %s", ErrForbidden, r.server, r.roomID)
	}
	return st, nil
}

// ServerStateIDs returns the IDs of the room state before eventID and of
// that state's auth chain (GET /state_ids, /state).
func (s *Service) ServerStateIDs(ctx context.Context, server, roomID, eventID string) (state, authChain []string, err error) {
	r, err := s.openServerRead(ctx, server, roomID)
	if err != nil {
		return nil, nil, err
	}
	st, err := r.eventForServer(ctx, eventID)
	if err != nil {
		return nil, nil, err
	}
	before, err := s.stateBefore(ctx, r.version, st)
	if err != nil {
		return nil, nil, err
	}
	state = make([]string, 0, len(before))
	for _, id := range before {
		state = append(state, id)
	}
	// The auth chain of the state: what its events' auth_events reach,
	// the state events themselves only where another one names them.
	stateEvents, err := r.s.store.EventsByID(ctx, state)
	if err != nil {
		return nil, nil, err
	}
	var auth []string
	for _, e := range stateEvents {
		for _, a := range gjson.GetBytes(e.PDU, "auth_events").Array() {
			auth = append(auth, a.String())
		}
	}
	authChain, err = r.authChain(ctx, auth)
	if err != nil {
		return nil, nil, err
	}
	return state, authChain, nil
}

// stateBefore is the state before an event: the resolution of the states
// after its prev events (one prev: that state as it is).
func (s *Service) stateBefore(ctx context.Context, version string, st dag.StoredPDU) (stateres.StateMap, error) {
	var prevs []string
	for _, p := range gjson.GetBytes(st.PDU, "prev_events").Array() {
		prevs = append(prevs, p.String())
	}
	if len(prevs) == 0 {
		return stateres.StateMap{}, nil
	}
	sets := make([]stateres.StateMap, 0, len(prevs))
	for _, p := range prevs {
		m, err := s.StateAfterEvent(ctx, p)
		if errors.Is(err, ErrNoState) {
			return nil, fmt.Errorf("%w: the state before %s is not known here", ErrNotFound, st.EventID)
		}
		if err != nil {
			return nil, err
		}
		sets = append(sets, m)
	}
	if len(sets) == 1 {
		return sets[0], nil
	}
	return stateres.Resolve(ctx, version, sets, s.StateLoader(version))
}

// ServerAuthChain returns the IDs of eventID's full auth chain
// (GET /event_auth).
func (s *Service) ServerAuthChain(ctx context.Context, server, roomID, eventID string) ([]string, error) {
	r, err := s.openServerRead(ctx, server, roomID)
	if err != nil {
		return nil, err
	}
	st, err := r.eventForServer(ctx, eventID)
	if err != nil {
		return nil, err
	}
	var auth []string
	for _, a := range gjson.GetBytes(st.PDU, "auth_events").Array() {
		auth = append(auth, a.String())
	}
	return r.authChain(ctx, auth)
}

// authChain walks auth_events from the given events, one query per
// level, and returns every event reached (the given ones included) that
// the store holds.
func (r *serverRead) authChain(ctx context.Context, from []string) ([]string, error) {
	seen := make(map[string]bool, len(from))
	var out []string
	next := make([]string, 0, len(from))
	for _, id := range from {
		if !seen[id] {
			seen[id] = true
			next = append(next, id)
		}
	}
	for len(next) > 0 && len(out) < maxAuthChain {
		got, err := r.s.store.EventsByID(ctx, next)
		if err != nil {
			return nil, err
		}
		next = next[:0]
		for _, st := range got {
			out = append(out, st.EventID)
			for _, a := range gjson.GetBytes(st.PDU, "auth_events").Array() {
				if id := a.String(); !seen[id] {
					seen[id] = true
					next = append(next, id)
				}
			}
		}
	}
	return out, nil
}

// ServerPDUs returns the stored PDUs of ids in roomID, in the order asked,
// for a server that ServerStateIDs or ServerAuthChain already let in;
// events not held are left out.
func (s *Service) ServerPDUs(ctx context.Context, roomID string, ids []string) ([]json.RawMessage, error) {
	stored, err := s.store.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string][]byte, len(stored))
	for _, st := range stored {
		if st.RoomID == roomID {
			byID[st.EventID] = st.PDU
		}
	}
	out := make([]json.RawMessage, 0, len(ids))
	for _, id := range ids {
		if p, ok := byID[id]; ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// requireRoomAccess refuses a server that is neither in the room nor
// reading a world_readable room, for the reads that walk history.
func (r *serverRead) requireRoomAccess(ctx context.Context) error {
	if r.inRoom {
		return nil
	}
	v, err := r.s.VisibilityFor(ctx, r.roomID, "")
	if err != nil {
		return err
	}
	if v.WorldReadable() {
		return nil
	}
	return fmt.Errorf("%w: server %s is not in room %s", ErrForbidden, r.server, r.roomID)
}

// ServerBackfill walks the room's DAG back from the events in from
// (included), deepest first, and returns at most limit events the server
// may have (GET /backfill).
func (s *Service) ServerBackfill(ctx context.Context, server, roomID string, from []string, limit int) ([]ServerPDU, error) {
	limit = min(max(limit, 0), MaxBackfill)
	r, err := s.openServerRead(ctx, server, roomID)
	if err != nil {
		return nil, err
	}
	if err := r.requireRoomAccess(ctx); err != nil {
		return nil, err
	}
	return r.walkBack(ctx, from, nil, limit, 0)
}

// ServerMissingEvents walks back from the prev events of latest, stopping
// at earliest and below minDepth, and returns at most limit events, oldest
// first (POST /get_missing_events).
func (s *Service) ServerMissingEvents(ctx context.Context, server, roomID string, earliest, latest []string, limit int, minDepth int64) ([]ServerPDU, error) {
	if limit <= 0 {
		limit = 10
	}
	limit = min(limit, MaxMissingEvents)
	r, err := s.openServerRead(ctx, server, roomID)
	if err != nil {
		return nil, err
	}
	if err := r.requireRoomAccess(ctx); err != nil {
		return nil, err
	}
	got, err := r.load(ctx, latest)
	if err != nil {
		return nil, err
	}
	stop := make(map[string]bool, len(earliest)+len(latest))
	for _, id := range earliest {
		stop[id] = true
	}
	var start []string
	for _, id := range latest {
		stop[id] = true
		if st, ok := got[id]; ok {
			for _, p := range gjson.GetBytes(st.PDU, "prev_events").Array() {
				start = append(start, p.String())
			}
		}
	}
	out, err := r.walkBack(ctx, start, stop, limit, minDepth)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// walkBack visits the room's events from start along prev_events, deepest
// first, skipping stop and events below minDepth, up to limit served.
func (r *serverRead) walkBack(ctx context.Context, start []string, stop map[string]bool, limit int, minDepth int64) ([]ServerPDU, error) {
	var out []ServerPDU
	seen := map[string]bool{}
	q := &depthHeap{}
	push := func(ids []string) error {
		var want []string
		for _, id := range ids {
			if !seen[id] && !stop[id] {
				seen[id] = true
				want = append(want, id)
			}
		}
		if len(want) == 0 {
			return nil
		}
		got, err := r.load(ctx, want)
		if err != nil {
			return err
		}
		for _, st := range got {
			if st.Depth >= minDepth {
				heap.Push(q, st)
			}
		}
		return nil
	}
	if err := push(start); err != nil {
		return nil, err
	}
	for q.Len() > 0 && len(out) < limit {
		st := heap.Pop(q).(dag.StoredPDU)
		p, ok, err := r.serve(ctx, st)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, p)
		}
		var prevs []string
		for _, pe := range gjson.GetBytes(st.PDU, "prev_events").Array() {
			prevs = append(prevs, pe.String())
		}
		if err := push(prevs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// depthHeap orders events deepest first (ties by event ID, so answers are
// stable).
type depthHeap []dag.StoredPDU

func (h depthHeap) Len() int { return len(h) }
func (h depthHeap) Less(i, j int) bool {
	if h[i].Depth != h[j].Depth {
		return h[i].Depth > h[j].Depth
	}
	return h[i].EventID > h[j].EventID
}
func (h depthHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *depthHeap) Push(x any)   { *h = append(*h, x.(dag.StoredPDU)) }
func (h *depthHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
