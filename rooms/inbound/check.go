package inbound

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/rooms/stateres"
	"github.com/tidwall/gjson"
)

const (
	// MaxPrevEvents bounds prev_events: each one is a state set to load
	// and resolve. Parley itself cites at most 20, as Synapse does.
	MaxPrevEvents = 20
	// MaxAuthEvents bounds auth_events. The auth events selection names at
	// most 6 state keys; room version 12 names one fewer.
	MaxAuthEvents = 10
	// maxKeyIDsPerServer bounds the key lookups one signer can cost.
	maxKeyIDsPerServer = 4
	// MaxAttempts bounds how often Accept re-runs check 5 because the room
	// moved on before the writer stored the event.
	MaxAttempts = 5
)

// Pipeline runs the checks and hands verdicts to the writer. Its fields
// are static after New; it is safe for concurrent use as far as its
// Source, Keys and Persister are.
type Pipeline struct {
	src     Source
	keys    Keys
	persist Persister // nil when the pipeline only checks
	// pre, set only on a Batch's own copy, holds checks 1 and 2 done
	// ahead, on every core, for the PDUs of a transaction (Batch.Prepare).
	pre map[*byte]*prepared
}

// prepared is one PDU parsed and its signatures verified ahead of its
// turn, for a room version.
type prepared struct {
	n         int // len of the raw PDU, which with its first byte names it
	version   string
	ev        *pdu.Event
	parseErr  error
	verifyErr error // nil when not verified (the parse failed)
}

// New returns a Pipeline reading the room through src, verifying
// signatures with keys and storing verdicts with persist (nil for a
// pipeline that only checks).
func New(src Source, keys Keys, persist Persister) *Pipeline {
	return &Pipeline{src: src, keys: keys, persist: persist}
}

// Check runs checks 1–5 on raw, a PDU from another server for the room its
// room_id names. It returns the verdict, or an error wrapping ErrDropped
// (checks 1–2 failed), ErrUnknownRoom, ErrMissing (a *MissingError), or a
// failure of the Source or Keys. It stores nothing.
func (p *Pipeline) Check(ctx context.Context, raw []byte) (*Verdict, error) {
	c, err := p.check(ctx, "", raw, false)
	if err != nil {
		return nil, err
	}
	return c.verdict, nil
}

// CheckOutlier runs checks 1–3 on raw, an event of roomID fetched only as
// the auth or state of another event. The verdict is Outlier or Rejected;
// it has no state and no extremities.
func (p *Pipeline) CheckOutlier(ctx context.Context, roomID string, raw []byte) (*Verdict, error) {
	c, err := p.check(ctx, roomID, raw, true)
	if err != nil {
		return nil, err
	}
	return c.verdict, nil
}

// checked is one event's progress through the checks, kept so that Accept
// can re-run check 5 alone. Owned by one Check or Accept call.
type checked struct {
	version string
	ev      *pdu.Event
	// needed are the state keys the auth rules read for ev.
	needed []authrules.StateKey
	// beforeAuth are the events of the state before ev under needed.
	beforeAuth map[authrules.StateKey]*pdu.Event
	verdict    *Verdict
}

func (p *Pipeline) check(ctx context.Context, roomID string, raw []byte, outlier bool) (*checked, error) {
	if !outlier {
		if roomID = roomOf(raw); roomID == "" {
			return nil, fmt.Errorf("%w: %w: no room_id", ErrDropped, pdu.ErrInvalid)
		}
	}
	version, err := p.src.RoomVersion(ctx, roomID)
	if err != nil {
		return nil, fmt.Errorf("room %s: %w", roomID, err)
	}

	// Check 1: format.
	pre := p.prepared(raw, version)
	var ev *pdu.Event
	if pre != nil {
		ev, err = pre.ev, pre.parseErr
	} else {
		ev, err = pdu.Parse(raw, version)
	}
	redacted := false
	switch {
	case errors.Is(err, pdu.ErrBadHash) && ev != nil:
		redacted = true // check 2 goes on with the redacted copy
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrDropped, err)
	}
	switch {
	case ev.RoomID != roomID:
		return nil, fmt.Errorf("%w: %w: event %s is in room %s, not %s", ErrDropped, pdu.ErrInvalid, ev.ID, ev.RoomID, roomID)
	case len(ev.PrevEvents) > MaxPrevEvents:
		return nil, fmt.Errorf("%w: %w: event %s has %d prev_events, over the limit of %d", ErrDropped, pdu.ErrInvalid, ev.ID, len(ev.PrevEvents), MaxPrevEvents)
	case len(ev.AuthEvents) > MaxAuthEvents:
		return nil, fmt.Errorf("%w: %w: event %s has %d auth_events, over the limit of %d", ErrDropped, pdu.ErrInvalid, ev.ID, len(ev.AuthEvents), MaxAuthEvents)
	}

	// Check 2: signatures (the content hash was checked by Parse).
	if pre != nil {
		if pre.verifyErr != nil {
			return nil, pre.verifyErr
		}
	} else if err := p.verifySignatures(ctx, version, ev); err != nil {
		return nil, err
	}

	c := &checked{version: version, ev: ev, verdict: &Verdict{Raw: ev.Raw, Event: ev, Redacted: redacted}}
	if outlier {
		c.verdict.Kind = Outlier
	} else {
		c.verdict.Kind = Accepted
	}

	// Load what checks 3 and 4 read in two calls, so that missing auth
	// and prev events are reported together.
	auth, missingAuth, authReason, err := p.loadAuthEvents(ctx, version, ev, outlier)
	if err != nil {
		return nil, err
	}
	var states []StateMap
	var missingPrev []string
	if !outlier && len(ev.PrevEvents) > 0 {
		if states, err = p.src.StatesAfter(ctx, ev.PrevEvents); err != nil {
			return nil, fmt.Errorf("load state after prev events of %s: %w", ev.ID, err)
		}
		if len(states) != len(ev.PrevEvents) {
			return nil, fmt.Errorf("load state after prev events of %s: got %d states for %d events", ev.ID, len(states), len(ev.PrevEvents))
		}
		for i, s := range states {
			if s == nil {
				missingPrev = append(missingPrev, ev.PrevEvents[i])
			}
		}
	}
	if len(missingAuth) > 0 || len(missingPrev) > 0 {
		return nil, &MissingError{EventID: ev.ID, Auth: missingAuth, Prev: missingPrev}
	}

	// Check 3: auth against the event's own auth_events.
	if authReason == "" {
		if err := authrules.Check(version, ev, auth); err != nil {
			authReason = "auth events: " + err.Error()
		}
	}
	if outlier {
		if authReason != "" {
			c.reject(authReason)
		}
		return c, nil
	}
	// The state before is kept even for an event rejected here, so that
	// the store can answer StatesAfter for it: a later event may cite it
	// as a prev event.
	before, err := p.stateBefore(ctx, version, states)
	if err != nil {
		return nil, fmt.Errorf("state before %s: %w", ev.ID, err)
	}
	c.verdict.StateBefore = before
	if authReason != "" {
		c.reject(authReason)
		return c, nil
	}

	// Check 4: auth against the state before the event.
	if ev.Type == "m.room.create" {
		// Rule 1 lets any create event without prev_events in; a room
		// this server holds already has its own.
		cur, _, err := p.src.Current(ctx, ev.RoomID, []authrules.StateKey{{Type: "m.room.create"}})
		if err != nil {
			return nil, fmt.Errorf("current state of %s: %w", ev.RoomID, err)
		}
		if id, ok := cur[authrules.StateKey{Type: "m.room.create"}]; ok && id != ev.ID {
			c.reject(fmt.Sprintf("state before the event: room %s already has create event %s", ev.RoomID, id))
			return c, nil
		}
	}
	c.needed = authrules.Needed(ev.Type, ev.StateKey, ev.Sender, ev.Content)
	if sameEvents(c.needed, before, auth) {
		c.beforeAuth = auth // same events, same answer as check 3
	} else {
		if c.beforeAuth, err = p.loadState(ctx, c.needed, before); err != nil {
			return nil, fmt.Errorf("state before %s: %w", ev.ID, err)
		}
		if err := authrules.Check(version, ev, c.beforeAuth); err != nil {
			c.reject("state before the event: " + err.Error())
			return c, nil
		}
	}

	// Check 5: auth against the current state.
	if err := p.checkCurrent(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// prepared returns raw's checks 1 and 2 done ahead for version, or nil.
func (p *Pipeline) prepared(raw []byte, version string) *prepared {
	if p.pre == nil || len(raw) == 0 {
		return nil
	}
	if pr := p.pre[&raw[0]]; pr != nil && pr.n == len(raw) && pr.version == version {
		return pr
	}
	return nil
}

// roomOf returns the room raw names: its room_id or, for a room version
// 12 create event, which has none, the room its ID derives.
func roomOf(raw []byte) string {
	res := gjson.GetManyBytes(raw, "room_id", "type", "content.room_version")
	if res[0].Type == gjson.String {
		return res[0].Str
	}
	if res[0].Exists() || res[1].Str != "m.room.create" || res[2].Type != gjson.String || !pdu.RoomIDFromCreate(res[2].Str) {
		return ""
	}
	if ev, err := pdu.Parse(raw, res[2].Str); err == nil {
		return ev.RoomID
	}
	return ""
}

func (c *checked) reject(reason string) {
	c.verdict.Kind = Rejected
	c.verdict.Reason = reason
}

// verifySignatures requires, for every server that must sign ev, one
// ed25519 signature that verifies with a key Keys knows at the event's
// origin_server_ts. When Keys had none of the keys tried, the error is
// ErrKeyUnavailable rather than pdu.ErrBadSignature: the event may be
// good, and worth receiving again once the keys can be fetched.
func (p *Pipeline) verifySignatures(ctx context.Context, version string, ev *pdu.Event) error {
	for _, server := range ev.RequiredSigners() {
		var lastErr error
		tried, keyless := 0, 0
		for _, keyID := range ev.SignatureKeyIDs(server) {
			if len(keyID) < len("ed25519:") || keyID[:len("ed25519:")] != "ed25519:" {
				continue
			}
			if tried++; tried > maxKeyIDsPerServer {
				break
			}
			pub, err := p.keys.VerifyKey(ctx, server, keyID, ev.OriginServerTS, version)
			if err != nil {
				if ctxErr := ctx.Err(); ctxErr != nil {
					return ctxErr
				}
				lastErr = fmt.Errorf("key %s of %s: %w", keyID, server, err)
				keyless++
				continue
			}
			if lastErr = ev.VerifySignature(version, server, keyID, pub); lastErr == nil {
				break
			}
		}
		switch {
		case tried == 0:
			return fmt.Errorf("%w: %w: event %s has no ed25519 signature from %s", ErrDropped, pdu.ErrBadSignature, ev.ID, server)
		case lastErr != nil && keyless == min(tried, maxKeyIDsPerServer):
			return fmt.Errorf("%w: %w: event %s: %w", ErrDropped, ErrKeyUnavailable, ev.ID, lastErr)
		case lastErr != nil:
			return fmt.Errorf("%w: %w: event %s: no valid signature from %s: %w", ErrDropped, pdu.ErrBadSignature, ev.ID, server, lastErr)
		}
	}
	return nil
}

// loadAuthEvents loads, in one call, ev's auth events and, from room
// version 12, the create event the room ID names, ev itself (to refuse one
// already held) and its prev events (which must be in ev's room), and
// selects the auth events for check 3. It returns the IDs not held, or a
// reason to reject ev, or the selection.
func (p *Pipeline) loadAuthEvents(ctx context.Context, version string, ev *pdu.Event, outlier bool) (auth map[authrules.StateKey]*pdu.Event, missing []string, reason string, err error) {
	ids := make([]string, 0, len(ev.AuthEvents)+2)
	ids = append(ids, ev.AuthEvents...)
	isCreate := ev.Type == "m.room.create"
	v12Create := pdu.RoomIDFromCreate(version) && !isCreate
	if v12Create {
		ids = append(ids, pdu.CreateEventIDOf(ev.RoomID))
	}
	self := len(ids)
	ids = append(ids, ev.ID)
	if !outlier {
		// The prev events too, only to see that they are in this room:
		// the state after an event of another room must not leak in.
		ids = append(ids, ev.PrevEvents...)
	}
	stored, err := p.src.Events(ctx, ids)
	if err != nil {
		return nil, nil, "", fmt.Errorf("load auth events of %s: %w", ev.ID, err)
	}
	if len(stored) != len(ids) {
		return nil, nil, "", fmt.Errorf("load auth events of %s: got %d events for %d IDs", ev.ID, len(stored), len(ids))
	}
	if held := stored[self]; held.Event != nil && (outlier || !held.Outlier) {
		return nil, nil, "", fmt.Errorf("%w: %s", ErrAlreadyHeld, ev.ID)
	}
	for _, prev := range stored[self+1:] {
		if prev.Event != nil && prev.Event.RoomID != ev.RoomID && reason == "" {
			reason = fmt.Sprintf("prev events: %s is in room %s", prev.Event.ID, prev.Event.RoomID)
		}
	}
	if isCreate {
		// Rule 1 checks a create event without auth events.
		return map[authrules.StateKey]*pdu.Event{}, nil, reason, nil
	}
	var create *pdu.Event
	list := make([]*pdu.Event, 0, len(ev.AuthEvents))
	for i, s := range stored[:self] {
		switch {
		case s.Event == nil || s.Event.ID != ids[i]:
			if !slices.Contains(missing, ids[i]) {
				missing = append(missing, ids[i])
			}
		case s.Rejected && reason == "":
			reason = fmt.Sprintf("auth events: %s was rejected", ids[i])
		case v12Create && i == len(ev.AuthEvents):
			create = s.Event
		default:
			list = append(list, s.Event)
		}
	}
	if len(missing) > 0 || reason != "" {
		return nil, missing, reason, nil
	}
	auth, err = authrules.SelectAuthEventsIn(version, ev, list, create)
	if err != nil {
		return nil, nil, "auth events: " + err.Error(), nil
	}
	return auth, nil, "", nil
}

// stateBefore resolves the states after the prev events. A single prev
// event's state is used as it is, shared with the Source (read only).
func (p *Pipeline) stateBefore(ctx context.Context, version string, states []StateMap) (StateMap, error) {
	switch len(states) {
	case 0:
		return StateMap{}, nil
	case 1:
		return states[0], nil
	}
	return stateres.Resolve(ctx, version, states, loader{p.src})
}

// loadState loads the events of state under keys. An entry naming an event
// the Source does not hold, or rejected, is an inconsistency of the Source.
func (p *Pipeline) loadState(ctx context.Context, keys []authrules.StateKey, state StateMap) (map[authrules.StateKey]*pdu.Event, error) {
	ids := make([]string, 0, len(keys))
	present := make([]authrules.StateKey, 0, len(keys))
	for _, k := range keys {
		if id, ok := state[k]; ok {
			ids = append(ids, id)
			present = append(present, k)
		}
	}
	out := make(map[authrules.StateKey]*pdu.Event, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	stored, err := p.src.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	if len(stored) != len(ids) {
		return nil, fmt.Errorf("got %d events for %d IDs", len(stored), len(ids))
	}
	for i, s := range stored {
		if s.Event == nil || s.Event.ID != ids[i] || s.Rejected {
			return nil, fmt.Errorf("state names %s for %s %q, which is not held or was rejected", ids[i], present[i].Type, present[i].StateKey)
		}
		out[present[i]] = s.Event
	}
	return out, nil
}

// checkCurrent is check 5. It reads the current state under c.needed and
// the forward extremities, and soft-fails c's event when that state does
// not allow it. It resets the verdict's kind, so Accept can call it again.
func (p *Pipeline) checkCurrent(ctx context.Context, c *checked) error {
	v := c.verdict
	cur, extremities, err := p.src.Current(ctx, c.ev.RoomID, c.needed)
	if err != nil {
		return fmt.Errorf("current state of %s: %w", c.ev.RoomID, err)
	}
	v.ExtremitiesSeen = extremities
	v.Kind, v.Reason = Accepted, ""
	// When the event extends exactly the current extremities, the current
	// state is the state before it, which check 4 already passed.
	if sameSet(extremities, c.ev.PrevEvents) || sameEvents(c.needed, cur, c.beforeAuth) {
		return nil
	}
	auth, err := p.loadState(ctx, c.needed, cur)
	if err != nil {
		return fmt.Errorf("current state of %s: %w", c.ev.RoomID, err)
	}
	if err := authrules.Check(c.version, c.ev, auth); err != nil {
		v.Kind, v.Reason = SoftFailed, "current state: "+err.Error()
	}
	return nil
}

// sameEvents reports whether state names, under every key, the event that
// auth holds (or nothing where auth has nothing).
func sameEvents(keys []authrules.StateKey, state StateMap, auth map[authrules.StateKey]*pdu.Event) bool {
	for _, k := range keys {
		id, inState := state[k]
		ev := auth[k]
		if inState != (ev != nil) || (ev != nil && ev.ID != id) {
			return false
		}
	}
	return true
}

// sameSet reports whether a and b hold the same IDs, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

// loader serves state resolution from the Source; rejected events are
// absent to it, as the spec wants.
type loader struct{ src Source }

func (l loader) Events(ctx context.Context, ids []string) ([]*pdu.Event, error) {
	stored, err := l.src.Events(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*pdu.Event, len(stored))
	for i, s := range stored {
		if !s.Rejected {
			out[i] = s.Event
		}
	}
	return out, nil
}
