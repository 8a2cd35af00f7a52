package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ServerInRoom reports whether server (a server name, port included when
// it has one) has a user joined to roomID: federation takes typing and
// receipts for a room only from such servers. It compares the user ID's
// suffix exactly, the same on both engines (LIKE would ignore case on
// SQLite only).
func (s *Store) ServerInRoom(ctx context.Context, roomID, server string) (bool, error) {
	suffix := ":" + server
	var one int
	err := s.read.QueryRowContext(ctx, `SELECT 1 FROM memberships
		WHERE room_id = $1 AND membership = 'join'
		AND length(user_id) > length(CAST($2 AS TEXT))
		AND substr(user_id, length(user_id) - length(CAST($2 AS TEXT)) + 1) = CAST($2 AS TEXT)
		LIMIT 1`, roomID, suffix).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("servers in room %s: %w", roomID, err)
	}
	return true, nil
}
