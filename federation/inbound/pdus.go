package inbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/parley-im/parley/federation/serveracl"
	"github.com/parley-im/parley/rooms/authrules"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/tidwall/gjson"
)

// roomBatch is one room's PDUs of a transaction, in arrival order.
type roomBatch struct {
	roomID  string
	version string
	events  []*pdu.Event
	raws    [][]byte
}

// handlePDUs groups the PDUs by room, answers at once those that cannot
// be handled (unknown room, unparseable), and runs each room's batch in
// order, rooms in parallel within the server-wide slots.
func (h *Handler) handlePDUs(ctx context.Context, origin string, raws []json.RawMessage) map[string]PDUResult {
	results := make(map[string]PDUResult, len(raws))
	var batches []*roomBatch
	byRoom := map[string]*roomBatch{}
	versions := map[string]string{}
	for _, raw := range raws {
		roomID := roomOf(raw)
		if roomID == "" {
			continue // no ID can be given to an answer
		}
		version, seen := versions[roomID]
		if !seen {
			v, err := h.cfg.Source.RoomVersion(ctx, roomID)
			if err != nil && !errors.Is(err, checks.ErrUnknownRoom) {
				h.log.Warn("federation: room version", "room", roomID, "err", err)
			}
			versions[roomID], version = v, v
		}
		if version == "" {
			continue // a room this server is not in: ignored, as Synapse does
		}
		ev, err := pdu.Parse(raw, version)
		if ev == nil {
			if id := eventIDOf(raw); id != "" {
				results[id] = PDUResult{Error: fmt.Sprintf("invalid event: %v", err)}
			}
			continue
		}
		b := byRoom[roomID]
		if b == nil {
			b = &roomBatch{roomID: roomID, version: version}
			byRoom[roomID] = b
			batches = append(batches, b)
		}
		b.events = append(b.events, ev)
		b.raws = append(b.raws, raw)
	}

	var mu sync.Mutex // guards results below
	var wg sync.WaitGroup
	for _, b := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := h.runRoom(ctx, origin, b)
			mu.Lock()
			for id, r := range out {
				results[id] = r
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return results
}

// roomOf is the room a raw PDU names: its room_id, or for a room version
// 12 create event the room its ID derives.
func roomOf(raw []byte) string {
	res := gjson.GetManyBytes(raw, "room_id", "type", "content.room_version")
	if res[0].Type == gjson.String {
		return res[0].Str
	}
	if res[1].Str == "m.room.create" && res[2].Type == gjson.String && pdu.RoomIDFromCreate(res[2].Str) {
		if ev, err := pdu.Parse(raw, res[2].Str); ev != nil {
			_ = err
			return ev.RoomID
		}
	}
	return ""
}

// eventIDOf is the ID of a PDU that does not parse, when the sender put
// one in (room versions 1 and 2 did); otherwise none can be computed.
func eventIDOf(raw []byte) string {
	if id := gjson.GetBytes(raw, "event_id"); id.Type == gjson.String && pdu.ValidEventID(id.Str) {
		return id.Str
	}
	return ""
}

// runRoom handles b's events one at a time, under the room's lock and one
// of the server-wide slots.
func (h *Handler) runRoom(ctx context.Context, origin string, b *roomBatch) map[string]PDUResult {
	out := make(map[string]PDUResult, len(b.events))
	unlock := h.rooms.lock(b.roomID)
	defer unlock()
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	case <-ctx.Done():
		for _, ev := range b.events {
			out[ev.ID] = PDUResult{Error: "server busy: " + ctx.Err().Error()}
		}
		return out
	}
	acl, err := h.roomACL(ctx, b.roomID)
	for i, ev := range b.events {
		switch {
		case err != nil:
			out[ev.ID] = PDUResult{Error: "internal error reading the room's server ACL"}
			continue
		case !acl.Allowed(origin):
			out[ev.ID] = PDUResult{Error: fmt.Sprintf("server %s is denied by the room's server ACL", origin)}
			h.count.countPDU(out[ev.ID], true)
			continue
		}
		out[ev.ID] = h.handlePDU(ctx, origin, b.version, ev, b.raws[i])
		h.count.countPDU(out[ev.ID], false)
		if ev.Type == "m.room.server_acl" && ev.StateKey != nil && *ev.StateKey == "" {
			acl, err = h.roomACL(ctx, b.roomID) // it may have changed
		}
	}
	return out
}

// roomACL reads the room's current m.room.server_acl; a room without one
// allows every server.
func (h *Handler) roomACL(ctx context.Context, roomID string) (*serveracl.ACL, error) {
	k := authrules.StateKey{Type: "m.room.server_acl"}
	cur, _, err := h.cfg.Source.Current(ctx, roomID, []authrules.StateKey{k})
	if err != nil {
		return nil, fmt.Errorf("current server ACL of %s: %w", roomID, err)
	}
	id, ok := cur[k]
	if !ok {
		return serveracl.AllowAll(), nil
	}
	stored, err := h.cfg.Source.Events(ctx, []string{id})
	if err != nil {
		return nil, fmt.Errorf("server ACL event %s: %w", id, err)
	}
	if len(stored) != 1 || stored[0].Event == nil {
		return nil, fmt.Errorf("server ACL event %s of %s is not held", id, roomID)
	}
	return serveracl.Parse(stored[0].Event.Content), nil
}

// handlePDU takes one PDU through the pipeline, filling what it lacks
// from origin first when the pipeline names missing events.
func (h *Handler) handlePDU(ctx context.Context, origin, version string, ev *pdu.Event, raw []byte) PDUResult {
	v, err := h.acceptFilling(ctx, origin, version, ev, raw)
	r := resultOf(v, err)
	if r.Error == "internal error" {
		h.log.Error("federation: inbound PDU", "origin", origin, "event", ev.ID, "err", err)
	}
	return r
}

func resultOf(v *checks.Verdict, err error) PDUResult {
	switch {
	case err == nil && v.Kind == checks.Rejected:
		return PDUResult{Error: "rejected: " + v.Reason}
	case err == nil, errors.Is(err, checks.ErrAlreadyHeld):
		return PDUResult{}
	case errors.Is(err, checks.ErrDropped), errors.Is(err, checks.ErrMissing), errors.Is(err, errGap):
		return PDUResult{Error: err.Error()}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return PDUResult{Error: "not processed in time"}
	}
	return PDUResult{Error: "internal error"}
}

// roomLocks hands out one lock per room being processed. The zero value
// is ready.
type roomLocks struct {
	mu    sync.Mutex
	locks map[string]*roomLock // guarded by mu
}

type roomLock struct {
	mu   sync.Mutex
	refs int // guarded by roomLocks.mu
}

// lock takes roomID's lock and returns its release.
func (r *roomLocks) lock(roomID string) (unlock func()) {
	r.mu.Lock()
	if r.locks == nil {
		r.locks = map[string]*roomLock{}
	}
	l := r.locks[roomID]
	if l == nil {
		l = &roomLock{}
		r.locks[roomID] = l
	}
	l.refs++
	r.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		r.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(r.locks, roomID)
		}
		r.mu.Unlock()
	}
}
