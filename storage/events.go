package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms/dag"
)

// Event is a stored room event with the columns readers need. PDU is only
// filled by the loaders that say so.
type Event struct {
	Pos         int64
	EventID     string
	RoomID      string
	Type        string
	StateKey    *string
	Sender      string
	Depth       int64
	OriginTS    int64
	Membership  string // content.membership of an m.room.member event
	PDU         []byte // canonical federation form
	Client      []byte // client form without "unsigned"
	Unsigned    []byte // static unsigned members (prev_content, ...), a JSON object or empty
	TxnDevice   string // the device that sent it with a txnId, for unsigned.transaction_id
	TxnID       string
	RedactedBy  string
	Notify      bool // notifies every member but the sender under the default push rules
	RoomMention bool // an @room mention by a sender allowed to make one
	// StateGroup is the state group after the event (0: written before
	// state groups).
	StateGroup int64
	// PrevIDs and AuthIDs are the event's prev_events and auth_events,
	// stored with its row (Store.Edges reads them); written only.
	PrevIDs, AuthIDs []string
	// NotCurrent keeps InsertEvent from making a state event current state:
	// for events that lost state resolution, backfilled history, and
	// events whose current state the writer sets itself (ApplyCurrentState).
	NotCurrent bool
}

// StateKeyOr returns the state key, or "" for a message event.
func (e *Event) StateKeyOr() string {
	if e.StateKey == nil {
		return ""
	}
	return *e.StateKey
}

// IsState reports whether the event is a state event.
func (e *Event) IsState() bool { return e.StateKey != nil }

const eventCols = `e.pos, e.event_id, e.room_id, e.type, e.state_key, e.sender, e.depth, e.origin_ts, COALESCE(e.membership, ''), e.client, e.unsigned, e.txn_device, e.txn_id, e.redacted_by, e.notify, e.room_mention`

func scanEvent(row interface{ Scan(...any) error }, withPDU bool) (Event, error) {
	var e Event
	var sk sql.NullString
	var notify, mention int
	var client, unsigned string
	dest := []any{&e.Pos, &e.EventID, &e.RoomID, &e.Type, &sk, &e.Sender, &e.Depth, &e.OriginTS, &e.Membership,
		&client, &unsigned, &e.TxnDevice, &e.TxnID, &e.RedactedBy, &notify, &mention}
	var pdu string
	if withPDU {
		dest = append(dest, &pdu)
	}
	if err := row.Scan(dest...); err != nil {
		return Event{}, err
	}
	if sk.Valid {
		s := sk.String
		e.StateKey = &s
	}
	e.Client, e.Unsigned = []byte(client), []byte(unsigned)
	if withPDU {
		e.PDU = []byte(pdu)
	}
	e.Notify, e.RoomMention = notify == 1, mention == 1
	return e, nil
}

func collectEvents(rows *sql.Rows, withPDU bool) ([]Event, error) {
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows, withPDU)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Room is a room's row.
type Room struct {
	RoomID    string
	Version   string
	Creator   string
	Published bool
	CreatedTS int64
}

// GetRoom loads a room's row.
func (s *Store) GetRoom(ctx context.Context, roomID string) (Room, error) {
	var r Room
	var pub int
	err := s.read.QueryRowContext(ctx, `SELECT room_id, room_version, creator, published, created_ts FROM rooms WHERE room_id = $1`, roomID).
		Scan(&r.RoomID, &r.Version, &r.Creator, &pub, &r.CreatedTS)
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, ErrNotFound
	}
	if err != nil {
		return Room{}, fmt.Errorf("get room %s: %w", roomID, err)
	}
	r.Published = pub == 1
	return r, nil
}

// SetPublished lists or unlists a room in the public room directory.
func (s *Store) SetPublished(ctx context.Context, roomID string, published bool) error {
	return s.execOne(ctx, `UPDATE rooms SET published = $2 WHERE room_id = $1`, roomID, boolInt(published))
}

// PublishedRooms lists rooms in the public directory, with a page cursor.
func (s *Store) PublishedRooms(ctx context.Context, since string, limit int) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT room_id FROM rooms WHERE published = 1 AND room_id > $1 ORDER BY room_id LIMIT $2`, since, limit)
	if err != nil {
		return nil, fmt.Errorf("published rooms: %w", err)
	}
	return collectStrings(rows)
}

func collectStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// RoomHead is what the writer needs to extend a room's log.
type RoomHead struct {
	Room
	Extremities []dag.Extremity // deepest first
	// ExtremitiesLatest: the row stores them as "the room's latest event"
	// (SetExtremitiesLatest).
	ExtremitiesLatest bool
	StateGroup        int64   // the group holding current state; 0 for none yet
	State             []Event // current state, with PDUs
}

// LoadRoomHead loads a room for the writer: its row, its current state with
// PDUs, and its latest event.
func (s *Store) LoadRoomHead(ctx context.Context, roomID string) (RoomHead, error) {
	room, err := s.GetRoom(ctx, roomID)
	if err != nil {
		return RoomHead{}, err
	}
	h := RoomHead{Room: room}
	if h.Extremities, h.ExtremitiesLatest, err = s.extremities(ctx, roomID); err != nil {
		return RoomHead{}, fmt.Errorf("load room %s head: %w", roomID, err)
	}
	if len(h.Extremities) == 0 {
		return RoomHead{}, fmt.Errorf("load room %s head: no forward extremity", roomID)
	}
	if err := s.read.QueryRowContext(ctx, `SELECT state_group FROM rooms WHERE room_id = $1`, roomID).Scan(&h.StateGroup); err != nil {
		return RoomHead{}, fmt.Errorf("load room %s state group: %w", roomID, err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+eventCols+`, e.pdu FROM current_state cs JOIN events e ON e.event_id = cs.event_id WHERE cs.room_id = $1`, roomID)
	if err != nil {
		return RoomHead{}, fmt.Errorf("load room %s state: %w", roomID, err)
	}
	if h.State, err = collectEvents(rows, true); err != nil {
		return RoomHead{}, fmt.Errorf("load room %s state: %w", roomID, err)
	}
	return h, nil
}

// GetEvent loads one event by ID, with its PDU.
func (s *Store) GetEvent(ctx context.Context, eventID string) (Event, error) {
	e, err := scanEvent(s.read.QueryRowContext(ctx, `SELECT `+eventCols+`, e.pdu FROM events e WHERE event_id = $1`, eventID), true)
	if errors.Is(err, sql.ErrNoRows) {
		return Event{}, ErrNotFound
	}
	if err != nil {
		return Event{}, fmt.Errorf("get event %s: %w", eventID, err)
	}
	return e, nil
}

// TxnEvent returns the event a (user, device, txnId) already produced.
func (s *Store) TxnEvent(ctx context.Context, userID, deviceID, txnID string) (string, error) {
	return txnEvent(ctx, s.read, userID, deviceID, txnID)
}

func txnEvent(ctx context.Context, q queryer, userID, deviceID, txnID string) (string, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT event_id FROM txns WHERE user_id = $1 AND device_id = $2 AND txn_id = $3`, userID, deviceID, txnID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("txn lookup: %w", err)
	}
	return id, nil
}

// RoomEvents pages a room's log. Backwards (dir 'b') returns events with
// pos < from, newest first, stopping above to (0 = no bound); forwards returns
// pos > from, oldest first, up to to (0 = no bound).
func (s *Store) RoomEvents(ctx context.Context, roomID string, from, to int64, backwards bool, limit int) ([]Event, error) {
	var rows *sql.Rows
	var err error
	if backwards {
		rows, err = s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM events e WHERE room_id = $1 AND pos < $2 AND pos > $3 ORDER BY e.pos DESC LIMIT $4`, roomID, from, to, limit)
	} else {
		if to == 0 {
			to = 1<<62 - 1
		}
		rows, err = s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM events e WHERE room_id = $1 AND pos > $2 AND pos <= $3 ORDER BY e.pos ASC LIMIT $4`, roomID, from, to, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("room events: %w", err)
	}
	return collectEvents(rows, false)
}

// stateAtPos returns the room's state as it was at position pos (after the
// event at pos), for history written before state groups: a linear log is
// its own delta chain, for each (type, state_key) the latest state event at
// or before pos.
func (s *Store) stateAtPos(ctx context.Context, roomID string, pos int64) ([]Event, error) {
	rows, err := s.read.QueryContext(ctx, `
		SELECT `+eventCols+` FROM events e
		WHERE e.room_id = $1 AND e.state_key IS NOT NULL AND e.pos = (
			SELECT MAX(e2.pos) FROM events e2
			WHERE e2.room_id = e.room_id AND e2.type = e.type AND e2.state_key = e.state_key AND e2.pos <= $2)
		ORDER BY e.pos`, roomID, pos)
	if err != nil {
		return nil, fmt.Errorf("state at %d: %w", pos, err)
	}
	return collectEvents(rows, false)
}

// memberEventsAtPos is stateAtPos for the member events of userIDs.
func (s *Store) memberEventsAtPos(ctx context.Context, roomID string, userIDs []string, pos int64) ([]Event, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(userIDs)+2)
	args = append(args, roomID, pos)
	for _, u := range userIDs {
		args = append(args, u)
	}
	rows, err := s.read.QueryContext(ctx, `
		SELECT `+eventCols+` FROM events e
		WHERE e.room_id = $1 AND e.type = 'm.room.member' AND e.state_key IN (`+placeholders(3, len(userIDs))+`) AND e.pos = (
			SELECT MAX(e2.pos) FROM events e2
			WHERE e2.room_id = e.room_id AND e2.type = 'm.room.member' AND e2.state_key = e.state_key AND e2.pos <= $2)
		ORDER BY e.pos`, args...)
	if err != nil {
		return nil, fmt.Errorf("member events at %d: %w", pos, err)
	}
	return collectEvents(rows, false)
}

// CurrentState returns a room's current state events (client columns).
func (s *Store) CurrentState(ctx context.Context, roomID string) ([]Event, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM current_state cs JOIN events e ON e.event_id = cs.event_id WHERE cs.room_id = $1 ORDER BY e.pos`, roomID)
	if err != nil {
		return nil, fmt.Errorf("current state: %w", err)
	}
	return collectEvents(rows, false)
}

// Membership is a user's latest membership in a room.
type Membership struct {
	RoomID     string
	UserID     string
	Membership string
	Pos        int64
	EventID    string
	Sender     string
	Forgotten  bool
}

const membershipCols = `room_id, user_id, membership, pos, event_id, sender, forgotten`

func collectMemberships(rows *sql.Rows) ([]Membership, error) {
	defer rows.Close()
	var out []Membership
	for rows.Next() {
		var m Membership
		var forgotten int
		if err := rows.Scan(&m.RoomID, &m.UserID, &m.Membership, &m.Pos, &m.EventID, &m.Sender, &forgotten); err != nil {
			return nil, err
		}
		m.Forgotten = forgotten == 1
		out = append(out, m)
	}
	return out, rows.Err()
}

// UserMemberships lists a user's memberships, optionally only one kind.
func (s *Store) UserMemberships(ctx context.Context, userID, membership string) ([]Membership, error) {
	q := `SELECT ` + membershipCols + ` FROM memberships WHERE user_id = $1`
	args := []any{userID}
	if membership != "" {
		q += ` AND membership = $2`
		args = append(args, membership)
	}
	rows, err := s.read.QueryContext(ctx, q+` ORDER BY room_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("user memberships: %w", err)
	}
	return collectMemberships(rows)
}

// GetMembership returns one user's membership in a room.
func (s *Store) GetMembership(ctx context.Context, roomID, userID string) (Membership, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+membershipCols+` FROM memberships WHERE room_id = $1 AND user_id = $2`, roomID, userID)
	if err != nil {
		return Membership{}, fmt.Errorf("get membership: %w", err)
	}
	ms, err := collectMemberships(rows)
	if err != nil {
		return Membership{}, fmt.Errorf("get membership: %w", err)
	}
	if len(ms) == 0 {
		return Membership{}, ErrNotFound
	}
	return ms[0], nil
}

// RoomMemberships lists every membership row of a room.
func (s *Store) RoomMemberships(ctx context.Context, roomID string) ([]Membership, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+membershipCols+` FROM memberships WHERE room_id = $1 ORDER BY user_id`, roomID)
	if err != nil {
		return nil, fmt.Errorf("room memberships: %w", err)
	}
	return collectMemberships(rows)
}

// AllJoined returns every (room, user) join, for warming the notifier at start.
func (s *Store) AllJoined(ctx context.Context) ([]Membership, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+membershipCols+` FROM memberships WHERE membership = 'join'`)
	if err != nil {
		return nil, fmt.Errorf("all joined: %w", err)
	}
	return collectMemberships(rows)
}

// MembershipHistory returns a user's member events in a room in log order,
// and the room's history-visibility events: what /messages needs to decide
// which events the user may see.
func (s *Store) MembershipHistory(ctx context.Context, roomID, userID string) (members, visibility []Event, err error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM events e WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2 ORDER BY pos`, roomID, userID)
	if err != nil {
		return nil, nil, fmt.Errorf("membership history: %w", err)
	}
	if members, err = collectEvents(rows, false); err != nil {
		return nil, nil, err
	}
	rows, err = s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM events e WHERE room_id = $1 AND type = 'm.room.history_visibility' AND state_key = '' ORDER BY pos`, roomID)
	if err != nil {
		return nil, nil, fmt.Errorf("visibility history: %w", err)
	}
	visibility, err = collectEvents(rows, false)
	return members, visibility, err
}

// SetForgotten marks a left room as forgotten by the user.
func (s *Store) SetForgotten(ctx context.Context, roomID, userID string) error {
	return s.execOne(ctx, `UPDATE memberships SET forgotten = 1 WHERE room_id = $1 AND user_id = $2`, roomID, userID)
}

// Alias resolution.

// GetAlias resolves a room alias.
func (s *Store) GetAlias(ctx context.Context, alias string) (roomID, creator string, err error) {
	err = s.read.QueryRowContext(ctx, `SELECT room_id, creator FROM room_aliases WHERE alias = $1`, alias).Scan(&roomID, &creator)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrNotFound
	}
	if err != nil {
		return "", "", fmt.Errorf("get alias: %w", err)
	}
	return roomID, creator, nil
}

// PutAlias maps alias to a room; ErrConflict when the alias is taken.
func (s *Store) PutAlias(ctx context.Context, alias, roomID, creator string) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1,$2,$3)`, alias, roomID, creator)
	if isUniqueViolation(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("put alias: %w", err)
	}
	return nil
}

// DeleteAlias removes an alias.
func (s *Store) DeleteAlias(ctx context.Context, alias string) error {
	return s.execOne(ctx, `DELETE FROM room_aliases WHERE alias = $1`, alias)
}

// RoomAliases lists a room's local aliases.
func (s *Store) RoomAliases(ctx context.Context, roomID string) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias`, roomID)
	if err != nil {
		return nil, fmt.Errorf("room aliases: %w", err)
	}
	return collectStrings(rows)
}
