package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ServerNoticeRoom returns userID's server notices room, or ErrNotFound.
func (s *Store) ServerNoticeRoom(ctx context.Context, userID string) (string, error) {
	var room string
	err := s.read.QueryRowContext(ctx, `SELECT room_id FROM server_notice_rooms WHERE user_id = $1`, userID).Scan(&room)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("server notice room of %s: %w", userID, err)
	}
	return room, nil
}

// SetServerNoticeRoom records (or replaces) userID's server notices room.
func (s *Store) SetServerNoticeRoom(ctx context.Context, userID, roomID string) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO server_notice_rooms (user_id, room_id) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE SET room_id = excluded.room_id`, userID, roomID)
	if err != nil {
		return fmt.Errorf("set server notice room of %s: %w", userID, err)
	}
	return nil
}

// IsServerNoticeRoom reports whether roomID is some user's server notices
// room (one indexed lookup; asked only on leaves).
func (s *Store) IsServerNoticeRoom(ctx context.Context, roomID string) (bool, error) {
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM server_notice_rooms WHERE room_id = $1`, roomID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("is server notice room %s: %w", roomID, err)
	}
	return n > 0, nil
}
