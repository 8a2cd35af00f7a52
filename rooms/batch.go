package rooms

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms/authrules"
	"github.com/parley-im/parley/rooms/dag"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Commit describes what one committed batch changed, for the notifier.
type Commit struct {
	// Pos is the highest position the batch assigned: the new watermark.
	Pos int64
	// Events are the appended room events, in order.
	Events []CommittedEvent
	// RoomTouches are room-level stream changes that are not events (receipts).
	RoomTouches []Touch
	// UserTouches wake one user's devices (account data, to-device).
	UserTouches []Touch
	// PeerTouches wake everyone who shares a room with the user (presence,
	// device lists).
	PeerTouches []Touch
	// State lists every change to rooms' current (resolved) state, in
	// order: a local state event's own, and those state resolution makes
	// when another server's event forks the room (which may bring back an
	// older event, or remove a key).
	State []StateChange
	// Purged lists rooms whose stored events an operator purge deleted
	// (purge.go): caches of their events must go.
	Purged []string
}

// StateChange is one change to a room's current state at a position.
type StateChange struct {
	RoomID   string
	Pos      int64
	Type     string
	StateKey string
	EventID  string // "" when the key left the state
	// Membership is the new membership of an m.room.member change ("" when
	// removed).
	Membership string
}

// CommittedEvent is the part of an event the notifier routes on.
type CommittedEvent struct {
	RoomID     string
	Pos        int64
	Type       string
	StateKey   *string
	Membership string
	Sender     string
	// What the server-default push rules say about the event
	// (pushrules.Class): the notifier keeps recent notifying events so that
	// a woken member's unread count needs no query. Mentions is read-only.
	Notify, RoomMention bool
	Mentions            []string
	// Thread is the root of the thread the event is in (its m.thread
	// relation), "" for the main timeline. It is set only for events that
	// count for unread notifications, the only readers.
	Thread string
}

// Touch names a room or user and the position that changed it.
type Touch struct {
	ID  string
	Pos int64
	// User is, for a room touch, the user it is about (a receipt's owner):
	// above the small tier only they are woken (rooms/tiers.go).
	User string
	// Presence marks a peer touch as a presence change, which rooms above
	// the small tier do not carry; device-list changes still do.
	Presence bool
}

// batch is one group commit in progress. It is owned by the writer goroutine.
type batch struct {
	s        *Service
	tx       *storage.WriteTx
	startPos int64
	commit   *Commit
	undo     []func()
	txns     map[txnKey]string // idempotency keys written by this batch

	// The group and backfill counters at the batch's start, for rollback.
	startGroup, startBackfill int64

	// The rooms whose extremities the batch moved (with their extremities
	// before; only the keys are read), written once at the end (flushDAG):
	// one statement per room, not one a send.
	extrem map[*roomState][]dag.Extremity
	groups map[*roomState]int64 // rooms whose current group moved, with the group before

	// searchCaughtUp is set when a search pass in the batch indexed every
	// event up to its own position; searchableAtPass is how many of the
	// batch's searchable events it covered (searchindex.go).
	searchCaughtUp   bool
	searchableAtPass int
}

// nextPos assigns the next stream position.
func (b *batch) nextPos() int64 {
	b.s.pos++
	return b.s.pos
}

// nextGroup assigns the next state group ID.
func (b *batch) nextGroup() int64 {
	b.s.group++
	return b.s.group
}

// nextBackfillPos assigns the next position for backfilled history: below
// every position in use, descending, so it sorts before what the room holds
// and never falls in a sync range (those start at 0).
func (b *batch) nextBackfillPos() int64 {
	b.s.backfillPos--
	return b.s.backfillPos
}

func (b *batch) onUndo(f func()) { b.undo = append(b.undo, f) }

// rollback reverts every memory change of the batch and its positions.
func (b *batch) rollback() {
	b.rollbackTo(0)
	b.s.pos = b.startPos
	b.s.group, b.s.backfillPos = b.startGroup, b.startBackfill
}

func (b *batch) rollbackTo(mark int) {
	for i := len(b.undo) - 1; i >= mark; i-- {
		b.undo[i]()
	}
	b.undo = b.undo[:mark]
}

// room returns the writer's cached state of a room, loading it on first use.
func (b *batch) room(ctx context.Context, roomID string) (*roomState, error) {
	if rs := b.s.cache.get(roomID); rs != nil {
		return rs, nil
	}
	head, err := b.s.store.LoadRoomHead(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownRoom, roomID)
	}
	if err != nil {
		return nil, dbErr(err)
	}
	rs := &roomState{
		id:      roomID,
		version: head.Version,
		creator: head.Creator,
		extrem:  head.Extremities,
		group:   head.StateGroup,
		state:   make(map[authrules.StateKey]*stateEntry, len(head.State)),
		bytes:   roomOverhead,
	}
	if head.ExtremitiesLatest && len(head.Extremities) == 1 {
		rs.latest, rs.extremLatest = head.Extremities[0].EventID, true
	}
	if rs.group != 0 {
		// Only the hop count is needed; it is one indexed row.
		if rs.groupHops, err = b.tx.StateGroupHops(ctx, rs.group); err != nil {
			return nil, dbErr(err)
		}
	}
	for _, se := range head.State {
		ev, err := pdu.Parse(se.PDU, head.Version)
		if errors.Is(err, pdu.ErrBadHash) && ev != nil {
			err = nil // a redacted event: its content no longer matches its hash, by design
		}
		if err != nil {
			return nil, dbErr(fmt.Errorf("parse state event %s: %w", se.EventID, err))
		}
		rs.state[authrules.StateKey{Type: se.Type, StateKey: *se.StateKey}] = &stateEntry{ev: ev, pos: se.Pos}
		b.s.cache.stateChanged(rs, nil, ev)
		if se.Type == "m.room.member" && se.Membership == "join" {
			rs.joined++
		}
	}
	b.s.cache.put(rs)
	return rs, nil
}

// roomState is the writer's cache of a room: enough to build and authorise
// the next event without reading the database.
type roomState struct {
	id, version, creator string
	// extrem are the room's forward extremities, deepest first.
	extrem []dag.Extremity
	// latest is the room's listed event with the highest position, when
	// known ("" until the writer appends one); extremLatest is whether the
	// room's row stores its extremities as "the latest event"
	// (storage.SetExtremitiesLatest), so a message in an unforked room
	// rewrites no row of the room's.
	latest       string
	extremLatest bool
	// group is the state group holding the current state (0: none yet, for
	// a room written before state groups), groupHops its deltas from the
	// nearest snapshot.
	group     int64
	groupHops int
	state     map[authrules.StateKey]*stateEntry
	joined    int

	// Kept by roomCache.stateChanged: the estimated memory the room holds,
	// and the count and bytes of its state other than memberships, which
	// checkStateSize bounds.
	bytes      int64
	otherCount int
	otherBytes int64
	// The cache's recency list; nil when first/last or not cached.
	prev, next *roomState
}

type stateEntry struct {
	ev  *pdu.Event
	pos int64
}

func keyOf(typ, key string) authrules.StateKey { return authrules.StateKey{Type: typ, StateKey: key} }

func (rs *roomState) get(typ, key string) *pdu.Event {
	if e := rs.state[keyOf(typ, key)]; e != nil {
		return e.ev
	}
	return nil
}

// membership returns a user's current membership ("" when none).
func (rs *roomState) membership(userID string) string {
	ev := rs.get("m.room.member", userID)
	if ev == nil {
		return ""
	}
	return membershipOf(ev.Content)
}

func (rs *roomState) powerLevels() authrules.PowerLevels {
	// RoomPowerLevels adds the creators' unlimited power of room version 12.
	if create := rs.get("m.room.create", ""); create != nil {
		if pl, err := authrules.RoomPowerLevels(rs.version, create, rs.get("m.room.power_levels", "")); err == nil {
			return pl
		}
	}
	if ev := rs.get("m.room.power_levels", ""); ev != nil {
		if pl, err := authrules.ParsePowerLevels(ev.Content); err == nil {
			return pl
		}
	}
	return authrules.DefaultPowerLevels(rs.creator)
}
