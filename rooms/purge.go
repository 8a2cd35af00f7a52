package rooms

import (
	"context"
	"fmt"
)

// Operator purges (issue 16). They run as writer jobs, so no write to the
// room interleaves with them, and they tell the commit listener through
// Commit.Purged, so that caches of the room's events (sync's timeline
// cache, unread counts) are dropped with the rows.

// PurgeHistory deletes roomID's messages older than beforeTS (ms since the
// epoch): every non-state event except the forward extremities. State
// events stay, so the room's state, auth chains and membership history
// hold, and /messages and sync go on from what is left. It returns the
// number of events deleted.
func (s *Service) PurgeHistory(ctx context.Context, roomID string, beforeTS int64) (int64, error) {
	var n int64
	err := s.submit(ctx, "", func(ctx context.Context, b *batch) error {
		n = 0
		if _, err := b.room(ctx, roomID); err != nil {
			return err
		}
		got, err := b.tx.PurgeHistory(ctx, roomID, beforeTS)
		if err != nil {
			return &txError{err: err}
		}
		n = got
		b.commit.Purged = append(b.commit.Purged, roomID)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge history of %s: %w", roomID, err)
	}
	return n, nil
}

// PurgeRoom deletes everything stored about roomID and drops it from the
// writer's cache. Callers block the room first and make its local members
// leave; the room is unknown afterwards. It returns the number of events
// deleted.
func (s *Service) PurgeRoom(ctx context.Context, roomID string) (int64, error) {
	var n int64
	err := s.submit(ctx, "", func(ctx context.Context, b *batch) error {
		n = 0
		got, err := b.tx.PurgeRoom(ctx, roomID)
		if err != nil {
			return &txError{err: err}
		}
		n = got
		b.s.cache.remove(roomID) // a rollback reloads it from the store
		b.commit.Purged = append(b.commit.Purged, roomID)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge room %s: %w", roomID, err)
	}
	return n, nil
}
