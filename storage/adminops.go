package storage

import (
	"context"
	"fmt"
)

// The queries behind the operator actions of issue 16 (package admin):
// deactivation with erasure, reactivation, and the figures the metrics
// show. None of them is on a hot path.

// EventRef names one event.
type EventRef struct {
	Pos     int64
	EventID string
	RoomID  string
}

// SenderMessages returns up to limit of sender's events after pos
// afterPos, in pos order, that a redaction would erase: not state, not
// redactions themselves, not redacted yet. There is no index on sender,
// so it scans the events table; it serves the rare erasing deactivation.
func (s *Store) SenderMessages(ctx context.Context, sender string, afterPos int64, limit int) ([]EventRef, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT pos, event_id, room_id FROM events
		WHERE sender = $1 AND pos > $2 AND state_key IS NULL AND type <> 'm.room.redaction' AND redacted_by = ''
		ORDER BY pos LIMIT $3`, sender, afterPos, limit)
	if err != nil {
		return nil, fmt.Errorf("messages of %s: %w", sender, err)
	}
	defer rows.Close()
	var out []EventRef
	for rows.Next() {
		var e EventRef
		if err := rows.Scan(&e.Pos, &e.EventID, &e.RoomID); err != nil {
			return nil, fmt.Errorf("messages of %s: %w", sender, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Reactivate clears an account's deactivated mark and sets its password
// hash ("" means no password login until a reset).
func (s *Store) Reactivate(ctx context.Context, userID, passwordHash string) error {
	return s.execOne(ctx, `UPDATE users SET deactivated = 0, password_hash = $2 WHERE user_id = $1`, userID, passwordHash)
}
