// Package backfill fetches a room's history from before this server
// joined it, from the other servers in the room (GET
// /_matrix/federation/v1/backfill), when a user's /messages reaches the
// point where this server's copy stops (a backward extremity). Each event
// goes through the inbound checks (rooms/inbound: signatures, hashes, auth
// against its own auth events and against the state before it), and the
// page is stored as backfilled history by the room writer
// (rooms.Service.PersistBackfill): positions below everything held, never
// in /sync. History visibility then applies to it as to any history.
//
// The network is never waited on inside the writer: the checks and
// fetches run here, and the writer gets one checked page.
package backfill

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/sync/singleflight"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/dag"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/rooms/stateres"
	"github.com/parley-im/parley/storage"
)

// Defaults of Config's zero fields.
const (
	// DefaultLimit is how many events one /backfill asks for (Synapse
	// serves at most 100, and so does Parley).
	DefaultLimit = 100
	// DefaultTimeout bounds one server's answer, with the fetches that
	// checking it needs.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxServers is how many servers one fill asks at most.
	DefaultMaxServers = 5
	// DefaultRetryAfter is how long a gap that no server could fill is
	// left alone, so every /messages page does not wait on it again.
	DefaultRetryAfter = time.Minute
	// maxFailedGaps bounds the memory of gaps that could not be filled.
	maxFailedGaps = 10_000
	// maxStateEvents bounds the state plus auth chain taken from one
	// state_ids or /state answer: each event costs a signature check.
	maxStateEvents = 50_000
	// maxFetchEach is how many lacking state events are fetched one by one
	// (/event) before one /state brings them all instead.
	maxFetchEach = 10
	// maxStateFetches bounds the state_ids requests one page may make: a
	// linear history needs one (for its oldest event); a page of many
	// forks could otherwise cost a round trip per event. Events beyond it
	// wait for a later fill, which starts from them.
	maxStateFetches = 5
	// maxStateMembers bounds the member events read to choose servers;
	// beyond it the room's current servers are asked.
	maxStateMembers = 2_000
)

// Fetcher is the federation requests backfill makes (ClientFetcher over
// the signed client in production).
type Fetcher interface {
	// Backfill is GET /_matrix/federation/v1/backfill/{roomId}: up to
	// limit events walking back from (and including) from.
	Backfill(ctx context.Context, server, roomID string, from []string, limit int) ([]json.RawMessage, error)
	// EventAuth is GET /_matrix/federation/v1/event_auth: eventID's auth chain.
	EventAuth(ctx context.Context, server, roomID, eventID string) ([]json.RawMessage, error)
	// Event is GET /_matrix/federation/v1/event: one event.
	Event(ctx context.Context, server, eventID string) (json.RawMessage, error)
	// StateIDs is GET /_matrix/federation/v1/state_ids: the state before
	// eventID and its auth chain, as IDs.
	StateIDs(ctx context.Context, server, roomID, eventID string) (state, authChain []string, err error)
	// State is GET /_matrix/federation/v1/state: the same as events.
	State(ctx context.Context, server, roomID, eventID string) (state, authChain []json.RawMessage, err error)
}

// Rooms is the room service as backfill uses it (*rooms.Service).
type Rooms interface {
	PersistBackfill(ctx context.Context, roomID string, evs []rooms.InboundEvent) (int, error)
	StateAfterEvent(ctx context.Context, eventID string) (stateres.StateMap, error)
	EventsByID(ctx context.Context, ids []string) ([]dag.StoredPDU, error)
}

// Store is what backfill reads directly (*storage.Store).
type Store interface {
	BackwardGaps(ctx context.Context, ids []string) ([]string, error)
	RoomMemberships(ctx context.Context, roomID string) ([]storage.Membership, error)
}

// Config is what a Backfiller needs. Static after New.
type Config struct {
	ServerName string
	Fetcher    Fetcher
	// Source is the room service's inbound adapter (InboundStore); Keys
	// verifies signatures; Outliers stores fetched auth and state events
	// as outliers (checks.New(Source, Keys, Source)).
	Source   checks.Source
	Keys     checks.Keys
	Outliers *checks.Pipeline
	Rooms    Rooms
	Store    Store
	// Limit is the events asked per /backfill (0: DefaultLimit).
	Limit int
	// Timeout bounds one server's part of a fill (0: DefaultTimeout).
	Timeout time.Duration
	// MaxServers bounds the servers one fill asks (0: DefaultMaxServers).
	MaxServers int
	// RetryAfter is how long an unfilled gap is left alone (0:
	// DefaultRetryAfter).
	RetryAfter time.Duration
	Log        *slog.Logger
	// Now is the clock of the failed-gap memory; nil means time.Now.
	Now func() time.Time
}

// Backfiller fills gaps in rooms' history from other servers. Safe for
// concurrent use.
type Backfiller struct {
	cfg    Config // static
	checks *checks.Pipeline
	flight singleflight.Group // one fill per gap at a time

	mu     sync.Mutex           // guards failed
	failed map[string]time.Time // room+gap → when no server could fill it
}

// New returns a Backfiller.
func New(cfg Config) *Backfiller {
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxServers <= 0 {
		cfg.MaxServers = DefaultMaxServers
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Backfiller{cfg: cfg, failed: map[string]time.Time{}}
}

// Fill looks for a backward extremity among page (a /messages page of
// roomID's listed events, newest first) and, when there is one that was
// not tried in vain lately, fetches the history before it from a server in
// the room and stores it. It reports whether it stored anything, so the
// caller reads the page again. A failure is logged and answers false: the
// client then gets what this server holds.
//
// Concurrent calls for the same gap share one fetch. The caller's ctx
// bounds its own wait; the fetch itself runs to its own timeout, so a
// client that hangs up does not waste the work for the next one.
func (b *Backfiller) Fill(ctx context.Context, roomID string, page []storage.Event) bool {
	if len(page) == 0 || ctx.Err() != nil {
		return false
	}
	ids := make([]string, len(page))
	for i := range page {
		ids[i] = page[i].EventID
	}
	gaps, err := b.cfg.Store.BackwardGaps(ctx, ids)
	if err != nil {
		b.cfg.Log.Warn("backfill: find gaps", "room", roomID, "err", err)
		return false
	}
	for _, gap := range gaps {
		key := roomID + "\x00" + gap
		if b.recentlyFailed(key) {
			continue
		}
		ch := b.flight.DoChan(key, func() (any, error) {
			if b.recentlyFailed(key) {
				return 0, nil // failed in a flight that ended since the check above
			}
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.Timeout*time.Duration(b.cfg.MaxServers))
			defer cancel()
			n, err := b.fill(fctx, roomID, gap)
			if n == 0 {
				b.markFailed(key)
			}
			return n, err
		})
		select {
		case <-ctx.Done():
			return false
		case res := <-ch:
			if res.Err != nil {
				b.cfg.Log.Info("backfill: gap not filled", "room", roomID, "event", gap, "err", res.Err)
			}
			return res.Val.(int) > 0
		}
	}
	return false
}

func (b *Backfiller) recentlyFailed(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.failed[key]
	if ok && b.cfg.Now().Sub(at) >= b.cfg.RetryAfter {
		delete(b.failed, key)
		return false
	}
	return ok
}

func (b *Backfiller) markFailed(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.failed) >= maxFailedGaps {
		clear(b.failed) // crude, but bounded: the gaps are tried again
	}
	b.failed[key] = b.cfg.Now()
}

// fill asks the room's servers in turn for the history before gap and
// stores the first useful answer. It returns how many events it stored.
func (b *Backfiller) fill(ctx context.Context, roomID, gap string) (int, error) {
	version, err := b.cfg.Source.RoomVersion(ctx, roomID)
	if err != nil {
		return 0, err
	}
	servers, err := b.servers(ctx, roomID, gap)
	if err != nil {
		return 0, err
	}
	if len(servers) == 0 {
		return 0, nil // no one else is in the room
	}
	var errs []error
	for _, srv := range servers {
		n, err := b.fillFrom(ctx, srv, version, roomID, gap)
		if err != nil {
			if ctx.Err() != nil {
				return 0, errors.Join(append(errs, ctx.Err())...)
			}
			errs = append(errs, fmt.Errorf("%s: %w", srv, err))
			continue
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, errors.Join(errs...)
}

// servers lists the servers to ask about the history before gap: those
// with a member joined in the state at gap, longest in the room first (the
// lowest depth of their members' joins), as they are the likeliest to hold
// the history; then the room's other current servers. Never this one.
func (b *Backfiller) servers(ctx context.Context, roomID, gap string) ([]string, error) {
	type cand struct {
		name  string
		depth int64
	}
	best := map[string]int64{}
	state, err := b.cfg.Rooms.StateAfterEvent(ctx, gap)
	if err != nil && !errors.Is(err, rooms.ErrNoState) {
		return nil, err
	}
	var members []string
	for k, id := range state {
		if k.Type == "m.room.member" && pdu.Domain(k.StateKey) != b.cfg.ServerName {
			members = append(members, id)
		}
	}
	if len(members) > 0 && len(members) <= maxStateMembers {
		stored, err := b.cfg.Rooms.EventsByID(ctx, members)
		if err != nil {
			return nil, err
		}
		for _, st := range stored {
			res := gjson.GetManyBytes(st.PDU, "content.membership", "state_key")
			if res[0].Str != "join" {
				continue
			}
			d := pdu.Domain(res[1].Str)
			if cur, ok := best[d]; !ok || st.Depth < cur {
				best[d] = st.Depth
			}
		}
	}
	list := make([]cand, 0, len(best))
	for d, depth := range best {
		list = append(list, cand{d, depth})
	}
	slices.SortFunc(list, func(x, y cand) int { return cmp.Or(cmp.Compare(x.depth, y.depth), strings.Compare(x.name, y.name)) })
	out := make([]string, 0, len(list))
	seen := map[string]bool{b.cfg.ServerName: true, "": true}
	for _, c := range list {
		seen[c.name] = true
		out = append(out, c.name)
	}
	ms, err := b.cfg.Store.RoomMemberships(ctx, roomID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	slices.SortStableFunc(ms, func(x, y storage.Membership) int { return cmp.Compare(x.Pos, y.Pos) })
	for _, m := range ms {
		if d := pdu.Domain(m.UserID); m.Membership == "join" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out[:min(len(out), b.cfg.MaxServers)], nil
}

// fillFrom asks srv for the history before gap, checks it and stores it.
func (b *Backfiller) fillFrom(ctx context.Context, srv, version, roomID, gap string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	raws, err := b.cfg.Fetcher.Backfill(ctx, srv, roomID, []string{gap}, b.cfg.Limit)
	if err != nil {
		return 0, fmt.Errorf("backfill: %w", err)
	}
	evs := checks.ParseRoomEvents(raws[:min(len(raws), b.cfg.Limit)], version, roomID)
	src := newPageSource(b.cfg.Source, b.cfg.Rooms)
	if evs, err = b.toCheck(ctx, src, evs); err != nil {
		return 0, err
	}
	if len(evs) == 0 {
		return 0, nil
	}
	slices.SortStableFunc(evs, func(x, y *pdu.Event) int {
		return cmp.Or(cmp.Compare(x.Depth, y.Depth), strings.Compare(x.ID, y.ID))
	})
	p := checks.New(src, b.cfg.Keys, nil)
	out := make([]rooms.InboundEvent, 0, len(evs))
	src.stateFetches = maxStateFetches
	for _, ev := range evs {
		v, err := b.check(ctx, p, src, srv, version, ev)
		if err != nil {
			if ctx.Err() != nil {
				break // keep what is checked: each event stands on its own
			}
			b.cfg.Log.Info("backfill: event not taken", "room", roomID, "from", srv, "event", ev.ID, "err", err)
			continue
		}
		src.record(v)
		in := rooms.InboundEvent{Raw: v.Raw, Event: v.Event, Kind: rooms.Backfilled, StateBefore: v.StateBefore}
		if v.Kind == checks.Rejected {
			in.Kind, in.Reason = rooms.Rejected, v.Reason
		}
		out = append(out, in)
	}
	if len(out) == 0 {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("none of the %d events passed", len(evs))
	}
	// The writer gets its own time: the checks may have used all of ctx's.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.Timeout)
	defer cancel()
	return b.cfg.Rooms.PersistBackfill(wctx, roomID, out)
}

// toCheck keeps the events of evs that this server does not hold, those
// it holds only as outliers, and the join's state events it lists without
// their state (marked in src, so they are checked in full).
func (b *Backfiller) toCheck(ctx context.Context, src *pageSource, evs []*pdu.Event) ([]*pdu.Event, error) {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	stored, err := b.cfg.Rooms.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	skip := make(map[string]bool, len(stored))
	for _, st := range stored {
		switch {
		case st.Kind == dag.Outlier:
		case st.Kind == "" && st.StateGroup == 0 && st.Pos < 0:
			src.upgrade[st.EventID] = true
		default:
			skip[st.EventID] = true
		}
	}
	out := evs[:0]
	for _, e := range evs {
		if !skip[e.ID] {
			out = append(out, e)
		}
	}
	return out, nil
}

// check runs the inbound checks on ev; when the checks lack its auth
// events, it fetches ev's auth chain from srv, and when they lack the state
// after its prev events (the oldest events of a page, whose prev events are
// older still), it asks srv for the state before ev (state_ids). Then it
// checks again.
func (b *Backfiller) check(ctx context.Context, p *checks.Pipeline, src *pageSource, srv, version string, ev *pdu.Event) (*checks.Verdict, error) {
	defer func() { src.given = nil }()
	authDone, stateDone := false, false
	for {
		v, err := p.Check(ctx, ev.Raw)
		var me *checks.MissingError
		if !errors.As(err, &me) {
			return v, err
		}
		switch {
		case len(me.Auth) > 0 && !authDone:
			authDone = true
			raws, err := b.cfg.Fetcher.EventAuth(ctx, srv, ev.RoomID, ev.ID)
			if err != nil {
				return nil, fmt.Errorf("%w (event_auth: %w)", me, err)
			}
			if len(raws) > maxStateEvents {
				return nil, fmt.Errorf("event_auth of %s: %d events, over the limit of %d", ev.ID, len(raws), maxStateEvents)
			}
			if err := b.storeOutliers(ctx, ev.RoomID, checks.ParseRoomEvents(raws, version, ev.RoomID)); err != nil {
				return nil, err
			}
		case len(me.Prev) > 0 && !stateDone && src.stateFetches > 0:
			stateDone = true
			src.stateFetches--
			given, err := b.stateBefore(ctx, src, srv, version, ev)
			if err != nil {
				return nil, err
			}
			src.given = given
		default:
			return nil, err
		}
	}
}

// stateBefore asks srv for the state before ev (state_ids), makes sure
// every event of it and of its auth chain is held (stored as outliers when
// not), and returns it.
func (b *Backfiller) stateBefore(ctx context.Context, src *pageSource, srv, version string, ev *pdu.Event) (checks.StateMap, error) {
	state, authChain, err := b.cfg.Fetcher.StateIDs(ctx, srv, ev.RoomID, ev.ID)
	if err != nil {
		return nil, fmt.Errorf("state_ids at %s: %w", ev.ID, err)
	}
	if len(state)+len(authChain) > maxStateEvents {
		return nil, fmt.Errorf("state_ids at %s: %d events, over the limit of %d", ev.ID, len(state)+len(authChain), maxStateEvents)
	}
	want := append(slices.Clone(state), authChain...)
	slices.Sort(want)
	want = slices.Compact(want)
	held, err := src.Events(ctx, want)
	if err != nil {
		return nil, err
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
	if len(lacking) > maxFetchEach {
		st, ac, err := b.cfg.Fetcher.State(ctx, srv, ev.RoomID, ev.ID)
		if err != nil {
			return nil, fmt.Errorf("state at %s: %w", ev.ID, err)
		}
		if len(st)+len(ac) > maxStateEvents {
			return nil, fmt.Errorf("state at %s: %d events, over the limit of %d", ev.ID, len(st)+len(ac), maxStateEvents)
		}
		fetched = checks.ParseRoomEvents(append(st, ac...), version, ev.RoomID)
	} else {
		for _, id := range lacking {
			raw, err := b.cfg.Fetcher.Event(ctx, srv, id)
			if err != nil {
				return nil, fmt.Errorf("event %s: %w", id, err)
			}
			e, _ := pdu.Parse(raw, version)
			if e == nil || e.ID != id || e.RoomID != ev.RoomID {
				return nil, fmt.Errorf("%s fetched from %s is not that event of the room", id, srv)
			}
			fetched = append(fetched, e)
		}
	}
	for _, e := range fetched {
		if _, ok := byID[e.ID]; !ok {
			byID[e.ID] = e
		}
	}
	if err := b.storeOutliers(ctx, ev.RoomID, fetched); err != nil {
		return nil, err
	}
	out := make(checks.StateMap, len(state))
	for _, id := range state {
		e := byID[id]
		if e == nil || e.StateKey == nil {
			return nil, fmt.Errorf("the state at %s names %s, not a state event held", ev.ID, id)
		}
		out[authrules.StateKey{Type: e.Type, StateKey: *e.StateKey}] = id
	}
	return out, nil
}

// storeOutliers stores, in auth order, those of evs the server does not
// hold, as outliers (checks 1–3). An event that fails is skipped: the
// event that needed it reports it missing again.
func (b *Backfiller) storeOutliers(ctx context.Context, roomID string, evs []*pdu.Event) error {
	if len(evs) == 0 {
		return nil
	}
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	held, err := b.cfg.Source.Events(ctx, ids)
	if err != nil {
		return err
	}
	var lacking []*pdu.Event
	for i, e := range evs {
		if i >= len(held) || held[i].Event == nil {
			lacking = append(lacking, e)
		}
	}
	for _, e := range checks.AuthOrder(lacking) {
		if _, _, err := b.cfg.Outliers.AcceptOutlier(ctx, roomID, e.Raw); err != nil && !errors.Is(err, checks.ErrAlreadyHeld) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.cfg.Log.Info("backfill: fetched auth or state event refused", "room", roomID, "event", e.ID, "err", err)
		}
	}
	return nil
}
