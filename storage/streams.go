package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Receipt is a read receipt (m.read or m.read.private).
type Receipt struct {
	RoomID   string
	UserID   string
	Type     string
	ThreadID string
	EventID  string
	EventPos int64
	TS       int64
	Pos      int64
}

// ToDevice is one queued to-device message.
type ToDevice struct {
	Pos      int64
	UserID   string
	DeviceID string
	Sender   string
	Type     string
	Content  string
	// TS is when the message was queued (ms); retention counts from it.
	TS int64
}

// Presence is a user's stored presence.
type Presence struct {
	UserID       string
	State        string
	StatusMsg    string
	LastActiveTS int64
	Pos          int64
}

// AccountData is one account-data entry; RoomID is "" for global data.
type AccountData struct {
	RoomID  string
	Type    string
	Content string
	Pos     int64
}

// MaxPosition returns the highest stream position any stream has used, so
// the writer can continue after a restart.
func (s *Store) MaxPosition(ctx context.Context) (int64, error) {
	var max int64
	for _, table := range []string{"events", "receipts", "account_data", "to_device", "presence", "device_list_changes", "stream_watermark"} {
		var m sql.NullInt64
		if err := s.read.QueryRowContext(ctx, `SELECT MAX(pos) FROM `+table).Scan(&m); err != nil {
			return 0, fmt.Errorf("max position of %s: %w", table, err)
		}
		if m.Valid && m.Int64 > max {
			max = m.Int64
		}
	}
	return max, nil
}

// RoomPositions returns each room's latest event or receipt position, to warm
// the notifier's per-room positions at start.
func (s *Store) RoomPositions(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for _, q := range []string{
		`SELECT room_id, MAX(pos) FROM events GROUP BY room_id`,
		`SELECT room_id, MAX(pos) FROM receipts GROUP BY room_id`,
	} {
		rows, err := s.read.QueryContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("room positions: %w", err)
		}
		for rows.Next() {
			var room string
			var pos int64
			if err := rows.Scan(&room, &pos); err != nil {
				rows.Close()
				return nil, err
			}
			if pos > out[room] {
				out[room] = pos
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// GetAccountData returns one entry's content.
func (s *Store) GetAccountData(ctx context.Context, userID, roomID, typ string) (string, error) {
	var c string
	err := s.read.QueryRowContext(ctx, `SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3`, userID, roomID, typ).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("get account data: %w", err)
	}
	return c, nil
}

// AccountDataSince returns a user's account data changed after since, up to upto.
func (s *Store) AccountDataSince(ctx context.Context, userID string, since, upto int64) ([]AccountData, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT room_id, type, content, pos FROM account_data WHERE user_id = $1 AND pos > $2 AND pos <= $3 ORDER BY pos`, userID, since, upto)
	if err != nil {
		return nil, fmt.Errorf("account data since: %w", err)
	}
	defer rows.Close()
	var out []AccountData
	for rows.Next() {
		var a AccountData
		if err := rows.Scan(&a.RoomID, &a.Type, &a.Content, &a.Pos); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// ReceiptsSince returns receipts in the given rooms newer than since. Private
// receipts are returned only for viewer.
func (s *Store) ReceiptsSince(ctx context.Context, viewer string, roomIDs []string, since, upto int64) ([]Receipt, error) {
	return s.ReceiptsSinceOwnIn(ctx, viewer, roomIDs, since, upto, nil)
}

// ReceiptsSinceOwnIn is ReceiptsSince where, in the rooms of ownOnly, only
// viewer's own receipts are read: rooms above the small tier
// (rooms/tiers.go), where a newly joined member would otherwise read every
// member's receipt.
func (s *Store) ReceiptsSinceOwnIn(ctx context.Context, viewer string, roomIDs []string, since, upto int64, ownOnly []string) ([]Receipt, error) {
	if len(roomIDs) == 0 {
		return nil, nil
	}
	args := []any{viewer, since, upto}
	for _, r := range roomIDs {
		args = append(args, r)
	}
	ownSQL := ""
	if len(ownOnly) > 0 {
		start := len(args) + 1
		for _, r := range ownOnly {
			args = append(args, r)
		}
		ownSQL = ` AND (user_id = $1 OR room_id NOT IN (` + placeholders(start, len(ownOnly)) + `))`
	}
	rows, err := s.read.QueryContext(ctx, `SELECT room_id, user_id, receipt_type, thread_id, event_id, event_pos, ts, pos FROM receipts
		WHERE pos > $2 AND pos <= $3 AND room_id IN (`+placeholders(4, len(roomIDs))+`)
		AND (receipt_type <> 'm.read.private' OR user_id = $1)`+ownSQL+` ORDER BY pos`, args...)
	if err != nil {
		return nil, fmt.Errorf("receipts since: %w", err)
	}
	defer rows.Close()
	var out []Receipt
	for rows.Next() {
		var r Receipt
		if err := rows.Scan(&r.RoomID, &r.UserID, &r.Type, &r.ThreadID, &r.EventID, &r.EventPos, &r.TS, &r.Pos); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ToDeviceFor returns the device's queued messages after acked, up to
// upto, oldest first, at most limit. Messages at or below acked were
// delivered by an earlier sync whose token the device now presents, so they
// are deleted. One query finds both the next batch and whether any
// acknowledged message is left, so the delete (a write) runs only when
// there is something to delete.
func (s *Store) ToDeviceFor(ctx context.Context, userID, deviceID string, acked, upto int64, limit int) ([]ToDevice, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT * FROM (SELECT pos, user_id, device_id, sender, type, content FROM to_device
			WHERE user_id = $1 AND device_id = $2 AND pos > $3 AND pos <= $4 ORDER BY pos LIMIT $5) AS fresh
		UNION ALL
		SELECT * FROM (SELECT pos, user_id, device_id, sender, type, content FROM to_device
			WHERE user_id = $1 AND device_id = $2 AND pos <= $3 LIMIT 1) AS delivered`, userID, deviceID, acked, upto, limit)
	if err != nil {
		return nil, fmt.Errorf("to-device: %w", err)
	}
	defer rows.Close()
	var out []ToDevice
	delivered := false
	for rows.Next() {
		var m ToDevice
		if err := rows.Scan(&m.Pos, &m.UserID, &m.DeviceID, &m.Sender, &m.Type, &m.Content); err != nil {
			return nil, err
		}
		if m.Pos <= acked {
			delivered = true
			continue
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if delivered {
		if _, err := s.write.ExecContext(ctx, `DELETE FROM to_device WHERE user_id = $1 AND device_id = $2 AND pos <= $3`, userID, deviceID, acked); err != nil {
			return nil, fmt.Errorf("ack to-device: %w", err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pos < out[j].Pos })
	return out, nil
}

// GetPresence returns a user's stored presence.
func (s *Store) GetPresence(ctx context.Context, userID string) (Presence, error) {
	var p Presence
	err := s.read.QueryRowContext(ctx, `SELECT user_id, state, status_msg, last_active_ts, pos FROM presence WHERE user_id = $1`, userID).
		Scan(&p.UserID, &p.State, &p.StatusMsg, &p.LastActiveTS, &p.Pos)
	if errors.Is(err, sql.ErrNoRows) {
		return Presence{}, ErrNotFound
	}
	if err != nil {
		return Presence{}, fmt.Errorf("get presence: %w", err)
	}
	return p, nil
}

// PresenceSince returns presence changes after since of users who share a
// joined room with viewer (and viewer's own).
func (s *Store) PresenceSince(ctx context.Context, viewer string, since, upto int64, also []string) ([]Presence, error) {
	return s.PresenceSinceExcept(ctx, viewer, since, upto, also, nil)
}

// PresenceSinceExcept is PresenceSince where sharing one of exceptRooms does
// not count: rooms above the small tier do not carry their members'
// presence (rooms/tiers.go).
func (s *Store) PresenceSinceExcept(ctx context.Context, viewer string, since, upto int64, also, exceptRooms []string) ([]Presence, error) {
	args := []any{viewer, since, upto}
	alsoSQL, exceptSQL := "", ""
	if len(also) > 0 {
		for _, u := range also {
			args = append(args, u)
		}
		alsoSQL = " OR p.user_id IN (" + placeholders(4, len(also)) + ")"
	}
	if len(exceptRooms) > 0 {
		start := len(args) + 1
		for _, r := range exceptRooms {
			args = append(args, r)
		}
		exceptSQL = " AND a.room_id NOT IN (" + placeholders(start, len(exceptRooms)) + ")"
	}
	rows, err := s.read.QueryContext(ctx, `SELECT p.user_id, p.state, p.status_msg, p.last_active_ts, p.pos FROM presence p
		WHERE p.pos > $2 AND p.pos <= $3 AND (p.user_id = $1 OR p.user_id IN (
			SELECT b.user_id FROM memberships a JOIN memberships b ON a.room_id = b.room_id
			WHERE a.user_id = $1 AND a.membership = 'join' AND b.membership = 'join'`+exceptSQL+`)`+alsoSQL+`)
		ORDER BY p.pos`, args...)
	if err != nil {
		return nil, fmt.Errorf("presence since: %w", err)
	}
	defer rows.Close()
	var out []Presence
	for rows.Next() {
		var p Presence
		if err := rows.Scan(&p.UserID, &p.State, &p.StatusMsg, &p.LastActiveTS, &p.Pos); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeviceListChangesSince returns users (sharing a room with viewer, or viewer)
// whose device lists changed after since.
func (s *Store) DeviceListChangesSince(ctx context.Context, viewer string, since, upto int64) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT DISTINCT d.user_id FROM device_list_changes d
		WHERE d.pos > $2 AND d.pos <= $3 AND (d.user_id = $1 OR d.user_id IN (
			SELECT b.user_id FROM memberships a JOIN memberships b ON a.room_id = b.room_id
			WHERE a.user_id = $1 AND a.membership = 'join' AND b.membership = 'join'))`, viewer, since, upto)
	if err != nil {
		return nil, fmt.Errorf("device list changes: %w", err)
	}
	return collectStrings(rows)
}

// SharesRoom reports whether two users are joined to a common room.
func (s *Store) SharesRoom(ctx context.Context, a, b string) (bool, error) {
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM memberships x JOIN memberships y ON x.room_id = y.room_id
		WHERE x.user_id = $1 AND y.user_id = $2 AND x.membership = 'join' AND y.membership IN ('join', 'invite')`, a, b).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("shares room: %w", err)
	}
	return n > 0, nil
}

// RoomBound selects a room's events with Since < pos <= Upto.
type RoomBound struct {
	RoomID string
	Since  int64
	Upto   int64
}

// RoomTimelines returns, for every bound, the newest limit events in its
// range, in log order. Each room is read with its own ORDER BY pos DESC
// LIMIT through the (room_id, pos) index, so the cost follows limit, not the
// size of the range: an initial sync in a room of 10,000 events reads 11 of
// them, not 10,000 (a window function numbered every event of the range
// before, and made each join into a big room cost more than the last).
// PostgreSQL takes all rooms in one LATERAL query; SQLite has no LATERAL, so
// rooms go as a UNION ALL of per-room subqueries, timelineChunk rooms per
// query (SQLite allows 500 terms in a compound SELECT).
func (s *Store) RoomTimelines(ctx context.Context, bounds []RoomBound, limit int) ([]Event, error) {
	if len(bounds) == 0 {
		return nil, nil
	}
	var out []Event
	for start := 0; start < len(bounds); start += timelineChunk {
		chunk := bounds[start:min(start+timelineChunk, len(bounds))]
		q, args := s.roomTimelinesQuery(chunk, limit)
		rows, err := s.read.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("room timelines: %w", err)
		}
		evs, err := collectEvents(rows, false)
		if err != nil {
			return nil, fmt.Errorf("room timelines: %w", err)
		}
		out = append(out, evs...)
	}
	// Sorted here, not in SQL: the engine then needs no temporary sort of
	// the union, and a sync wants log order across rooms anyway.
	sort.Slice(out, func(i, j int) bool { return out[i].Pos < out[j].Pos })
	return out, nil
}

// timelineChunk is how many rooms one RoomTimelines query reads.
const timelineChunk = 200

// roomTimelinesQuery builds the per-room LIMIT query for one chunk of bounds.
func (s *Store) roomTimelinesQuery(bounds []RoomBound, limit int) (string, []any) {
	if s.postgres {
		values, args := boundValues(bounds, []any{limit})
		return `SELECT ` + eventCols + ` FROM (VALUES ` + values + `) AS b CROSS JOIN LATERAL (
			SELECT * FROM events x WHERE x.room_id = b.column1 AND x.pos > b.column2 AND x.pos <= b.column3
			ORDER BY x.pos DESC LIMIT $1) e`, args
	}
	var q strings.Builder
	args := make([]any, 0, 1+3*len(bounds))
	args = append(args, limit)
	for i, b := range bounds {
		if i > 0 {
			q.WriteString(" UNION ALL ")
		}
		n := len(args)
		fmt.Fprintf(&q, `SELECT * FROM (SELECT `+eventCols+` FROM events e WHERE e.room_id = $%d AND e.pos > $%d AND e.pos <= $%d ORDER BY e.pos DESC LIMIT $1)`, n+1, n+2, n+3)
		args = append(args, b.RoomID, b.Since, b.Upto)
	}
	return q.String(), args
}

// boundValues renders bounds as a VALUES list (columns column1..column3 on
// both engines) with numbered parameters following args.
func boundValues(bounds []RoomBound, args []any) (string, []any) {
	var values strings.Builder
	for i, b := range bounds {
		if i > 0 {
			values.WriteByte(',')
		}
		n := len(args)
		fmt.Fprintf(&values, "(CAST($%d AS TEXT), CAST($%d AS BIGINT), CAST($%d AS BIGINT))", n+1, n+2, n+3)
		args = append(args, b.RoomID, b.Since, b.Upto)
	}
	return values.String(), args
}

// StateEventsIn returns, for each bound's range of positions, the events
// that became current state there, oldest first: what a limited sync
// timeline skipped over. It reads current_state_deltas, so an older event
// that state resolution made current again is reported too. A key that left
// the state is not reported (a sync response cannot say so).
func (s *Store) StateEventsIn(ctx context.Context, bounds []RoomBound) ([]Event, error) {
	if len(bounds) == 0 {
		return nil, nil
	}
	values, args := boundValues(bounds, nil)
	rows, err := s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM current_state_deltas d JOIN (VALUES `+values+`) AS b
		ON d.room_id = b.column1 AND d.pos > b.column2 AND d.pos <= b.column3
		JOIN events e ON e.event_id = d.event_id WHERE d.event_id <> '' ORDER BY d.pos, e.pos`, args...)
	if err != nil {
		return nil, fmt.Errorf("state events in range: %w", err)
	}
	return collectEvents(rows, false)
}

// CurrentStateOf returns the current state of several rooms in one query.
func (s *Store) CurrentStateOf(ctx context.Context, roomIDs []string) ([]Event, error) {
	if len(roomIDs) == 0 {
		return nil, nil
	}
	args := make([]any, len(roomIDs))
	for i, r := range roomIDs {
		args[i] = r
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM current_state cs JOIN events e ON e.event_id = cs.event_id
		WHERE cs.room_id IN (`+placeholders(1, len(args))+`) ORDER BY e.pos`, args...)
	if err != nil {
		return nil, fmt.Errorf("current state of rooms: %w", err)
	}
	return collectEvents(rows, false)
}

// CurrentStateWithoutMembers is CurrentStateOf with only member's own
// m.room.member event: what a lazy-loading sync needs, without reading a
// big room's whole member list.
func (s *Store) CurrentStateWithoutMembers(ctx context.Context, roomIDs []string, member string) ([]Event, error) {
	if len(roomIDs) == 0 {
		return nil, nil
	}
	args := []any{member}
	for _, r := range roomIDs {
		args = append(args, r)
	}
	// Three index ranges of (room_id, type, state_key): the types before
	// m.room.member, those after it, and the member's own row. A single
	// "type <> 'm.room.member'" condition walked every member's row, so
	// each initial sync of a 10,000-member room read 10,000 rows.
	in := placeholders(2, len(roomIDs))
	rows, err := s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM (
			SELECT event_id FROM current_state WHERE room_id IN (`+in+`) AND type < 'm.room.member'
			UNION ALL
			SELECT event_id FROM current_state WHERE room_id IN (`+in+`) AND type > 'm.room.member'
			UNION ALL
			SELECT event_id FROM current_state WHERE room_id IN (`+in+`) AND type = 'm.room.member' AND state_key = $1
		) cs JOIN events e ON e.event_id = cs.event_id ORDER BY e.pos`, args...)
	if err != nil {
		return nil, fmt.Errorf("current state without members: %w", err)
	}
	return collectEvents(rows, false)
}

// Unread is a room's notification and highlight counts for one user.
type Unread struct {
	Notifications int64
	Highlights    int64
}

// RoomUnread is a user's counts in one room, split by thread: Main counts
// the main timeline, Threads each thread (by root event ID) with a non-zero
// count. Threads is read-only once built: caches share it.
type RoomUnread struct {
	Main    Unread
	Threads map[string]Unread
}

// Total is the room's whole count: what unread_notifications shows to a
// client that did not ask for thread counts.
func (r RoomUnread) Total() Unread {
	t := r.Main
	for _, u := range r.Threads {
		t.Notifications += u.Notifications
		t.Highlights += u.Highlights
	}
	return t
}

// UnreadCounts is UnreadCountsByThread summed over each room's threads.
func (s *Store) UnreadCounts(ctx context.Context, userID string, roomIDs []string, upto int64) (map[string]Unread, error) {
	by, err := s.UnreadCountsByThread(ctx, userID, roomIDs, upto)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Unread, len(by))
	for id, r := range by {
		out[id] = r.Total()
	}
	return out, nil
}

// UnreadCountsByThread derives each room's counts from positions: the
// notifying events not sent by the user after the user's read position for
// the event's timeline. An event is in a thread when it has an m.thread
// relation (the event_relations index); the thread root itself is in the
// main timeline. The read position of the main timeline is the newest
// unthreaded or "main" receipt; a thread's is the newest unthreaded receipt
// or receipt in that thread. So an unthreaded receipt clears everything up
// to its event, as the spec says, and a threaded one only its thread.
// Nothing is counted at write time, so nothing can drift.
func (s *Store) UnreadCountsByThread(ctx context.Context, userID string, roomIDs []string, upto int64) (map[string]RoomUnread, error) {
	out := make(map[string]RoomUnread, len(roomIDs))
	if len(roomIDs) == 0 {
		return out, nil
	}
	args := []any{userID, upto}
	for _, r := range roomIDs {
		args = append(args, r)
	}
	// The lowest read position (the unthreaded receipt) is found once per
	// room, then only notifying events after it are read, through a partial
	// index (schema 007), plus the user's own mentions: the cost follows the
	// unread count, not the room's history or its member list. Each such
	// event is then held against its own timeline's receipt.
	var values strings.Builder
	for i := range roomIDs {
		if i > 0 {
			values.WriteByte(',')
		}
		fmt.Fprintf(&values, "(CAST($%d AS TEXT))", i+3)
	}
	const own = `r.user_id = $1 AND r.receipt_type IN ('m.read', 'm.read.private')`
	const after = ` AND e.pos > COALESCE((SELECT MAX(r.event_pos) FROM receipts r WHERE r.room_id = e.room_id AND ` + own + `
				AND r.thread_id = COALESCE(t.relates_to_id, 'main')), 0)`
	rows, err := s.read.QueryContext(ctx, `WITH asked(room_id) AS (VALUES `+values.String()+`),
		readpos AS (SELECT asked.room_id, COALESCE((SELECT MAX(r.event_pos) FROM receipts r
			WHERE r.room_id = asked.room_id AND `+own+`
			AND r.thread_id = ''), 0) AS pos FROM asked)
		SELECT room_id, thread, SUM(n), SUM(h) FROM (
			SELECT e.room_id, COALESCE(t.relates_to_id, '') AS thread, 1 AS n, CASE WHEN e.room_mention = 1 OR EXISTS (SELECT 1 FROM event_mentions m
				WHERE m.user_id = $1 AND m.room_id = e.room_id AND m.pos = e.pos) THEN 1 ELSE 0 END AS h
			FROM readpos JOIN events e ON e.room_id = readpos.room_id AND e.pos > readpos.pos AND e.pos <= $2
			LEFT JOIN event_relations t ON t.event_id = e.event_id AND t.rel_type = 'm.thread'
			WHERE (e.notify = 1 OR e.room_mention = 1) AND e.sender <> $1`+after+`
			UNION ALL
			SELECT m.room_id, COALESCE(t.relates_to_id, '') AS thread, 1 AS n, 1 AS h
			FROM readpos JOIN event_mentions m ON m.user_id = $1 AND m.room_id = readpos.room_id AND m.pos > readpos.pos AND m.pos <= $2
			JOIN events e ON e.room_id = m.room_id AND e.pos = m.pos
			LEFT JOIN event_relations t ON t.event_id = e.event_id AND t.rel_type = 'm.thread'
			WHERE e.notify = 0 AND e.room_mention = 0 AND e.sender <> $1`+after+`
		) counted GROUP BY room_id, thread`, args...)
	if err != nil {
		return nil, fmt.Errorf("unread counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var room, thread string
		var u Unread
		if err := rows.Scan(&room, &thread, &u.Notifications, &u.Highlights); err != nil {
			return nil, err
		}
		ru := out[room]
		if thread == "" {
			ru.Main = u
		} else {
			if ru.Threads == nil {
				ru.Threads = map[string]Unread{}
			}
			ru.Threads[thread] = u
		}
		out[room] = ru
	}
	return out, rows.Err()
}

// ThreadOf returns the root of the thread eventID is in ("" for the main
// timeline), from the relations index.
func (s *Store) ThreadOf(ctx context.Context, eventID string) (string, error) {
	var root string
	err := s.read.QueryRowContext(ctx, `SELECT relates_to_id FROM event_relations WHERE event_id = $1 AND rel_type = 'm.thread'`, eventID).Scan(&root)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("thread of %s: %w", eventID, err)
	}
	return root, nil
}

// EventPositions maps event IDs to positions (for receipts and /context).
func (s *Store) EventPositions(ctx context.Context, eventIDs []string) (map[string]Event, error) {
	out := map[string]Event{}
	if len(eventIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(eventIDs))
	for i, id := range eventIDs {
		args[i] = id
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM events e WHERE event_id IN (`+placeholders(1, len(args))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("event positions: %w", err)
	}
	evs, err := collectEvents(rows, false)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		out[e.EventID] = e
	}
	return out, nil
}
