package storage

import (
	"context"
	"fmt"
)

// UserNotice is one of Parley's own per-user events that belongs to no room:
// a friend request, an acceptance, a new follower. Sync delivers it to every
// device of UserID.
type UserNotice struct {
	Pos     int64
	UserID  string
	Type    string
	Content string // JSON object
	TS      int64
}

// InsertUserNotice stores a notice at the position the writer gave it.
func (w *WriteTx) InsertUserNotice(ctx context.Context, n UserNotice) error {
	w.wrote(n.Pos)
	_, err := w.tx.ExecContext(ctx, `INSERT INTO user_notices (pos, user_id, type, content, ts) VALUES ($1,$2,$3,$4,$5)`,
		n.Pos, n.UserID, n.Type, n.Content, n.TS)
	if err != nil {
		return fmt.Errorf("insert user notice: %w", err)
	}
	return nil
}

// UserNoticesSince returns userID's notices with since < pos <= upto, oldest
// first, at most limit of them.
func (s *Store) UserNoticesSince(ctx context.Context, userID string, since, upto int64, limit int) ([]UserNotice, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT pos, type, content, ts FROM user_notices
		WHERE user_id = $1 AND pos > $2 AND pos <= $3 ORDER BY pos LIMIT $4`, userID, since, upto, limit)
	if err != nil {
		return nil, fmt.Errorf("user notices since: %w", err)
	}
	defer rows.Close()
	var out []UserNotice
	for rows.Next() {
		n := UserNotice{UserID: userID}
		if err := rows.Scan(&n.Pos, &n.Type, &n.Content, &n.TS); err != nil {
			return nil, fmt.Errorf("user notices since: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
