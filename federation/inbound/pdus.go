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

// roomBatch is one room's PDUs of a transaction, in arrival order. They
// are not parsed here: the pipeline parses each, and the handler parses
// again only on the paths that need the event (errors, fetches), so an
// accepted PDU is parsed once.
type roomBatch struct {
	roomID  string
	version string
	raws    []json.RawMessage
}

// handlePDUs groups the PDUs by room, skips those of rooms this server
// is not in, and runs each room's batch in
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
		if id, r, ok := h.outOfBand(ctx, origin, version, raw); ok {
			if id != "" {
				results[id] = r
			}
			continue
		}
		b := byRoom[roomID]
		if b == nil {
			b = &roomBatch{roomID: roomID, version: version}
			byRoom[roomID] = b
			batches = append(batches, b)
		}
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
		if ev, _ := pdu.Parse(raw, res[2].Str); ev != nil {
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
	out := make(map[string]PDUResult, len(b.raws))
	unlock := h.rooms.lock(b.roomID)
	defer unlock()
	refuse := func(raw []byte, r PDUResult) {
		if id := h.idOf(raw, b.version); id != "" {
			out[id] = r
		}
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	case <-ctx.Done():
		for _, raw := range b.raws {
			refuse(raw, PDUResult{Error: "server busy: " + ctx.Err().Error()})
		}
		return out
	}
	acl, err := h.roomACL(ctx, b.roomID)
	batch := h.newBatch()
	batch.prepare(ctx, b.version, b.raws)
	for _, raw := range b.raws {
		switch {
		case err != nil:
			h.log.Error("federation: server ACL", "room", b.roomID, "err", err)
			refuse(raw, PDUResult{Error: "internal error reading the room's server ACL"})
			continue
		case !acl.Allowed(origin):
			refuse(raw, PDUResult{Error: fmt.Sprintf("server %s is denied by the room's server ACL", origin)})
			h.count.pduDenied.Add(1)
			continue
		}
		batch.add(ctx, raw, func(v *checks.Verdict, err error) {
			id, r := h.afterAccept(ctx, origin, b.version, raw, v, err)
			h.count.countPDU(r)
			if id != "" {
				out[id] = r
			}
		})
		if isACLEvent(raw) {
			batch.flush(ctx)
			acl, err = h.roomACL(ctx, b.roomID) // it may have changed
		}
	}
	batch.flush(ctx)
	return out
}

// Batcher is a Pipeline that takes a room's PDUs of a transaction as one
// batch, storing runs of them in one write (*rooms/inbound.Pipeline is
// one). The Handler uses it when its Pipeline has it.
type Batcher interface {
	NewBatch() *checks.Batch
}

// pduBatch is one room's PDUs on their way through the pipeline: a
// checks.Batch, or one Accept each when the Pipeline cannot batch.
type pduBatch struct {
	h *Handler
	b *checks.Batch // nil: one Accept each
}

func (h *Handler) newBatch() pduBatch {
	if bp, ok := h.cfg.Pipeline.(Batcher); ok {
		return pduBatch{h: h, b: bp.NewBatch()}
	}
	return pduBatch{h: h}
}

// prepare parses and verifies raws ahead, on every core, when batching.
func (p pduBatch) prepare(ctx context.Context, version string, raws []json.RawMessage) {
	if p.b == nil {
		return
	}
	bs := make([][]byte, len(raws))
	for i, raw := range raws {
		bs[i] = raw
	}
	p.b.Prepare(ctx, version, bs)
}

// add takes raw through the pipeline; done gets its verdict or error,
// now or at a later add or flush.
func (p pduBatch) add(ctx context.Context, raw []byte, done func(*checks.Verdict, error)) {
	if p.b != nil {
		p.b.Add(ctx, raw, done)
		return
	}
	v, _, err := p.h.cfg.Pipeline.Accept(ctx, raw)
	done(v, err)
}

// flush stores what waits and hands out the waiting answers.
func (p pduBatch) flush(ctx context.Context) {
	if p.b != nil {
		p.b.Flush(ctx)
	}
}

// idOf is raw's event ID, or "" when none can be computed.
func (h *Handler) idOf(raw []byte, version string) string {
	if ev, _ := pdu.Parse(raw, version); ev != nil {
		return ev.ID
	}
	return eventIDOf(raw)
}

func isACLEvent(raw []byte) bool {
	res := gjson.GetManyBytes(raw, "type", "state_key")
	return res[0].Str == "m.room.server_acl" && res[1].Type == gjson.String && res[1].Str == ""
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

// afterAccept turns the pipeline's answer for one PDU into its result:
// when the pipeline names missing events, it fetches them from origin and
// tries again. It returns the PDU's ID ("" when none can be computed) and
// its result.
func (h *Handler) afterAccept(ctx context.Context, origin, version string, raw []byte, v *checks.Verdict, err error) (string, PDUResult) {
	if err == nil {
		return v.Event.ID, resultOf(v, nil)
	}
	ev, _ := pdu.Parse(raw, version)
	if ev == nil {
		return eventIDOf(raw), resultOf(nil, err)
	}
	var me *checks.MissingError
	if errors.As(err, &me) && h.cfg.Fetcher != nil {
		v, err = h.fillMissing(ctx, origin, version, ev, raw, me)
	}
	r := resultOf(v, err)
	if r.Error == "internal error" {
		h.log.Error("federation: inbound PDU", "origin", origin, "event", ev.ID, "err", err)
	}
	return ev.ID, r
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
	case errors.Is(err, checks.ErrTooManyAttempts):
		return PDUResult{Error: "the room kept moving while the event was checked; not stored"}
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
