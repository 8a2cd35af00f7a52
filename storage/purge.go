package storage

import (
	"context"
	"fmt"
)

// Purges for the operator API (issue 16). Both run in the room writer's
// transaction (rooms/purge.go), so no write to the room interleaves and
// the writer's cache is told in the same step.

// purgeableHistory selects a room's events a history purge deletes: not
// state (every state event stays, so the room's state at any point can
// still be rebuilt and auth chains hold), not a forward extremity (new
// events name those as prev_events; the latest event is one whenever the
// row says extremitiesLatest), and older than the cut-off.
const purgeableHistory = `SELECT pos FROM events WHERE room_id = $1 AND origin_ts < $2 AND state_key IS NULL
	AND (SELECT extremities FROM rooms WHERE room_id = $1) NOT LIKE '%' || event_id || '%'
	AND pos < (SELECT MAX(pos) FROM events WHERE room_id = $1)`

// PurgeHistory deletes roomID's non-state events older than beforeTS (ms),
// with their mention, relation and media-reference rows, and returns how
// many events went. State events and the room's forward extremities stay.
func (w *WriteTx) PurgeHistory(ctx context.Context, roomID string, beforeTS int64) (int64, error) {
	for _, q := range []string{
		`DELETE FROM event_mentions WHERE room_id = $1 AND pos IN (` + purgeableHistory + `)`,
		`DELETE FROM media_refs WHERE room_id = $1 AND pos IN (` + purgeableHistory + `)`,
		`DELETE FROM event_relations WHERE room_id = $1 AND pos IN (` + purgeableHistory + `)`,
	} {
		if _, err := w.tx.ExecContext(ctx, q, roomID, beforeTS); err != nil {
			return 0, fmt.Errorf("purge history of %s: %w", roomID, err)
		}
	}
	res, err := w.tx.ExecContext(ctx, `DELETE FROM events WHERE room_id = $1 AND pos IN (`+purgeableHistory+`)`, roomID, beforeTS)
	if err != nil {
		return 0, fmt.Errorf("purge history of %s: %w", roomID, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// PurgeRoom deletes everything the store holds about roomID: events,
// state, memberships, receipts, aliases, room-scoped account data,
// relations, reports and the room row itself. A block (blocked_rooms)
// stays, so the room cannot be joined again over federation. It returns
// the number of events deleted.
func (w *WriteTx) PurgeRoom(ctx context.Context, roomID string) (int64, error) {
	var n int64
	if err := w.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE room_id = $1`, roomID).Scan(&n); err != nil {
		return 0, fmt.Errorf("purge room %s: %w", roomID, err)
	}
	for _, q := range []string{
		`DELETE FROM state_group_deltas WHERE group_id IN (SELECT group_id FROM state_groups WHERE room_id = $1)`,
		`DELETE FROM state_groups WHERE room_id = $1`,
		`DELETE FROM current_state_deltas WHERE room_id = $1`,
		`DELETE FROM current_state WHERE room_id = $1`,
		`DELETE FROM unlisted_events WHERE room_id = $1`,
		`DELETE FROM event_mentions WHERE room_id = $1`,
		`DELETE FROM event_relations WHERE room_id = $1`,
		`DELETE FROM event_reports WHERE room_id = $1`,
		`DELETE FROM media_refs WHERE room_id = $1`,
		`DELETE FROM receipts WHERE room_id = $1`,
		`DELETE FROM account_data WHERE room_id = $1`,
		`DELETE FROM room_aliases WHERE room_id = $1`,
		`DELETE FROM fed_room_servers WHERE room_id = $1`,
		`DELETE FROM memberships WHERE room_id = $1`,
		`DELETE FROM events WHERE room_id = $1`,
		`DELETE FROM rooms WHERE room_id = $1`,
	} {
		if _, err := w.tx.ExecContext(ctx, q, roomID); err != nil {
			return 0, fmt.Errorf("purge room %s: %w", roomID, err)
		}
	}
	return n, nil
}
