package storage

import (
	"context"
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
