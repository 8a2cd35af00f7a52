package inbound

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/parley-im/parley/rooms/authrules"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
)

// errGap marks a PDU whose missing prev events get_missing_events did
// not bring and whose gap could not be filled with the remote's state.
var errGap = errors.New("inbound: gap in the room cannot be filled")

// maxAuthChain bounds the auth chain taken from one event_auth answer.
const maxAuthChain = 10_000

// GapFiller stores a prev event that lies beyond what get_missing_events
// brought, with the state before it as the sending server gave it
// (/state_ids), once that state's events and their auth chain are held as
// outliers. It is what the dag storage must add to the writer: a
// PersistInbound variant that takes StateBefore from the caller instead
// of resolving it over prev events the server does not hold, runs checks
// 1–4 against it (rooms/inbound.Pipeline with a supplied state), stores
// the event as a regular event (not an outlier) that need not be a forward
// extremity, and records the state after it, so Source.StatesAfter
// answers for it and the PDU that cites it can be checked. Its own prev
// events stay missing (a backward extremity, which backfill may later
// fill).
type GapFiller interface {
	AcceptWithState(ctx context.Context, roomID string, raw []byte, stateBefore checks.StateMap) error
}

// fillMissing fetches from origin what me names as missing for ev and
// runs ev through the pipeline again: prev events with
// get_missing_events (accepted oldest first), auth events with event_auth
// (stored as outliers), and when that does not close the gap, the state
// at each missing prev event with state_ids.
func (h *Handler) fillMissing(ctx context.Context, origin, version string, ev *pdu.Event, raw []byte, me *checks.MissingError) (*checks.Verdict, error) {
	// Prev events first, as Synapse does: get_missing_events often brings
	// the auth events too (a member's join is both).
	if len(me.Prev) > 0 {
		if err := h.fetchMissing(ctx, origin, version, ev); err != nil {
			h.log.Info("federation: get_missing_events", "origin", origin, "event", ev.ID, "err", err)
		}
	}
	v, err := h.acceptWithAuth(ctx, origin, version, ev, raw)
	if !errors.As(err, &me) || len(me.Prev) == 0 {
		return v, err
	}
	if err := h.fillGap(ctx, origin, version, ev, me.Prev); err != nil {
		return nil, err
	}
	return h.acceptWithAuth(ctx, origin, version, ev, raw)
}

// acceptWithAuth runs ev through the pipeline and, when it lacks auth
// events, fetches its auth chain from origin and tries once more.
func (h *Handler) acceptWithAuth(ctx context.Context, origin, version string, ev *pdu.Event, raw []byte) (*checks.Verdict, error) {
	v, _, err := h.cfg.Pipeline.Accept(ctx, raw)
	var me *checks.MissingError
	if !errors.As(err, &me) || len(me.Auth) == 0 || h.cfg.Fetcher == nil {
		return v, err
	}
	if err := h.fetchAuthChain(ctx, origin, version, ev); err != nil {
		return nil, fmt.Errorf("%w (fetching them: %w)", me, err)
	}
	v, _, err = h.cfg.Pipeline.Accept(ctx, raw)
	return v, err
}

// fetchAuthChain fetches ev's auth chain from origin and stores, as
// outliers and in auth order, the events of it the server lacks.
func (h *Handler) fetchAuthChain(ctx context.Context, origin, version string, ev *pdu.Event) error {
	raws, err := h.cfg.Fetcher.EventAuth(ctx, origin, ev.RoomID, ev.ID)
	if err != nil {
		return fmt.Errorf("event_auth %s: %w", ev.ID, err)
	}
	if len(raws) > maxAuthChain {
		return fmt.Errorf("event_auth %s: %d events, over the limit of %d", ev.ID, len(raws), maxAuthChain)
	}
	evs := checks.ParseRoomEvents(raws, version, ev.RoomID)
	return h.storeOutliers(ctx, ev.RoomID, evs)
}

// storeOutliers stores, in auth order, those of evs the server does not
// hold, as outliers. An event that fails is skipped: the event that needed
// it then reports it missing again.
func (h *Handler) storeOutliers(ctx context.Context, roomID string, evs []*pdu.Event) error {
	evs, err := h.notHeld(ctx, evs, false)
	if err != nil {
		return err
	}
	for _, e := range checks.AuthOrder(evs) {
		if _, _, err := h.cfg.Pipeline.AcceptOutlier(ctx, roomID, e.Raw); err != nil && !errors.Is(err, checks.ErrAlreadyHeld) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h.log.Info("federation: fetched auth event refused", "room", roomID, "event", e.ID, "err", err)
		}
	}
	return nil
}

// fetchMissing asks origin for the events between the room's forward
// extremities and ev, and accepts them oldest first.
func (h *Handler) fetchMissing(ctx context.Context, origin, version string, ev *pdu.Event) error {
	_, extremities, err := h.cfg.Source.Current(ctx, ev.RoomID, nil)
	if err != nil {
		return fmt.Errorf("extremities of %s: %w", ev.RoomID, err)
	}
	// min_depth is left out (0), as Synapse in effect does: the limit
	// bounds the work, and the state_ids fallback covers a deeper gap.
	raws, err := h.cfg.Fetcher.GetMissingEvents(ctx, origin, ev.RoomID, extremities, []string{ev.ID}, h.lim.MissingEvents, 0)
	if err != nil {
		return err
	}
	evs := checks.ParseRoomEvents(raws[:min(len(raws), h.lim.MissingEvents)], version, ev.RoomID)
	evs, err = h.notHeld(ctx, evs, true)
	if err != nil {
		return err
	}
	slices.SortStableFunc(evs, func(a, b *pdu.Event) int { return cmp.Compare(a.Depth, b.Depth) })
	for _, e := range evs {
		if e.ID == ev.ID {
			continue
		}
		if _, err := h.acceptWithAuth(ctx, origin, version, e, e.Raw); err != nil && !errors.Is(err, checks.ErrAlreadyHeld) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h.log.Info("federation: missing event not accepted", "event", e.ID, "err", err)
		}
	}
	return nil
}

// fillGap fetches, for each prev event the room still lacks, the state
// before it from origin (state_ids), stores the state and auth chain
// events the server lacks as outliers, and hands the prev event with
// that state to the GapFiller. Without one it fails with errGap.
func (h *Handler) fillGap(ctx context.Context, origin, version string, ev *pdu.Event, prevs []string) error {
	if len(prevs) > maxGapPrevs {
		return fmt.Errorf("%w: event %s: %d prev events beyond get_missing_events, over the limit of %d", errGap, ev.ID, len(prevs), maxGapPrevs)
	}
	for _, prev := range prevs {
		state, authChain, err := h.cfg.Fetcher.StateIDs(ctx, origin, ev.RoomID, prev)
		if err != nil {
			return fmt.Errorf("%w: event %s: state_ids at prev event %s: %w", errGap, ev.ID, prev, err)
		}
		want := append(slices.Clone(state), authChain...)
		want = append(want, prev)
		slices.Sort(want)
		want = slices.Compact(want)
		held, err := h.cfg.Source.Events(ctx, want)
		if err != nil {
			return fmt.Errorf("load events of the state at %s: %w", prev, err)
		}
		byID := make(map[string]*pdu.Event, len(want))
		var lacking []string
		for i, id := range want {
			if i < len(held) && held[i].Event != nil {
				byID[id] = held[i].Event
			} else {
				lacking = append(lacking, id)
			}
		}
		var fetched []*pdu.Event
		if len(lacking) > h.lim.MaxFetchedEvents {
			// Many round trips: take the whole state in one /state
			// instead, and fetch only the prev event itself alone.
			got, err := h.fetchState(ctx, origin, version, ev, prev, lacking)
			if err != nil {
				return err
			}
			for _, e := range got {
				byID[e.ID] = e
				fetched = append(fetched, e)
			}
			lacking = []string{prev}
		}
		for _, id := range lacking {
			raw, err := h.cfg.Fetcher.Event(ctx, origin, id)
			if err != nil {
				return fmt.Errorf("%w: event %s: fetch %s: %w", errGap, ev.ID, id, err)
			}
			e, _ := pdu.Parse(raw, version)
			if e == nil || e.ID != id || e.RoomID != ev.RoomID {
				return fmt.Errorf("%w: event %s: %s fetched from %s is not that event of the room", errGap, ev.ID, id, origin)
			}
			byID[id] = e
			if id != prev {
				fetched = append(fetched, e)
			}
		}
		if err := h.storeOutliers(ctx, ev.RoomID, fetched); err != nil {
			return err
		}
		if h.cfg.Gaps == nil {
			return fmt.Errorf("%w: event %s: prev event %s is beyond get_missing_events; its state was fetched, but this server cannot yet take state given by another server", errGap, ev.ID, prev)
		}
		before := make(checks.StateMap, len(state))
		for _, id := range state {
			e := byID[id]
			if e == nil || e.StateKey == nil {
				return fmt.Errorf("%w: event %s: state at %s names %s, not a state event", errGap, ev.ID, prev, id)
			}
			before[authrules.StateKey{Type: e.Type, StateKey: *e.StateKey}] = id
		}
		if err := h.cfg.Gaps.AcceptWithState(ctx, ev.RoomID, byID[prev].Raw, before); err != nil {
			return fmt.Errorf("%w: event %s: prev event %s with the remote's state: %w", errGap, ev.ID, prev, err)
		}
	}
	return nil
}

// maxGapPrevs bounds the prev events of one PDU whose state is fetched:
// each may cost a /state of the whole room.
const maxGapPrevs = 5

// maxStateEvents bounds the events taken from one /state answer; each
// costs a signature check.
const maxStateEvents = 50_000

// fetchState asks origin for the whole state before prev (/state) and
// returns those of its events and auth chain that are in lacking.
func (h *Handler) fetchState(ctx context.Context, origin, version string, ev *pdu.Event, prev string, lacking []string) ([]*pdu.Event, error) {
	state, authChain, err := h.cfg.Fetcher.State(ctx, origin, ev.RoomID, prev)
	if err != nil {
		return nil, fmt.Errorf("%w: event %s: state at prev event %s: %w", errGap, ev.ID, prev, err)
	}
	if len(state)+len(authChain) > maxStateEvents {
		return nil, fmt.Errorf("%w: event %s: the state at prev event %s has %d events, over the limit of %d", errGap, ev.ID, prev, len(state)+len(authChain), maxStateEvents)
	}
	want := make(map[string]bool, len(lacking))
	for _, id := range lacking {
		want[id] = true
	}
	var out []*pdu.Event
	for _, e := range checks.ParseRoomEvents(append(state, authChain...), version, ev.RoomID) {
		if want[e.ID] {
			out = append(out, e)
		}
	}
	return out, nil
}

// notHeld returns those of evs the server does not hold, counting
// outliers as not held when outliersToo (they may still be accepted as
// regular events).
func (h *Handler) notHeld(ctx context.Context, evs []*pdu.Event, outliersToo bool) ([]*pdu.Event, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	held, err := h.cfg.Source.Events(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("load fetched events: %w", err)
	}
	out := evs[:0:0]
	for i, e := range evs {
		if i >= len(held) || held[i].Event == nil || (outliersToo && held[i].Outlier) {
			out = append(out, e)
		}
	}
	return out, nil
}
