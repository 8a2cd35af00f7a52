package rooms

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Membership across servers (issue 11). As the resident server, the room
// service builds the templates of make_join and make_leave with the same
// writer-side rules a local join runs (bans, join rules, restricted joins,
// through the auth rules and restrictedJoinVia). As the joining server, it
// stores a room it did not have from the state a resident server gave
// (PersistJoined). The network is never waited on here: federation does
// the requests and the signature checks, then hands over checked events.

// ErrNotResident marks a membership change that this server cannot make by
// itself because none of its users is joined to the room: it must go
// through a resident server (make_join / make_leave).
// It matches ErrUnknownRoom, so a caller that cannot go remote answers as
// for a room it does not know.
var ErrNotResident = fmt.Errorf("%w: this server is not in the room", ErrUnknownRoom)

// checkResident refuses a local user's own join or leave in a room where
// others are joined but no user of this server is: this server's view of
// the room is stale, and only a resident server can place the event
// (make_join, make_leave). So is a room known only from an invite's
// stripped state, without its create event. A room no one is joined to
// stays this server's to rejoin.
func (rs *roomState) checkResident(serverName string) error {
	if rs.get("m.room.create", "") == nil || (rs.joined > 0 && !rs.hasLocalJoined(serverName)) {
		return fmt.Errorf("%w: %s", ErrNotResident, rs.id)
	}
	return nil
}

// Template is an unsigned event a resident server offers a joining or
// leaving server (the "event" of make_join and make_leave).
type Template struct {
	RoomID         string          `json:"room_id"`
	Sender         string          `json:"sender"`
	Type           string          `json:"type"`
	StateKey       string          `json:"state_key"`
	Content        json.RawMessage `json:"content"`
	PrevEvents     []string        `json:"prev_events"`
	AuthEvents     []string        `json:"auth_events"`
	Depth          int64           `json:"depth"`
	OriginServerTS int64           `json:"origin_server_ts"`
	Origin         string          `json:"origin,omitempty"`
}

// MakeMember builds the template of user's membership ("join", "leave" or
// "knock") in a room this server is in, for user's server to sign. It
// refuses what the auth rules would refuse against the current state (a
// banned user, an invite-only room without an invite, a knock on a room
// whose rule does not allow it, a leave of a user not in the room) and, for
// a restricted room, names the local authoriser as a local join does. It
// writes nothing. The answer is the room version and the template.
func (s *Service) MakeMember(ctx context.Context, roomID, user, membership string) (string, *Template, error) {
	if membership != "join" && membership != "leave" && membership != "knock" {
		return "", nil, fmt.Errorf("%w: membership %q", ErrInvalid, membership)
	}
	if membership == "join" || membership == "knock" {
		if err := s.checkNotBlocked(roomID); err != nil {
			return "", nil, err
		}
	}
	var version string
	var tmpl *Template
	err := s.submit(ctx, "", func(ctx context.Context, b *batch) error {
		version, tmpl = "", nil
		rs, err := b.room(ctx, roomID)
		if err != nil {
			return err
		}
		if !rs.hasLocalJoined(b.s.cfg.ServerName) {
			return fmt.Errorf("%w: %s", ErrNotResident, roomID)
		}
		content := map[string]any{"membership": membership}
		if membership == "join" {
			via, err := b.restrictedJoinVia(ctx, rs, user)
			if err != nil {
				return err
			}
			if via != "" {
				content["join_authorised_via_users_server"] = via
			}
		} else if cur := rs.membership(user); membership == "leave" && cur != "join" && cur != "invite" && cur != "knock" {
			return fmt.Errorf("%w: %s is not in the room", ErrForbidden, user)
		}
		p := pdu.Proto{RoomID: rs.id, Sender: user, Type: "m.room.member", StateKey: strPtr(user), Content: mustJSON(content),
			OriginServerTS: b.s.cfg.Now().UnixMilli()}
		p.PrevEvents, p.Depth = rs.prevEvents()
		auth := map[authrules.StateKey]*pdu.Event{}
		for _, k := range authrules.Needed(p.Type, p.StateKey, p.Sender, p.Content) {
			if ev := rs.get(k.Type, k.StateKey); ev != nil {
				auth[k] = ev
				if k.Type == "m.room.create" && pdu.RoomIDFromCreate(rs.version) {
					continue
				}
				p.AuthEvents = append(p.AuthEvents, ev.ID)
			}
		}
		// The auth rules judge the event as user's server will sign it; a
		// stand-in signed by this server is as good for that, since they
		// read neither signatures nor the origin.
		probe := p
		probe.Sender = "@probe:" + b.s.cfg.ServerName
		ev, err := pdu.Build(probe, rs.version, b.s.cfg.Key)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		ev.Sender = user
		if err := authrules.Check(rs.version, ev, auth); err != nil {
			return fmt.Errorf("%w: %v", ErrForbidden, err)
		}
		version = rs.version
		tmpl = &Template{RoomID: p.RoomID, Sender: user, Type: p.Type, StateKey: user, Content: p.Content,
			PrevEvents: p.PrevEvents, AuthEvents: p.AuthEvents, Depth: p.Depth, OriginServerTS: p.OriginServerTS,
			Origin: pdu.Domain(user)}
		if tmpl.AuthEvents == nil {
			tmpl.AuthEvents = []string{}
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	return version, tmpl, nil
}

// hasLocalJoined reports whether a user of serverName is joined.
func (rs *roomState) hasLocalJoined(serverName string) bool {
	suffix := ":" + serverName
	for k, e := range rs.state {
		if k.Type == "m.room.member" && strings.HasSuffix(k.StateKey, suffix) && membershipOf(e.ev.Content) == "join" {
			return true
		}
	}
	return false
}

// Resident reports whether a user of this server is joined to the room:
// only then can this server build the room's next event by itself. A room
// not held at all is not resident.
func (s *Service) Resident(ctx context.Context, roomID string) (bool, error) {
	ms, err := s.store.RoomMemberships(ctx, roomID)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	suffix := ":" + s.cfg.ServerName
	for _, m := range ms {
		if m.Membership == "join" && strings.HasSuffix(m.UserID, suffix) {
			return true, nil
		}
	}
	return false, nil
}

// OnBehalfOf returns the pipeline's Persister that marks the accepted
// events as taken for origin as the resident server (send_join,
// send_leave): the outbound queue then sends them to the room's other
// servers, which origin may not reach.
func (a InboundStore) OnBehalfOf(origin string) inbound.Persister {
	return behalfPersister{a: a, origin: origin}
}

type behalfPersister struct {
	a      InboundStore
	origin string
}

func (p behalfPersister) Persist(ctx context.Context, v *inbound.Verdict) (int64, error) {
	kind, err := inboundKind(v.Kind)
	if err != nil {
		return 0, err
	}
	in := InboundEvent{Raw: v.Raw, Event: v.Event, Kind: kind, Reason: v.Reason,
		StateBefore: v.StateBefore, ExtremitiesSeen: v.ExtremitiesSeen}
	if kind == Accepted {
		in.OnBehalfOf = p.origin
	}
	pos, err := p.a.s.PersistInbound(ctx, in)
	if errors.Is(err, ErrExtremitiesMoved) {
		return 0, fmt.Errorf("%w: %w", inbound.ErrExtremitiesMoved, err)
	}
	return pos, err
}

// AuthChain returns the stored events of the auth chains of ids (not ids
// themselves unless one is in another's chain), as stored. It reads at
// most maxChain events, so a hostile or huge room cannot make one request
// unbounded.
func (s *Service) AuthChain(ctx context.Context, ids []string) ([]dag.StoredPDU, error) {
	const maxChain = 100_000
	seen := make(map[string]bool, len(ids))
	var frontier []string
	start, err := s.store.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, st := range start {
		for _, a := range authIDsOf(st.PDU) {
			if !seen[a] {
				seen[a] = true
				frontier = append(frontier, a)
			}
		}
	}
	var out []dag.StoredPDU
	for len(frontier) > 0 {
		if len(out) > maxChain {
			return nil, fmt.Errorf("%w: auth chain over %d events", ErrTooLarge, maxChain)
		}
		stored, err := s.store.EventsByID(ctx, frontier)
		if err != nil {
			return nil, err
		}
		frontier = frontier[:0]
		for _, st := range stored {
			out = append(out, st)
			for _, a := range authIDsOf(st.PDU) {
				if !seen[a] {
					seen[a] = true
					frontier = append(frontier, a)
				}
			}
		}
	}
	return out, nil
}

// authIDsOf reads auth_events from a stored PDU; nil when it has none.
func authIDsOf(raw []byte) []string {
	var v struct {
		AuthEvents []string `json:"auth_events"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	return v.AuthEvents
}

// RemoteJoin is a room joined through a resident server, as the joining
// server checked it: every event's signatures and hashes verified, and
// each auth or state event checked against its own auth events.
type RemoteJoin struct {
	RoomID  string
	Version string
	// Events are the state and auth chain events that passed, each with
	// its raw PDU; stored as outliers when not held yet.
	Events []*pdu.Event
	// State is the room state before the join (event IDs, all in Events).
	State map[authrules.StateKey]string
	// Join is this server's join event, as the resident server accepted it
	// (with its signature when it authorised a restricted join); or the
	// invite or leave when Invite is set or State is nil.
	Join *pdu.Event
	// Invite marks an invite of a local user to a room this server is not
	// in: State is then the stripped state the inviting server gave,
	// laid over whatever this server still holds of the room, and the room
	// needs no create event yet.
	Invite bool

	// prestored is set by PersistJoined when prestoreJoined stored Events
	// ahead: the join's job then reads none of them back.
	prestored bool
}

// PersistJoined stores a room this server joins through another server:
// the room row when new, the state and auth events as outliers, and the
// join as the room's newest event, whose state (its state group) is the
// given state plus the join. The room's current state becomes that state,
// and its only forward extremity the join. It runs in the writer, which
// waits on nothing: the caller checked the events first. It returns the
// join's position.
func (s *Service) PersistJoined(ctx context.Context, rj RemoteJoin) (int64, error) {
	if rj.Join == nil || rj.Join.StateKey == nil || rj.Join.Type != "m.room.member" {
		return 0, fmt.Errorf("%w: no join event", ErrInvalid)
	}
	if rj.Join.RoomID != rj.RoomID {
		return 0, fmt.Errorf("%w: join event is in room %s, not %s", ErrInvalid, rj.Join.RoomID, rj.RoomID)
	}
	if rj.State == nil {
		// A leave through another server: the state is the one held.
		var pos int64
		err := s.submit(ctx, "", func(ctx context.Context, b *batch) error {
			rs, err := b.room(ctx, rj.RoomID)
			if err != nil {
				return err
			}
			rj.Version = rs.version
			rj.State = make(map[authrules.StateKey]string, len(rs.state))
			for k, e := range rs.state {
				rj.State[k] = e.ev.ID
			}
			pos, err = b.persistJoined(ctx, rj, nil)
			return err
		})
		return pos, err
	}
	createID, ok := rj.State[authrules.StateKey{Type: "m.room.create"}]
	if !ok && !rj.Invite {
		return 0, fmt.Errorf("%w: the state has no create event", ErrInvalid)
	}
	var create *pdu.Event
	for _, ev := range rj.Events {
		if ev.ID == createID {
			create = ev
		}
	}
	if create == nil && !rj.Invite {
		return 0, fmt.Errorf("%w: create event %s not given", ErrInvalid, createID)
	}
	// A big answer's events go in ahead, in chunks (remote_join_chunks.go).
	var err error
	if rj.prestored, err = s.prestoreJoined(ctx, rj); err != nil {
		return 0, err
	}
	var pos int64
	err = s.submitCost(ctx, "", len(rj.Events)/64+1, func(ctx context.Context, b *batch) error {
		var err error
		pos, err = b.persistJoined(ctx, rj, create)
		return err
	})
	return pos, err
}

func (b *batch) persistJoined(ctx context.Context, rj RemoteJoin, create *pdu.Event) (int64, error) {
	rs, err := b.room(ctx, rj.RoomID)
	switch {
	case errors.Is(err, ErrUnknownRoom) && (create != nil || rj.Invite):
		now := b.s.cfg.Now().UnixMilli()
		creator := ""
		if create != nil {
			creator = create.Sender
		}
		if err := b.tx.InsertRoom(ctx, storage.Room{RoomID: rj.RoomID, Version: rj.Version, Creator: creator, CreatedTS: now}); err != nil {
			return 0, dbErr(err)
		}
		rs = &roomState{id: rj.RoomID, version: rj.Version, creator: creator, state: map[authrules.StateKey]*stateEntry{}, bytes: roomOverhead}
		b.s.cache.put(rs)
		b.onUndo(func() { b.s.cache.remove(rj.RoomID) })
	case err != nil:
		return 0, err
	case rs.version != rj.Version:
		return 0, fmt.Errorf("%w: room %s is version %s here, not %s", ErrInvalid, rj.RoomID, rs.version, rj.Version)
	}
	ids := make([]string, 0, len(rj.Events)+1)
	if !rj.prestored {
		for _, ev := range rj.Events {
			ids = append(ids, ev.ID)
		}
	}
	ids = append(ids, rj.Join.ID)
	held, err := b.tx.EventsByID(ctx, ids)
	if err != nil {
		return 0, dbErr(err)
	}
	have := make(map[string]dag.StoredPDU, len(rj.Events)+1)
	if rj.prestored {
		// All held, and none to store again: a 10,000-event read less in
		// the job that holds the writer.
		for _, ev := range rj.Events {
			have[ev.ID] = dag.StoredPDU{EventID: ev.ID}
		}
	}
	for _, h := range held {
		have[h.EventID] = h
	}
	if h, ok := have[rj.Join.ID]; ok && h.Kind != dag.Outlier {
		return h.Pos, nil // stored already (a retried join)
	}
	now := b.s.cfg.Now().UnixMilli()
	// The state events become history before the join (backfilled rows,
	// below every position the room had): the store's current state and
	// member reads, and the outbound queue's view of who is in the room,
	// read listed events. Newest first, so the oldest gets the lowest
	// position. The rest of the auth chain is kept as outliers.
	inState := make(map[string]bool, len(rj.State))
	for _, id := range rj.State {
		inState[id] = true
	}
	var listed []*pdu.Event
	for _, ev := range rj.Events {
		if h, ok := have[ev.ID]; inState[ev.ID] && (!ok || h.Kind == dag.Outlier) {
			listed = append(listed, ev)
		}
	}
	slices.SortStableFunc(listed, func(x, y *pdu.Event) int { return cmp.Compare(y.Depth, x.Depth) })
	for _, ev := range listed {
		if h, ok := have[ev.ID]; ok && h.Kind == dag.Outlier {
			if err := b.tx.DeleteUnlisted(ctx, ev.ID); err != nil {
				return 0, dbErr(err)
			}
		}
		if err := b.insertInbound(ctx, rs, ev, ev.Raw, b.nextBackfillPos(), 0); err != nil {
			return 0, err
		}
		have[ev.ID] = dag.StoredPDU{EventID: ev.ID}
	}
	for _, ev := range rj.Events {
		if _, ok := have[ev.ID]; ok {
			continue
		}
		if err := b.tx.InsertUnlisted(ctx, dag.UnlistedEvent{EventID: ev.ID, RoomID: rs.id, Kind: dag.Outlier,
			Depth: ev.Depth, PrevIDs: ev.PrevEvents, AuthIDs: ev.AuthEvents, PDU: ev.Raw, ReceivedTS: now}); err != nil {
			return 0, dbErr(err)
		}
		have[ev.ID] = dag.StoredPDU{EventID: ev.ID, Kind: dag.Outlier}
	}
	if h, ok := have[rj.Join.ID]; ok && h.Kind == dag.Outlier {
		if err := b.tx.DeleteUnlisted(ctx, rj.Join.ID); err != nil {
			return 0, dbErr(err)
		}
	}
	after := make(dag.StateMap, len(rj.State)+len(rs.state)+1)
	if rj.Invite {
		for k, e := range rs.state {
			after[dag.StateTuple(k)] = e.ev.ID
		}
	}
	for k, id := range rj.State {
		after[dag.StateTuple(k)] = id
	}
	after[dag.StateTuple{Type: "m.room.member", StateKey: *rj.Join.StateKey}] = rj.Join.ID
	group, hops, err := b.groupFor(ctx, rs.id, after, 0, nil, 0)
	if err != nil {
		return 0, err
	}
	pos := b.nextPos()
	if err := b.insertInbound(ctx, rs, rj.Join, rj.Join.Raw, pos, group); err != nil {
		return 0, err
	}
	// The join is the room's only forward extremity: whatever this server
	// held of the room from an earlier stay is older than the state the
	// resident server gave.
	if err := b.advanceExtremitiesTx(ctx, rs, rj.Join); err != nil {
		return 0, err
	}
	old := rs.extrem
	rs.extrem = []dag.Extremity{{EventID: rj.Join.ID, Depth: rj.Join.Depth}}
	b.onUndo(func() { rs.extrem = old })
	current := make(dag.StateMap, len(rs.state))
	for k, e := range rs.state {
		current[dag.StateTuple(k)] = e.ev.ID
	}
	// The events given are parsed already: a 10,000-member room's state
	// read back and parsed again took a tenth of the join.
	known := append(rj.Events[:len(rj.Events):len(rj.Events)], rj.Join)
	if err := b.changeCurrentState(ctx, rs, pos, current, after, groupState{state: after, group: group, hops: hops}, known...); err != nil {
		return 0, err
	}
	b.commit.Events = append(b.commit.Events, CommittedEvent{
		RoomID: rs.id, Pos: pos, Type: rj.Join.Type, StateKey: rj.Join.StateKey, Membership: membershipOf(rj.Join.Content), Sender: rj.Join.Sender,
	})
	return pos, nil
}
