package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// CreateAccount inserts a new user and, when d is not nil, their first
// device, in one transaction: a registration refused at the device (bad
// text, a failed write) leaves no account behind, so the client's retry
// does not meet M_USER_IN_USE for an account it never got. It returns
// ErrConflict when the user ID is taken.
func (s *Store) CreateAccount(ctx context.Context, u User, d *Device) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO users (user_id, password_hash, is_admin, displayname, avatar_url, created_ts) VALUES ($1,$2,$3,$4,$5,$6)`,
			u.UserID, u.PasswordHash, boolInt(u.IsAdmin), u.DisplayName, u.AvatarURL, u.CreatedTS)
		if isUniqueViolation(err) {
			return ErrConflict
		}
		if err != nil || d == nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO devices (user_id, device_id, display_name, token_hash, created_ts, last_seen_ts, last_seen_ip)
			VALUES ($1,$2,$3,$4,$5,$6,$7)`,
			d.UserID, d.DeviceID, d.DisplayName, d.TokenHash, d.CreatedTS, d.LastSeenTS, d.LastSeenIP)
		return err
	})
	if err != nil && err != ErrConflict {
		return fmt.Errorf("create account %s: %w", u.UserID, err)
	}
	return err
}
