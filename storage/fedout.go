package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// The outbound federation queue's tables (schema 023). The room logs are
// the queue's PDU rows; these tables only say which servers were in which
// room when, how far each destination has acknowledged, and which durable
// EDUs wait. package federation/outbound decides; this file only reads and
// writes.

// FedEventMeta is what the outbound scanner reads of an event: enough to
// follow remote servers' membership, without the event body.
type FedEventMeta struct {
	Pos        int64
	RoomID     string
	Sender     string
	Type       string
	StateKey   *string
	Membership string
	OnBehalf   string // the origin server, for an event we send on its behalf
}

// FedSpanChange opens (a server gains its first joined user in a room) or
// closes (it loses its last) a server's span in a room at Pos. Point
// records a span of the one event at Pos, for a server with no joined
// user that must still get it (the kick that denies its user's knock).
type FedSpanChange struct {
	Server, RoomID string
	Pos            int64
	Open           bool
	Point          bool
}

// FedSpan is a server's presence in a room: from JoinedPos to LeftPos
// (0 = still in), both ends included.
type FedSpan struct {
	Server, RoomID     string
	JoinedPos, LeftPos int64
}

// FedDestination is one destination's queue state.
type FedDestination struct {
	Destination string
	SentPos     int64  // every PDU at or below it was acknowledged
	SentEDU     int64  // every durable EDU at or below it was acknowledged
	TxnID       string // the transaction in flight, "" when none
	TxnPos      int64  // its last PDU position (its PDUs lie in (SentPos, TxnPos])
	TxnEDU      int64  // its last durable EDU ID
	Failures    int    // consecutive failed attempts
	RetryAtTS   int64  // no attempt before this time (unix ms)
}

// FedPDU is one event to send, in its federation form.
type FedPDU struct {
	Pos     int64
	EventID string
	RoomID  string
	Sender  string
	PDU     []byte
}

// FedEDU is one durable EDU waiting for a destination.
type FedEDU struct {
	ID      int64
	Type    string
	Content []byte
}

// FedScanPos returns how far the scanner has read the room logs (0 at first).
func (s *Store) FedScanPos(ctx context.Context) (int64, error) {
	var pos int64
	err := s.read.QueryRowContext(ctx, `SELECT pos FROM fed_scan WHERE id = 1`).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("fed scan pos: %w", err)
	}
	return pos, nil
}

// FedEventsAfter returns the events with positions in (after, upto], oldest
// first, at most limit of them, without their bodies.
func (s *Store) FedEventsAfter(ctx context.Context, after, upto int64, limit int) ([]FedEventMeta, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT e.pos, e.room_id, e.sender, e.type, e.state_key, COALESCE(e.membership, ''),
			COALESCE(ob.origin, '')
		FROM events e LEFT JOIN fed_on_behalf ob ON ob.pos = e.pos
		WHERE e.pos > $1 AND e.pos <= $2 ORDER BY e.pos LIMIT $3`, after, upto, limit)
	if err != nil {
		return nil, fmt.Errorf("fed events after %d: %w", after, err)
	}
	defer rows.Close()
	var out []FedEventMeta
	for rows.Next() {
		var e FedEventMeta
		var sk sql.NullString
		if err := rows.Scan(&e.Pos, &e.RoomID, &e.Sender, &e.Type, &sk, &e.Membership, &e.OnBehalf); err != nil {
			return nil, fmt.Errorf("fed events after %d: %w", after, err)
		}
		if sk.Valid {
			k := sk.String
			e.StateKey = &k
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// likeSuffix returns a LIKE pattern matching strings that end in ":"+server.
func likeSuffix(server string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%:" + r.Replace(server)
}

// FedServerJoinedAt returns the users of server (user IDs ending in
// ":"+server) joined to a room as of position pos (the latest member event
// at or before it). It reads the room log, not current state, so the
// answer for a past position never changes.
func (s *Store) FedServerJoinedAt(ctx context.Context, roomID, server string, pos int64) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT m.user_id FROM memberships m
		WHERE m.room_id = $1 AND m.user_id LIKE $2 ESCAPE '\' AND (
			SELECT COALESCE(e.membership, '') FROM events e
			WHERE e.room_id = $1 AND e.type = 'm.room.member' AND e.state_key = m.user_id AND e.pos <= $3
			ORDER BY e.pos DESC LIMIT 1) = 'join'`, roomID, likeSuffix(server), pos)
	if err != nil {
		return nil, fmt.Errorf("fed joined of %s in %s at %d: %w", server, roomID, pos, err)
	}
	users, err := collectStrings(rows)
	if err != nil {
		return nil, err
	}
	out := users[:0]
	for _, u := range users { // LIKE ignores case on SQLite: keep exact matches only
		if strings.HasSuffix(u, ":"+server) {
			out = append(out, u)
		}
	}
	return out, nil
}

// FedApplyScan records span changes and the new scan position in one
// transaction. It is idempotent: replaying the same changes (after a crash
// lost the scan position) changes nothing.
func (s *Store) FedApplyScan(ctx context.Context, changes []FedSpanChange, scanPos int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, c := range changes {
			var err error
			switch {
			case c.Point:
				_, err = tx.ExecContext(ctx, `INSERT INTO fed_room_servers (server_name, room_id, joined_pos, left_pos)
					VALUES ($1, $2, $3, $3) ON CONFLICT (server_name, room_id, joined_pos) DO NOTHING`, c.Server, c.RoomID, c.Pos)
			case c.Open:
				_, err = tx.ExecContext(ctx, `INSERT INTO fed_room_servers (server_name, room_id, joined_pos, left_pos)
					VALUES ($1, $2, $3, 0) ON CONFLICT (server_name, room_id, joined_pos) DO NOTHING`, c.Server, c.RoomID, c.Pos)
			default:
				_, err = tx.ExecContext(ctx, `UPDATE fed_room_servers SET left_pos = $3
					WHERE server_name = $1 AND room_id = $2 AND left_pos = 0 AND joined_pos < $3`, c.Server, c.RoomID, c.Pos)
			}
			if err != nil {
				return fmt.Errorf("fed span %s in %s: %w", c.Server, c.RoomID, err)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO fed_scan (id, pos) VALUES (1, $1)
			ON CONFLICT (id) DO UPDATE SET pos = CASE WHEN excluded.pos > fed_scan.pos THEN excluded.pos ELSE fed_scan.pos END`, scanPos)
		if err != nil {
			return fmt.Errorf("fed scan pos: %w", err)
		}
		return nil
	})
}

// FedOpenSpans returns every span still open: which remote servers are in
// which rooms now.
func (s *Store) FedOpenSpans(ctx context.Context) ([]FedSpan, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT server_name, room_id, joined_pos, left_pos FROM fed_room_servers WHERE left_pos = 0`)
	if err != nil {
		return nil, fmt.Errorf("fed open spans: %w", err)
	}
	defer rows.Close()
	var out []FedSpan
	for rows.Next() {
		var sp FedSpan
		if err := rows.Scan(&sp.Server, &sp.RoomID, &sp.JoinedPos, &sp.LeftPos); err != nil {
			return nil, fmt.Errorf("fed open spans: %w", err)
		}
		out = append(out, sp)
	}
	return out, rows.Err()
}

// FedKnownDestinations lists every destination the queue may owe something:
// those with a row, those in a room, those with durable EDUs waiting.
func (s *Store) FedKnownDestinations(ctx context.Context) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT destination FROM fed_destinations
		UNION SELECT server_name FROM fed_room_servers
		UNION SELECT destination FROM fed_edus`)
	if err != nil {
		return nil, fmt.Errorf("fed destinations: %w", err)
	}
	return collectStrings(rows)
}

// FedDestination returns a destination's queue state. A destination never
// seen before gets a new state whose cursor sits just before its first
// join, so it receives its own join and everything after.
func (s *Store) FedDestination(ctx context.Context, dest string) (FedDestination, error) {
	d := FedDestination{Destination: dest}
	err := s.read.QueryRowContext(ctx, `SELECT sent_pos, sent_edu, txn_id, txn_pos, txn_edu, failures, retry_at_ts
		FROM fed_destinations WHERE destination = $1`, dest).Scan(&d.SentPos, &d.SentEDU, &d.TxnID, &d.TxnPos, &d.TxnEDU, &d.Failures, &d.RetryAtTS)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("fed destination %s: %w", dest, err)
	}
	var first sql.NullInt64
	if err := s.read.QueryRowContext(ctx, `SELECT MIN(joined_pos) FROM fed_room_servers WHERE server_name = $1`, dest).Scan(&first); err != nil {
		return d, fmt.Errorf("fed destination %s: %w", dest, err)
	}
	if first.Valid {
		d.SentPos = first.Int64 - 1
	}
	return d, nil
}

// FedPutDestinations stores destinations' states and deletes the durable
// EDUs each has acknowledged (IDs at or below SentEDU), all in one
// transaction: the queue group-commits the states of many destinations,
// so a room with many servers costs one commit per round, not one each.
func (s *Store) FedPutDestinations(ctx context.Context, ds []FedDestination) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, d := range ds {
			if _, err := tx.ExecContext(ctx, `INSERT INTO fed_destinations (destination, sent_pos, sent_edu, txn_id, txn_pos, txn_edu, failures, retry_at_ts)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (destination) DO UPDATE SET sent_pos = excluded.sent_pos,
			sent_edu = excluded.sent_edu, txn_id = excluded.txn_id, txn_pos = excluded.txn_pos, txn_edu = excluded.txn_edu,
			failures = excluded.failures, retry_at_ts = excluded.retry_at_ts`,
				d.Destination, d.SentPos, d.SentEDU, d.TxnID, d.TxnPos, d.TxnEDU, d.Failures, d.RetryAtTS); err != nil {
				return fmt.Errorf("fed put destination %s: %w", d.Destination, err)
			}
			if d.SentEDU > 0 {
				if _, err := tx.ExecContext(ctx, `DELETE FROM fed_edus WHERE destination = $1 AND id <= $2`, d.Destination, d.SentEDU); err != nil {
					return fmt.Errorf("fed delete edus of %s: %w", d.Destination, err)
				}
			}
		}
		return nil
	})
}

// FedPDUs returns the events to send to dest with positions in (after,
// upto], oldest first, at most limit: those of rooms dest was in at the
// event's position whose sender's server is origin (each server sends its
// own events), and those marked to send on behalf of a server other than
// dest (MarkSendOnBehalf).
func (s *Store) FedPDUs(ctx context.Context, dest, origin string, after, upto int64, limit int) ([]FedPDU, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT e.pos, e.event_id, e.room_id, e.sender, e.pdu, COALESCE(ob.origin, '')
		FROM fed_room_servers rs JOIN events e ON e.room_id = rs.room_id
		LEFT JOIN fed_on_behalf ob ON ob.pos = e.pos
		WHERE rs.server_name = $1 AND (rs.left_pos = 0 OR rs.left_pos > $2) AND rs.joined_pos <= $3
			AND e.pos > $2 AND e.pos <= $3 AND e.pos >= rs.joined_pos AND (rs.left_pos = 0 OR e.pos <= rs.left_pos)
			AND (e.sender LIKE $4 ESCAPE '\' OR (ob.origin IS NOT NULL AND ob.origin <> $1))
		ORDER BY e.pos LIMIT $5`, dest, after, upto, likeSuffix(origin), limit)
	if err != nil {
		return nil, fmt.Errorf("fed pdus for %s: %w", dest, err)
	}
	defer rows.Close()
	var out []FedPDU
	for rows.Next() {
		var p FedPDU
		var body, onBehalf string
		if err := rows.Scan(&p.Pos, &p.EventID, &p.RoomID, &p.Sender, &body, &onBehalf); err != nil {
			return nil, fmt.Errorf("fed pdus for %s: %w", dest, err)
		}
		if onBehalf == "" && !strings.HasSuffix(p.Sender, ":"+origin) {
			continue // LIKE ignores case on SQLite
		}
		p.PDU = []byte(body)
		out = append(out, p)
	}
	return out, rows.Err()
}

// FedPutEDU stores a durable EDU for dest under id (assigned by the queue).
func (s *Store) FedPutEDU(ctx context.Context, dest string, id int64, typ string, content []byte) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO fed_edus (destination, id, edu_type, content) VALUES ($1,$2,$3,$4)`,
		dest, id, typ, string(content))
	if err != nil {
		return fmt.Errorf("fed put edu for %s: %w", dest, err)
	}
	return nil
}

// FedEDUs returns dest's durable EDUs with IDs in (after, upto], oldest
// first, at most limit.
func (s *Store) FedEDUs(ctx context.Context, dest string, after, upto int64, limit int) ([]FedEDU, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, edu_type, content FROM fed_edus
		WHERE destination = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT $4`, dest, after, upto, limit)
	if err != nil {
		return nil, fmt.Errorf("fed edus for %s: %w", dest, err)
	}
	defer rows.Close()
	var out []FedEDU
	for rows.Next() {
		var e FedEDU
		var content string
		if err := rows.Scan(&e.ID, &e.Type, &content); err != nil {
			return nil, fmt.Errorf("fed edus for %s: %w", dest, err)
		}
		e.Content = []byte(content)
		out = append(out, e)
	}
	return out, rows.Err()
}

// FedEDUStats returns the highest durable EDU ID ever stored (so new IDs
// continue above it) and the number waiting per destination.
func (s *Store) FedEDUStats(ctx context.Context) (maxID int64, pending map[string]int, err error) {
	if err := s.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM fed_edus`).Scan(&maxID); err != nil {
		return 0, nil, fmt.Errorf("fed edu stats: %w", err)
	}
	var sent int64
	if err := s.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(sent_edu), 0) FROM fed_destinations`).Scan(&sent); err != nil {
		return 0, nil, fmt.Errorf("fed edu stats: %w", err)
	}
	maxID = max(maxID, sent)
	rows, err := s.read.QueryContext(ctx, `SELECT destination, COUNT(*) FROM fed_edus GROUP BY destination`)
	if err != nil {
		return 0, nil, fmt.Errorf("fed edu stats: %w", err)
	}
	defer rows.Close()
	pending = map[string]int{}
	for rows.Next() {
		var d string
		var n int
		if err := rows.Scan(&d, &n); err != nil {
			return 0, nil, fmt.Errorf("fed edu stats: %w", err)
		}
		pending[d] = n
	}
	return maxID, pending, rows.Err()
}

// MarkSendOnBehalf records, in the writer's transaction, that the event at
// pos (a remote user's, accepted through send_join, send_leave or
// send_knock) is to be sent to the room's other servers on behalf of
// origin, which does not know them.
func (w *WriteTx) MarkSendOnBehalf(ctx context.Context, pos int64, origin string) error {
	if _, err := w.tx.ExecContext(ctx, `INSERT INTO fed_on_behalf (pos, origin) VALUES ($1, $2) ON CONFLICT (pos) DO NOTHING`, pos, origin); err != nil {
		return fmt.Errorf("mark send on behalf of %s: %w", origin, err)
	}
	return nil
}
