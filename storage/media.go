package storage

import (
	"context"
	"fmt"
)

// MediaRef is one message that carries a local media item.
type MediaRef struct {
	RoomID string
	Pos    int64
}

// InsertMediaRefs records that the event at pos in roomID refers to mediaIDs.
func (w *WriteTx) InsertMediaRefs(ctx context.Context, roomID string, pos int64, mediaIDs []string) error {
	for _, id := range mediaIDs {
		if _, err := w.tx.ExecContext(ctx, `INSERT INTO media_refs (media_id, room_id, pos) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING`, id, roomID, pos); err != nil {
			return fmt.Errorf("insert media ref: %w", err)
		}
	}
	return nil
}

// MediaRefs lists the messages that carry a media item (at most 100).
func (s *Store) MediaRefs(ctx context.Context, mediaID string) ([]MediaRef, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT room_id, pos FROM media_refs WHERE media_id = $1 ORDER BY pos LIMIT 100`, mediaID)
	if err != nil {
		return nil, fmt.Errorf("media refs: %w", err)
	}
	defer rows.Close()
	var out []MediaRef
	for rows.Next() {
		var r MediaRef
		if err := rows.Scan(&r.RoomID, &r.Pos); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
