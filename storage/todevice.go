package storage

import (
	"context"
	"fmt"
)

// DeviceIDs returns the device IDs of each of users that has any, in one
// query per 500 users. Users without devices (or without an account) are
// absent from the map. sendToDevice uses it to drop messages for unknown
// users and devices before they reach the writer.
func (s *Store) DeviceIDs(ctx context.Context, users []string) (map[string][]string, error) {
	out := make(map[string][]string, len(users))
	for len(users) > 0 {
		chunk := users[:min(len(users), 500)]
		users = users[len(chunk):]
		args := make([]any, len(chunk))
		for i, u := range chunk {
			args[i] = u
		}
		rows, err := s.read.QueryContext(ctx, `SELECT user_id, device_id FROM devices WHERE user_id IN (`+placeholders(1, len(chunk))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("device IDs: %w", err)
		}
		for rows.Next() {
			var u, d string
			if err := rows.Scan(&u, &d); err != nil {
				rows.Close()
				return nil, fmt.Errorf("device IDs: %w", err)
			}
			out[u] = append(out[u], d)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("device IDs: %w", err)
		}
	}
	return out, nil
}

// DeleteExpiredToDevice deletes up to limit to-device messages queued
// before beforeTS (ms) and never delivered, oldest first, and returns how
// many it deleted. Rows from before schema 10 (ts 0) are first stamped with
// nowTS rather than deleted, so an upgrade does not drop pending messages.
// Each call is one short statement, so a sweep of a large backlog runs as
// many small deletes that never hold the database for long.
func (s *Store) DeleteExpiredToDevice(ctx context.Context, beforeTS, nowTS int64, limit int) (int64, error) {
	if _, err := s.write.ExecContext(ctx, `UPDATE to_device SET ts = $1 WHERE ts = 0`, nowTS); err != nil {
		return 0, fmt.Errorf("stamp old to-device rows: %w", err)
	}
	res, err := s.write.ExecContext(ctx, `DELETE FROM to_device WHERE pos IN
		(SELECT pos FROM to_device WHERE ts < $1 ORDER BY ts LIMIT $2)`, beforeTS, limit)
	if err != nil {
		return 0, fmt.Errorf("delete expired to-device: %w", err)
	}
	return res.RowsAffected()
}

// ToDeviceCount returns how many to-device messages are queued, for
// metrics and tests.
func (s *Store) ToDeviceCount(ctx context.Context) (int64, error) {
	var n int64
	if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM to_device`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count to-device: %w", err)
	}
	return n, nil
}
