package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
)

// Pushers and the push queue (tables from schema 034). Storage keeps rows
// and does each change in one transaction; package push owns the rules
// (validation, which events notify whom, retries).

// Pusher is one stored pusher.
type Pusher struct {
	ID                int64
	UserID            string
	DeviceID          string // the device that created it; "" if unknown
	Kind              string // "http" or "email"
	AppID             string
	PushKey           string
	AppDisplayName    string
	DeviceDisplayName string
	ProfileTag        string
	Lang              string
	Data              string // JSON object, as the client sent it
	PushKeyTS         int64  // ms when the pushkey was last set
}

const pusherCols = `p.id, p.user_id, p.device_id, p.kind, p.app_id, p.pushkey, p.app_display_name, p.device_display_name, p.profile_tag, p.lang, p.data, p.pushkey_ts`

func scanPusher(row interface{ Scan(...any) error }, extra ...any) (Pusher, error) {
	var p Pusher
	dest := append([]any{&p.ID, &p.UserID, &p.DeviceID, &p.Kind, &p.AppID, &p.PushKey, &p.AppDisplayName,
		&p.DeviceDisplayName, &p.ProfileTag, &p.Lang, &p.Data, &p.PushKeyTS}, extra...)
	return p, row.Scan(dest...)
}

// ErrTooManyPushers refuses a new pusher past the caller's per-user cap.
var ErrTooManyPushers = errors.New("storage: user has the maximum number of pushers")

// SetPusher adds p, or replaces the user's pusher with the same app ID and
// pushkey (keeping its ID and queue). Unless appendOthers, pushers of other
// users with the same app ID and pushkey are removed, as the spec asks
// (a pushkey names one device of the app). A new pusher past maxPerUser (0:
// no cap) fails with ErrTooManyPushers. It returns the pusher's ID and the
// IDs of the pushers removed.
func (s *Store) SetPusher(ctx context.Context, p Pusher, appendOthers bool, maxPerUser int) (int64, []int64, error) {
	var id int64
	var removed []int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		removed = removed[:0]
		if !appendOthers {
			rows, err := tx.QueryContext(ctx, `SELECT id FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3`, p.AppID, p.PushKey, p.UserID)
			if err != nil {
				return err
			}
			for rows.Next() {
				var old int64
				if err := rows.Scan(&old); err != nil {
					rows.Close()
					return err
				}
				removed = append(removed, old)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			if err := deletePusherIDsTx(ctx, tx, removed); err != nil {
				return err
			}
		}
		err := tx.QueryRowContext(ctx, `SELECT id FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3`, p.UserID, p.AppID, p.PushKey).Scan(&id)
		switch {
		case err == nil:
			_, err = tx.ExecContext(ctx, `UPDATE pushers SET device_id = $2, kind = $3, app_display_name = $4, device_display_name = $5,
				profile_tag = $6, lang = $7, data = $8, pushkey_ts = $9 WHERE id = $1`,
				id, p.DeviceID, p.Kind, p.AppDisplayName, p.DeviceDisplayName, p.ProfileTag, p.Lang, p.Data, p.PushKeyTS)
			return err
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if maxPerUser > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pushers WHERE user_id = $1`, p.UserID).Scan(&n); err != nil {
				return err
			}
			if n >= maxPerUser {
				return ErrTooManyPushers
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT next_pusher FROM push_state WHERE id = 1`).Scan(&id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE push_state SET next_pusher = $1 WHERE id = 1`, id+1); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO pushers (id, user_id, device_id, kind, app_id, pushkey, app_display_name,
			device_display_name, profile_tag, lang, data, pushkey_ts) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
			id, p.UserID, p.DeviceID, p.Kind, p.AppID, p.PushKey, p.AppDisplayName, p.DeviceDisplayName, p.ProfileTag, p.Lang, p.Data, p.PushKeyTS)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrTooManyPushers) {
			return 0, nil, err
		}
		return 0, nil, fmt.Errorf("set pusher of %s: %w", p.UserID, err)
	}
	return id, removed, nil
}

// DeletePusher removes the user's pusher with this app ID and pushkey, and
// its queue. It reports whether one existed.
func (s *Store) DeletePusher(ctx context.Context, userID, appID, pushKey string) (bool, error) {
	var found bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3`, userID, appID, pushKey).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return deletePusherIDsTx(ctx, tx, []int64{id})
	})
	if err != nil {
		return false, fmt.Errorf("delete pusher of %s: %w", userID, err)
	}
	return found, nil
}

// DeletePusherByID removes a pusher and its queue (a gateway rejected its
// pushkey).
func (s *Store) DeletePusherByID(ctx context.Context, id int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return deletePusherIDsTx(ctx, tx, []int64{id}) })
}

// deletePusherIDsTx deletes pushers, then their queue rows. The order
// matters on PostgreSQL: deleting the pusher row waits for a scanner
// transaction that holds it FOR SHARE (PushEnqueue), and the queue delete,
// a later statement, then sees that transaction's rows. The other way
// round, a row queued meanwhile would outlive its pusher.
func deletePusherIDsTx(ctx context.Context, tx *sql.Tx, ids []int64) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `DELETE FROM pushers WHERE id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM push_queue WHERE pusher_id = $1`, id); err != nil {
			return err
		}
	}
	return nil
}

// deleteDevicePushersTx removes the pushers the devices created (every
// pusher of the user when deviceIDs is empty), with their queues. It runs in
// DeleteDevices' transaction: logout, device deletion and deactivation.
func deleteDevicePushersTx(ctx context.Context, tx *sql.Tx, userID string, deviceIDs []string) error {
	q := `SELECT id FROM pushers WHERE user_id = $1`
	args := []any{userID}
	if len(deviceIDs) > 0 {
		q += ` AND device_id IN (` + placeholders(2, len(deviceIDs)) + `)`
		for _, d := range deviceIDs {
			args = append(args, d)
		}
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("delete pushers: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("delete pushers: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("delete pushers: %w", err)
	}
	if err := deletePusherIDsTx(ctx, tx, ids); err != nil {
		return fmt.Errorf("delete pushers: %w", err)
	}
	return nil
}

// Pushers lists a user's pushers, oldest first.
func (s *Store) Pushers(ctx context.Context, userID string) ([]Pusher, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+pusherCols+` FROM pushers p WHERE p.user_id = $1 ORDER BY p.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list pushers of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []Pusher
	for rows.Next() {
		p, err := scanPusher(rows)
		if err != nil {
			return nil, fmt.Errorf("list pushers of %s: %w", userID, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PushState is what the push service loads at start.
type PushState struct {
	ScanPos int64           // every event at or below has been queued
	MaxSeq  int64           // the highest queue row number in use
	Pending map[int64]int64 // queue rows per pusher with any
	Pushers int64           // pushers stored
}

// LoadPushState reads the push scanner's position and the queue's size.
func (s *Store) LoadPushState(ctx context.Context) (PushState, error) {
	st := PushState{Pending: map[int64]int64{}}
	err := s.read.QueryRowContext(ctx, `SELECT scan_pos, (SELECT COALESCE(MAX(seq), 0) FROM push_queue),
		(SELECT COUNT(*) FROM pushers) FROM push_state WHERE id = 1`).Scan(&st.ScanPos, &st.MaxSeq, &st.Pushers)
	if err != nil {
		return st, fmt.Errorf("load push state: %w", err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT pusher_id, COUNT(*) FROM push_queue GROUP BY pusher_id`)
	if err != nil {
		return st, fmt.Errorf("load push state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			return st, fmt.Errorf("load push state: %w", err)
		}
		st.Pending[id] = n
	}
	return st, rows.Err()
}

// CountPushers counts the stored pushers.
func (s *Store) CountPushers(ctx context.Context) (int64, error) {
	var n int64
	err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM pushers`).Scan(&n)
	return n, err
}

// PushEvent is an event in a room where someone has an http pusher, as
// the push scanner reads it to evaluate each member's push rules.
type PushEvent struct {
	Pos     int64
	EventID string
	RoomID  string
	Type    string
	Sender  string
	Client  []byte // the client-format event the rules match against
	// Invitee is the invited user of an m.room.member invite ("" for
	// other events): they are not joined, yet their rules see it.
	Invitee string
}

// PushEventsAfter returns the events in (after, upto] of rooms where a
// joined member has an http pusher, and the invites of users with one,
// oldest first, at most limit. Every
// event is returned, not only those the default rules notify: a user's
// own rules (a keyword, an override on any property) may notify of any.
func (s *Store) PushEventsAfter(ctx context.Context, after, upto int64, limit int) ([]PushEvent, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT e.pos, e.event_id, e.room_id, e.type, e.sender, e.client,
			CASE WHEN e.type = 'm.room.member' AND e.membership = 'invite' THEN e.state_key ELSE '' END
		FROM events e WHERE e.pos > $1 AND e.pos <= $2 AND (EXISTS
			(SELECT 1 FROM memberships m JOIN pushers p ON p.user_id = m.user_id AND p.kind = 'http'
			 WHERE m.room_id = e.room_id AND m.membership = 'join')
			OR (e.type = 'm.room.member' AND e.membership = 'invite' AND EXISTS
			(SELECT 1 FROM pushers p WHERE p.user_id = e.state_key AND p.kind = 'http')))
		ORDER BY e.pos LIMIT $3`, after, upto, limit)
	if err != nil {
		return nil, fmt.Errorf("push events after %d: %w", after, err)
	}
	defer rows.Close()
	var out []PushEvent
	for rows.Next() {
		var e PushEvent
		var invitee sql.NullString
		if err := rows.Scan(&e.Pos, &e.EventID, &e.RoomID, &e.Type, &e.Sender, &e.Client, &invitee); err != nil {
			return nil, fmt.Errorf("push events after %d: %w", after, err)
		}
		e.Invitee = invitee.String
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("push events after %d: %w", after, err)
	}
	return out, nil
}

// PushMember is a joined member with an http pusher.
type PushMember struct {
	UserID      string
	JoinPos     int64  // the position of their membership event
	DisplayName string // from their membership event ("" if none)
}

// PushRoomMembers returns, per room, the joined members who have an http
// pusher, and each room's joined member count.
func (s *Store) PushRoomMembers(ctx context.Context, roomIDs []string) (map[string][]PushMember, map[string]int, error) {
	members := map[string][]PushMember{}
	counts := map[string]int{}
	if len(roomIDs) == 0 {
		return members, counts, nil
	}
	args := make([]any, len(roomIDs))
	for i, r := range roomIDs {
		args[i] = r
	}
	in := placeholders(1, len(roomIDs))
	rows, err := s.read.QueryContext(ctx, `SELECT m.room_id, m.user_id, m.pos, e.client FROM memberships m
		LEFT JOIN events e ON e.event_id = m.event_id
		WHERE m.room_id IN (`+in+`) AND m.membership = 'join'
		AND EXISTS (SELECT 1 FROM pushers p WHERE p.user_id = m.user_id AND p.kind = 'http')`, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("push room members: %w", err)
	}
	for rows.Next() {
		var room string
		var m PushMember
		var client []byte
		if err := rows.Scan(&room, &m.UserID, &m.JoinPos, &client); err != nil {
			rows.Close()
			return nil, nil, err
		}
		m.DisplayName = gjson.GetBytes(client, "content.displayname").Str
		members[room] = append(members[room], m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	crows, err := s.read.QueryContext(ctx, `SELECT room_id, COUNT(*) FROM memberships WHERE room_id IN (`+in+`) AND membership = 'join' GROUP BY room_id`, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("push room member counts: %w", err)
	}
	defer crows.Close()
	for crows.Next() {
		var room string
		var n int
		if err := crows.Scan(&room, &n); err != nil {
			return nil, nil, err
		}
		counts[room] = n
	}
	return members, counts, crows.Err()
}

// HTTPPusherIDs returns the IDs of the user's http pushers.
func (s *Store) HTTPPusherIDs(ctx context.Context, userID string) ([]int64, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id FROM pushers WHERE user_id = $1 AND kind = 'http' ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("pushers of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// PushItem is one queued notification for one pusher.
type PushItem struct {
	PusherID int64
	Seq      int64
	EventID  string
	RoomID   string
	Pos      int64
	High     bool   // prio "high"
	Tweaks   string // JSON object
	Unread   int64
}

// PushTrim asks PushEnqueue to drop a pusher's oldest rows, keeping keep.
type PushTrim struct {
	PusherID int64
	Keep     int64
}

// PushEnqueue stores queue rows, drops the oldest rows of the pushers in
// trims, and moves the scan position to scanPos, in one transaction: a
// restart neither loses nor repeats a row. It returns the rows dropped per
// pusher.
func (s *Store) PushEnqueue(ctx context.Context, items []PushItem, trims []PushTrim, scanPos int64) (map[int64]int64, error) {
	dropped := map[int64]int64{}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		clear(dropped)
		// A pusher deleted since the scan read it gets no row. On
		// PostgreSQL the pusher row is held FOR SHARE until commit, so a
		// concurrent deletion waits and then deletes these rows too
		// (deletePusherIDsTx); SQLite runs one writer at a time.
		lock := ""
		if s.postgres {
			lock = " FOR SHARE"
		}
		for i := range items {
			it := &items[i]
			if _, err := tx.ExecContext(ctx, `INSERT INTO push_queue (pusher_id, seq, event_id, room_id, pos, high, tweaks, unread)
				SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM pushers WHERE id = $1`+lock,
				it.PusherID, it.Seq, it.EventID, it.RoomID, it.Pos, boolInt(it.High), it.Tweaks, it.Unread); err != nil {
				return err
			}
		}
		for _, t := range trims {
			res, err := tx.ExecContext(ctx, `DELETE FROM push_queue WHERE pusher_id = $1 AND seq NOT IN
				(SELECT seq FROM push_queue WHERE pusher_id = $1 ORDER BY seq DESC LIMIT $2)`, t.PusherID, t.Keep)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				dropped[t.PusherID] += n
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE push_state SET scan_pos = $1 WHERE id = 1 AND scan_pos < $1`, scanPos)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("push enqueue: %w", err)
	}
	return dropped, nil
}

// SetPushScanPos records the scan position when a page queued nothing.
func (s *Store) SetPushScanPos(ctx context.Context, pos int64) error {
	_, err := s.write.ExecContext(ctx, `UPDATE push_state SET scan_pos = $1 WHERE id = 1 AND scan_pos < $1`, pos)
	return err
}

// PushNext is the oldest queued notification of a pusher, with the pusher
// and the event's client form ("" if the event is gone).
type PushNext struct {
	Item   PushItem
	Pusher Pusher
	Event  []byte
}

// PushNextItems returns the pusher's oldest queued notifications, at most
// limit, oldest first; none when its queue is empty or the pusher is gone.
func (s *Store) PushNextItems(ctx context.Context, pusherID int64, limit int) ([]PushNext, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+pusherCols+`, q.seq, q.event_id, q.room_id, q.pos, q.high, q.tweaks, q.unread, e.client
		FROM push_queue q JOIN pushers p ON p.id = q.pusher_id LEFT JOIN events e ON e.event_id = q.event_id
		WHERE q.pusher_id = $1 ORDER BY q.seq LIMIT $2`, pusherID, limit)
	if err != nil {
		return nil, fmt.Errorf("next pushes of pusher %d: %w", pusherID, err)
	}
	defer rows.Close()
	var out []PushNext
	for rows.Next() {
		var n PushNext
		var high int
		var client sql.NullString
		p, err := scanPusher(rows, &n.Item.Seq, &n.Item.EventID, &n.Item.RoomID, &n.Item.Pos, &high, &n.Item.Tweaks, &n.Item.Unread, &client)
		if err != nil {
			return nil, fmt.Errorf("next pushes of pusher %d: %w", pusherID, err)
		}
		n.Pusher, n.Item.PusherID, n.Item.High = p, pusherID, high == 1
		if client.Valid {
			n.Event = []byte(client.String)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// PushAck deletes delivered (or abandoned) queue rows of a pusher, in one
// statement, and returns how many were still there (a trim may have
// dropped some meanwhile).
func (s *Store) PushAck(ctx context.Context, pusherID int64, seqs []int64) (int64, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	args := []any{pusherID}
	for _, q := range seqs {
		args = append(args, q)
	}
	res, err := s.write.ExecContext(ctx, `DELETE FROM push_queue WHERE pusher_id = $1 AND seq IN (`+placeholders(2, len(seqs))+`)`, args...)
	if err != nil {
		return 0, fmt.Errorf("ack pushes of pusher %d: %w", pusherID, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// PushDropOrphans deletes the queue rows of a pusher that no longer
// exists. A row can outlive its pusher when the scanner's insert (which
// checks that the pusher exists) races the pusher's deletion on
// PostgreSQL: each transaction misses the other's uncommitted change.
func (s *Store) PushDropOrphans(ctx context.Context, pusherID int64) error {
	_, err := s.write.ExecContext(ctx, `DELETE FROM push_queue WHERE pusher_id = $1 AND NOT EXISTS (SELECT 1 FROM pushers WHERE id = $1)`, pusherID)
	return err
}

// PushQueueLen counts the queued notifications of every pusher.
func (s *Store) PushQueueLen(ctx context.Context) (int64, error) {
	var n int64
	err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM push_queue`).Scan(&n)
	return n, err
}
