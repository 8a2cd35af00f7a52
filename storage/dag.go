package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/parley-im/parley/rooms/dag"
)

// The room as a DAG: edges, forward extremities, events users never see,
// state groups and the per-position changes of current state. See
// docs/architecture.md, "Rooms as DAGs". Storage only records; package rooms
// decides what is accepted, what the state is, and assigns every position
// and group ID.

// SetExtremities records a room's forward extremities (deepest first).
func (w *WriteTx) SetExtremities(ctx context.Context, roomID string, xs []dag.Extremity) error {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatInt(x.Depth, 10))
		b.WriteByte(' ')
		b.WriteString(x.EventID)
	}
	if _, err := w.tx.ExecContext(ctx, `UPDATE rooms SET extremities = $2 WHERE room_id = $1`, roomID, b.String()); err != nil {
		return fmt.Errorf("set extremities of %s: %w", roomID, err)
	}
	return nil
}

// extremitiesLatest is the stored form of the usual case: the room's one
// forward extremity is its listed event with the highest position. A
// room's row then changes only when its DAG forks or its state moves, not
// with every message (the column was one UPDATE per send).
const extremitiesLatest = "latest"

// SetExtremitiesLatest records that the room's one forward extremity is
// its listed event with the highest position, whichever that is.
func (w *WriteTx) SetExtremitiesLatest(ctx context.Context, roomID string) error {
	if _, err := w.tx.ExecContext(ctx, `UPDATE rooms SET extremities = $2 WHERE room_id = $1`, roomID, extremitiesLatest); err != nil {
		return fmt.Errorf("set extremities of %s: %w", roomID, err)
	}
	return nil
}

// Extremities returns a room's forward extremities, deepest first.
func (s *Store) Extremities(ctx context.Context, roomID string) ([]dag.Extremity, error) {
	xs, _, err := s.extremities(ctx, roomID)
	return xs, err
}

// extremities returns a room's forward extremities, and whether they are
// stored as extremitiesLatest.
func (s *Store) extremities(ctx context.Context, roomID string) ([]dag.Extremity, bool, error) {
	var enc string
	err := s.read.QueryRowContext(ctx, `SELECT extremities FROM rooms WHERE room_id = $1`, roomID).Scan(&enc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("extremities of %s: %w", roomID, err)
	}
	if enc != extremitiesLatest {
		xs, err := parseExtremities(enc)
		return xs, false, err
	}
	var x dag.Extremity
	err = s.read.QueryRowContext(ctx, `SELECT event_id, depth FROM events WHERE room_id = $1 ORDER BY pos DESC LIMIT 1`, roomID).Scan(&x.EventID, &x.Depth)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("latest event of %s: %w", roomID, err)
	}
	return []dag.Extremity{x}, true, nil
}

func parseExtremities(enc string) ([]dag.Extremity, error) {
	f := strings.Fields(enc)
	if len(f)%2 != 0 {
		return nil, fmt.Errorf("extremities %q: odd field count", enc)
	}
	out := make([]dag.Extremity, 0, len(f)/2)
	for i := 0; i < len(f); i += 2 {
		d, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("extremities %q: %w", enc, err)
		}
		out = append(out, dag.Extremity{EventID: f[i+1], Depth: d})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Depth > out[b].Depth })
	return out, nil
}

// InsertStateGroup writes a state group: a delta on g.Parent (deltas), or,
// when g.Parent is 0, a full snapshot (snapshot), as one row.
func (w *WriteTx) InsertStateGroup(ctx context.Context, g dag.StateGroupRow, deltas []dag.StateDelta, snapshot dag.StateMap) error {
	snap := ""
	if g.Parent == 0 {
		snap = encodeSnapshot(snapshot)
	}
	if _, err := w.tx.ExecContext(ctx, `INSERT INTO state_groups (group_id, room_id, parent, hops, snapshot) VALUES ($1,$2,$3,$4,$5)`,
		g.ID, g.RoomID, g.Parent, g.Hops, snap); err != nil {
		return fmt.Errorf("insert state group %d: %w", g.ID, err)
	}
	if g.Parent == 0 || len(deltas) == 0 {
		return nil
	}
	var b strings.Builder
	args := make([]any, 0, 1+3*len(deltas))
	args = append(args, g.ID)
	b.WriteString(`INSERT INTO state_group_deltas (group_id, type, state_key, event_id) VALUES `)
	for i, d := range deltas {
		if i > 0 {
			b.WriteByte(',')
		}
		n := len(args)
		fmt.Fprintf(&b, "($1,$%d,$%d,$%d)", n+1, n+2, n+3)
		args = append(args, d.Type, d.StateKey, d.EventID)
	}
	if _, err := w.tx.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("insert state group %d deltas: %w", g.ID, err)
	}
	return nil
}

// encodeSnapshot renders a state as {type: {state_key: event_id}}: each type
// is written once, which is most of the saving interning would give.
func encodeSnapshot(m dag.StateMap) string {
	byType := make(map[string]map[string]string)
	for k, id := range m {
		if id == "" {
			continue
		}
		t := byType[k.Type]
		if t == nil {
			t = map[string]string{}
			byType[k.Type] = t
		}
		t[k.StateKey] = id
	}
	b, _ := json.Marshal(byType) // maps of strings always marshal
	return string(b)
}

// SetRoomStateGroup records the group whose state is the room's current state.
func (w *WriteTx) SetRoomStateGroup(ctx context.Context, roomID string, group int64) error {
	if _, err := w.tx.ExecContext(ctx, `UPDATE rooms SET state_group = $2 WHERE room_id = $1`, roomID, group); err != nil {
		return fmt.Errorf("set room state group: %w", err)
	}
	return nil
}

// ApplyCurrentState changes a room's materialised current state (and
// memberships) and records each change at pos in current_state_deltas.
// InsertEvent does this itself for an event that extends current state;
// this is for changes state resolution makes.
func (w *WriteTx) ApplyCurrentState(ctx context.Context, roomID string, pos int64, changes []dag.CurrentChange) error {
	w.wrote(pos)
	for _, c := range changes {
		if c.EventID == "" {
			if _, err := w.tx.ExecContext(ctx, `DELETE FROM current_state WHERE room_id = $1 AND type = $2 AND state_key = $3`, roomID, c.Type, c.StateKey); err != nil {
				return fmt.Errorf("remove current state: %w", err)
			}
			if c.Type == "m.room.member" {
				if _, err := w.tx.ExecContext(ctx, `DELETE FROM memberships WHERE room_id = $1 AND user_id = $2`, roomID, c.StateKey); err != nil {
					return fmt.Errorf("remove membership: %w", err)
				}
			}
		} else if err := upsertCurrent(ctx, w.tx, roomID, c.Type, c.StateKey, c.EventID, pos, c.Membership, c.Sender); err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(ctx, `INSERT INTO current_state_deltas (pos, room_id, type, state_key, event_id) VALUES ($1,$2,$3,$4,$5)
			ON CONFLICT (room_id, pos, type, state_key) DO UPDATE SET event_id = excluded.event_id`,
			pos, roomID, c.Type, c.StateKey, c.EventID); err != nil {
			return fmt.Errorf("record current state delta: %w", err)
		}
	}
	return nil
}

func upsertCurrent(ctx context.Context, q queryer, roomID, typ, stateKey, eventID string, pos int64, membership, sender string) error {
	if _, err := q.ExecContext(ctx, `INSERT INTO current_state (room_id, type, state_key, event_id, pos) VALUES ($1,$2,$3,$4,$5)
		ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id, pos = excluded.pos`,
		roomID, typ, stateKey, eventID, pos); err != nil {
		return fmt.Errorf("update current state: %w", err)
	}
	if typ == "m.room.member" {
		if _, err := q.ExecContext(ctx, `INSERT INTO memberships (room_id, user_id, membership, pos, event_id, sender, forgotten) VALUES ($1,$2,$3,$4,$5,$6,0)
			ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership, pos = excluded.pos,
				event_id = excluded.event_id, sender = excluded.sender, forgotten = 0`,
			roomID, stateKey, membership, pos, eventID, sender); err != nil {
			return fmt.Errorf("update membership: %w", err)
		}
	}
	return nil
}

// InsertUnlisted stores an event users never see.
func (w *WriteTx) InsertUnlisted(ctx context.Context, u dag.UnlistedEvent) error {
	_, err := w.tx.ExecContext(ctx, `INSERT INTO unlisted_events (event_id, room_id, kind, reason, depth, state_group, pdu, received_ts, prev_ids, auth_ids)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
		u.EventID, u.RoomID, string(u.Kind), u.Reason, u.Depth, u.StateGroup, string(u.PDU), u.ReceivedTS,
		strings.Join(u.PrevIDs, " "), strings.Join(u.AuthIDs, " "))
	if isUniqueViolation(err) {
		return fmt.Errorf("insert unlisted event %s: %w", u.EventID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("insert unlisted event %s: %w", u.EventID, err)
	}
	return nil
}

// MaxStateGroup returns the highest state group ID in use (0 for none).
func (s *Store) MaxStateGroup(ctx context.Context) (int64, error) {
	var m sql.NullInt64
	if err := s.read.QueryRowContext(ctx, `SELECT MAX(group_id) FROM state_groups`).Scan(&m); err != nil {
		return 0, fmt.Errorf("max state group: %w", err)
	}
	return m.Int64, nil
}

// MinPosition returns the lowest event position (0 when none is below 1):
// backfilled events take positions below it.
func (s *Store) MinPosition(ctx context.Context) (int64, error) {
	var m sql.NullInt64
	if err := s.read.QueryRowContext(ctx, `SELECT MIN(pos) FROM events`).Scan(&m); err != nil {
		return 0, fmt.Errorf("min position: %w", err)
	}
	return min(m.Int64, 0), nil
}

// StateGroupState loads the state a group holds, and its hops.
func (s *Store) StateGroupState(ctx context.Context, group int64) (dag.StateMap, int, error) {
	return stateGroupState(ctx, s.read, group)
}

// StateGroupState loads a group's state inside the batch (it may have been
// written by the batch).
func (w *WriteTx) StateGroupState(ctx context.Context, group int64) (dag.StateMap, int, error) {
	return stateGroupState(ctx, w.tx, group)
}

const chainCTE = `WITH RECURSIVE chain(group_id, parent, hops, n) AS (
		SELECT group_id, parent, hops, 0 FROM state_groups WHERE group_id = $1
		UNION ALL
		SELECT g.group_id, g.parent, g.hops, c.n + 1 FROM state_groups g JOIN chain c ON g.group_id = c.parent WHERE c.parent <> 0
	) `

func stateGroupState(ctx context.Context, q queryer, group int64) (dag.StateMap, int, error) {
	if group == 0 {
		return nil, 0, fmt.Errorf("state group 0: %w", ErrNotFound)
	}
	// The chain's snapshot (its last group), then its deltas, oldest first.
	var snap string
	var hops int
	err := q.QueryRowContext(ctx, chainCTE+`SELECT s.snapshot, (SELECT hops FROM state_groups WHERE group_id = $1)
		FROM chain c JOIN state_groups s ON s.group_id = c.group_id WHERE c.parent = 0`, group).Scan(&snap, &hops)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("state group %d: %w", group, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("state group %d: %w", group, err)
	}
	var byType map[string]map[string]string
	if err := json.Unmarshal([]byte(snap), &byType); err != nil {
		return nil, 0, fmt.Errorf("state group %d snapshot: %w", group, err)
	}
	m := make(dag.StateMap, 64)
	for t, keys := range byType {
		for k, id := range keys {
			m[dag.StateTuple{Type: t, StateKey: k}] = id
		}
	}
	rows, err := q.QueryContext(ctx, chainCTE+`SELECT d.type, d.state_key, d.event_id FROM chain c
		JOIN state_group_deltas d ON d.group_id = c.group_id ORDER BY c.n DESC`, group)
	if err != nil {
		return nil, 0, fmt.Errorf("state group %d deltas: %w", group, err)
	}
	defer rows.Close()
	for rows.Next() {
		var d dag.StateDelta
		if err := rows.Scan(&d.Type, &d.StateKey, &d.EventID); err != nil {
			return nil, 0, fmt.Errorf("state group %d deltas: %w", group, err)
		}
		if d.EventID == "" {
			delete(m, dag.StateTuple{Type: d.Type, StateKey: d.StateKey})
		} else {
			m[dag.StateTuple{Type: d.Type, StateKey: d.StateKey}] = d.EventID
		}
	}
	return m, hops, rows.Err()
}

// EventsByID returns the events with the given IDs, listed or unlisted,
// in no particular order; IDs not stored are left out.
func (s *Store) EventsByID(ctx context.Context, ids []string) ([]dag.StoredPDU, error) {
	return eventsByID(ctx, s.read, ids)
}

// EventsByID reads events inside the batch.
func (w *WriteTx) EventsByID(ctx context.Context, ids []string) ([]dag.StoredPDU, error) {
	return eventsByID(ctx, w.tx, ids)
}

// idChunk bounds the parameters of one IN list (both engines cap them).
const idChunk = 500

func eventsByID(ctx context.Context, q queryer, ids []string) ([]dag.StoredPDU, error) {
	var out []dag.StoredPDU
	for len(ids) > 0 {
		n := min(len(ids), idChunk)
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		ids = ids[n:]
		in := placeholders(1, n)
		rows, err := q.QueryContext(ctx, `SELECT event_id, room_id, '', '', pos, depth, state_group, pdu FROM events WHERE event_id IN (`+in+`)
			UNION ALL SELECT event_id, room_id, kind, reason, 0, depth, state_group, pdu FROM unlisted_events WHERE event_id IN (`+in+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("events by id: %w", err)
		}
		for rows.Next() {
			var e dag.StoredPDU
			var kind, pdu string
			if err := rows.Scan(&e.EventID, &e.RoomID, &kind, &e.Reason, &e.Pos, &e.Depth, &e.StateGroup, &pdu); err != nil {
				rows.Close()
				return nil, fmt.Errorf("events by id: %w", err)
			}
			e.Kind, e.PDU = dag.UnlistedKind(kind), []byte(pdu)
			out = append(out, e)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("events by id: %w", err)
		}
	}
	return out, nil
}

// StateEventsOf returns the client form of the events of a state, oldest
// (by position) first. Events not in the room's timeline table (outliers
// a state may point at) are left out: clients never see those.
func (s *Store) StateEventsOf(ctx context.Context, m dag.StateMap) ([]Event, error) {
	ids := make([]string, 0, len(m))
	for _, id := range m {
		ids = append(ids, id)
	}
	return s.eventsIn(ctx, ids)
}

func (s *Store) eventsIn(ctx context.Context, ids []string) ([]Event, error) {
	var out []Event
	for len(ids) > 0 {
		n := min(len(ids), idChunk)
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		ids = ids[n:]
		rows, err := s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM events e WHERE e.event_id IN (`+placeholders(1, n)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("events in: %w", err)
		}
		got, err := collectEvents(rows, false)
		if err != nil {
			return nil, fmt.Errorf("events in: %w", err)
		}
		out = append(out, got...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pos < out[j].Pos })
	return out, nil
}

// eventGroup returns the state group after the room's event at or before
// position pos (by stream), and that event's position; group 0 when it was
// written before state groups existed.
func (s *Store) eventGroup(ctx context.Context, roomID string, pos int64) (group, at int64, err error) {
	err = s.read.QueryRowContext(ctx, `SELECT state_group, pos FROM events WHERE room_id = $1 AND pos <= $2 ORDER BY pos DESC LIMIT 1`, roomID, pos).Scan(&group, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, ErrNotFound
	}
	if err != nil {
		return 0, 0, fmt.Errorf("event group at %d: %w", pos, err)
	}
	return group, at, nil
}

// StateAt returns the room state after the room's latest event at or
// before position pos, from that event's state group: never from positions,
// since in a DAG an event on one fork must not see the other fork's state.
// Events written before state groups existed belong to a linear history,
// which still answers by position (stateAtPos).
func (s *Store) StateAt(ctx context.Context, roomID string, pos int64) ([]Event, error) {
	group, at, err := s.eventGroup(ctx, roomID, pos)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if group == 0 {
		return s.stateAtPos(ctx, roomID, at)
	}
	m, _, err := s.StateGroupState(ctx, group)
	if err != nil {
		return nil, err
	}
	return s.StateEventsOf(ctx, m)
}

// MemberEventsAt returns the member events of userIDs in the state after
// the room's latest event at or before pos (see StateAt), for lazy-loading
// members for a reader whose view of the room ends at pos.
func (s *Store) MemberEventsAt(ctx context.Context, roomID string, userIDs []string, pos int64) ([]Event, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	group, at, err := s.eventGroup(ctx, roomID, pos)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if group == 0 {
		return s.memberEventsAtPos(ctx, roomID, userIDs, at)
	}
	m, _, err := s.StateGroupState(ctx, group)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(userIDs))
	for _, u := range userIDs {
		if id := m[dag.StateTuple{Type: "m.room.member", StateKey: u}]; id != "" {
			ids = append(ids, id)
		}
	}
	return s.eventsIn(ctx, ids)
}

// TopoPoint is a place in a room's topological order, (depth, position).
type TopoPoint struct{ Depth, Pos int64 }

// Highest and lowest topological points, for open bounds.
var (
	TopoMax = TopoPoint{math.MaxInt64, math.MaxInt64}
	TopoMin = TopoPoint{math.MinInt64, math.MinInt64}
)

// TopoQuery pages a room's events in topological order.
type TopoQuery struct {
	RoomID    string
	Backwards bool
	// From is exclusive going forwards and inclusive going backwards: a
	// token marks the boundary after the point. To bounds the other end
	// (inclusive forwards, exclusive backwards).
	From, To TopoPoint
	// MinPos and MaxPos bound stream positions (exclusive, inclusive): a
	// stream token (from /sync) pages by position, and a user who left
	// reads nothing after their leave.
	MinPos, MaxPos int64
	Limit          int
}

// RoomEventsTopo pages a room's events in topological order (depth, then
// stream position), newest first going backwards.
func (s *Store) RoomEventsTopo(ctx context.Context, q TopoQuery) ([]Event, error) {
	var rows *sql.Rows
	var err error
	if q.Backwards {
		rows, err = s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM events e WHERE e.room_id = $1
			AND (e.depth, e.pos) <= ($2, $3) AND (e.depth, e.pos) > ($4, $5) AND e.pos > $6 AND e.pos <= $7
			ORDER BY e.depth DESC, e.pos DESC LIMIT $8`,
			q.RoomID, q.From.Depth, q.From.Pos, q.To.Depth, q.To.Pos, q.MinPos, q.MaxPos, q.Limit)
	} else {
		rows, err = s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM events e WHERE e.room_id = $1
			AND (e.depth, e.pos) > ($2, $3) AND (e.depth, e.pos) <= ($4, $5) AND e.pos > $6 AND e.pos <= $7
			ORDER BY e.depth ASC, e.pos ASC LIMIT $8`,
			q.RoomID, q.From.Depth, q.From.Pos, q.To.Depth, q.To.Pos, q.MinPos, q.MaxPos, q.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("room events (topological): %w", err)
	}
	return collectEvents(rows, false)
}

// StateGroupHops returns a group's deltas from its snapshot.
func (w *WriteTx) StateGroupHops(ctx context.Context, group int64) (int, error) {
	var hops int
	if err := w.tx.QueryRowContext(ctx, `SELECT hops FROM state_groups WHERE group_id = $1`, group).Scan(&hops); err != nil {
		return 0, fmt.Errorf("state group %d hops: %w", group, err)
	}
	return hops, nil
}

// DeleteUnlisted removes an unlisted event, when an outlier takes its
// place in the DAG.
func (w *WriteTx) DeleteUnlisted(ctx context.Context, eventID string) error {
	if _, err := w.tx.ExecContext(ctx, `DELETE FROM unlisted_events WHERE event_id = $1`, eventID); err != nil {
		return fmt.Errorf("delete unlisted event %s: %w", eventID, err)
	}
	return nil
}

// Edges returns an event's prev_events and auth_events as stored, listed
// or not; ErrNotFound for an event not stored.
func (s *Store) Edges(ctx context.Context, eventID string) (prev, auth []string, err error) {
	var p, a string
	err = s.read.QueryRowContext(ctx, `SELECT prev_ids, auth_ids FROM events WHERE event_id = $1
		UNION ALL SELECT prev_ids, auth_ids FROM unlisted_events WHERE event_id = $1`, eventID).Scan(&p, &a)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("edges of %s: %w", eventID, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("edges of %s: %w", eventID, err)
	}
	return splitIDs(p), splitIDs(a), nil
}

// splitIDs reads a space-separated ID list, sorted.
func splitIDs(s string) []string {
	if s == "" {
		return nil
	}
	out := strings.Split(s, " ")
	sort.Strings(out)
	return out
}

// StateStorage reports the rows and snapshot bytes state groups hold, for
// benchmarks and metrics.
func (s *Store) StateStorage(ctx context.Context) (groups, deltas, snapshotBytes int64, err error) {
	err = s.read.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(LENGTH(snapshot)), 0) FROM state_groups`).Scan(&groups, &snapshotBytes)
	if err == nil {
		err = s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM state_group_deltas`).Scan(&deltas)
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("state storage: %w", err)
	}
	return groups, deltas, snapshotBytes, nil
}

// StateMapAtPos is the state after position pos of a room's history written
// before state groups (linear, so positions order it).
func (s *Store) StateMapAtPos(ctx context.Context, roomID string, pos int64) (dag.StateMap, error) {
	evs, err := s.stateAtPos(ctx, roomID, pos)
	if err != nil {
		return nil, err
	}
	m := make(dag.StateMap, len(evs))
	for _, e := range evs {
		m[dag.StateTuple{Type: e.Type, StateKey: e.StateKeyOr()}] = e.EventID
	}
	return m, nil
}
