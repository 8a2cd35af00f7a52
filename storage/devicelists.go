package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// LeftMembersSince returns the users whose membership in one of roomIDs
// became leave or ban after since (device_lists.left in sync). It reads
// through the memberships (room_id, membership, pos) index.
func (s *Store) LeftMembersSince(ctx context.Context, roomIDs []string, since, upto int64) ([]string, error) {
	if len(roomIDs) == 0 {
		return nil, nil
	}
	args := []any{since, upto}
	for _, r := range roomIDs {
		args = append(args, r)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT DISTINCT user_id FROM memberships
		WHERE room_id IN (`+placeholders(3, len(roomIDs))+`) AND membership IN ('leave', 'ban') AND pos > $1 AND pos <= $2`, args...)
	if err != nil {
		return nil, fmt.Errorf("left members: %w", err)
	}
	return collectStrings(rows)
}

// DeviceListStreamID returns the last device-list stream ID announced to
// other servers for a local user; 0 when none was.
func (s *Store) DeviceListStreamID(ctx context.Context, userID string) (int64, error) {
	var id int64
	err := s.read.QueryRowContext(ctx, `SELECT stream_id FROM device_list_streams WHERE user_id = $1`, userID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("device list stream: %w", err)
	}
	return id, nil
}

// DeviceListAnnounced returns what was last announced of a local user's
// device list: the stream ID and a digest per item.
func (s *Store) DeviceListAnnounced(ctx context.Context, userID string) (int64, map[string]string, error) {
	id, err := s.DeviceListStreamID(ctx, userID)
	if err != nil {
		return 0, nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT item, digest FROM device_list_announced WHERE user_id = $1`, userID)
	if err != nil {
		return 0, nil, fmt.Errorf("device list announced: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var item, digest string
		if err := rows.Scan(&item, &digest); err != nil {
			return 0, nil, err
		}
		out[item] = digest
	}
	return id, out, rows.Err()
}

// SaveDeviceListAnnounced records, in one transaction, a user's new
// device-list stream ID, the items announced (item -> digest) and the
// items announced as gone.
func (s *Store) SaveDeviceListAnnounced(ctx context.Context, userID string, streamID int64, set map[string]string, gone []string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO device_list_streams (user_id, stream_id) VALUES ($1, $2)
			ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id`, userID, streamID); err != nil {
			return fmt.Errorf("save device list stream: %w", err)
		}
		for item, digest := range set {
			if _, err := tx.ExecContext(ctx, `INSERT INTO device_list_announced (user_id, item, digest) VALUES ($1, $2, $3)
				ON CONFLICT (user_id, item) DO UPDATE SET digest = excluded.digest`, userID, item, digest); err != nil {
				return fmt.Errorf("save device list item: %w", err)
			}
		}
		for _, item := range gone {
			if _, err := tx.ExecContext(ctx, `DELETE FROM device_list_announced WHERE user_id = $1 AND item = $2`, userID, item); err != nil {
				return fmt.Errorf("delete device list item: %w", err)
			}
		}
		return nil
	})
}
