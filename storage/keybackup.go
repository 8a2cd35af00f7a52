package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Server-side key backup (tables from schema 026). Storage keeps versions
// and sessions and does each change in one transaction; package keybackup
// owns the rules (which version may be written, which key wins), passed in
// as the replace function of PutBackupSessions.

// BackupVersion is one key backup version of a user.
type BackupVersion struct {
	Version   int64
	Algorithm string
	AuthData  string // JSON object, as the client sent it
	Etag      int64
	Count     int64
}

// BackupSession is one backed-up room key.
type BackupSession struct {
	RoomID            string
	SessionID         string
	FirstMessageIndex int64
	ForwardedCount    int64
	IsVerified        bool
	SessionData       string // JSON object, as the client sent it
}

// BackupVersionError says a write named a version that is not the user's
// current one; Current is the current version.
type BackupVersionError struct{ Current int64 }

func (e *BackupVersionError) Error() string {
	return fmt.Sprintf("storage: backup version is not the current one (%d)", e.Current)
}

// ErrBackupFull is returned when a write would take a backup version past
// the session cap the caller gave.
var ErrBackupFull = errors.New("storage: key backup holds the maximum number of sessions")

// CreateBackupVersion adds a version numbered one above any the user ever
// had (deleted ones included), which makes it the current one.
func (s *Store) CreateBackupVersion(ctx context.Context, userID, algorithm, authData string) (int64, error) {
	for attempt := 0; ; attempt++ {
		var v int64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM key_backup_versions WHERE user_id = $1`,
				userID).Scan(&v); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO key_backup_versions (user_id, version, algorithm, auth_data) VALUES ($1,$2,$3,$4)`,
				userID, v, algorithm, authData)
			return err
		})
		if isUniqueViolation(err) && attempt < 3 {
			continue // a concurrent create took the number (PostgreSQL)
		}
		if err != nil {
			return 0, fmt.Errorf("create backup version: %w", err)
		}
		return v, nil
	}
}

// GetBackupVersion returns a live version with its session count; version
// 0 means the current one. ErrNotFound when there is none.
func (s *Store) GetBackupVersion(ctx context.Context, userID string, version int64) (BackupVersion, error) {
	var v BackupVersion
	q := `SELECT version, algorithm, auth_data, etag FROM key_backup_versions WHERE user_id = $1 AND deleted = 0 AND version = $2`
	args := []any{userID, version}
	if version == 0 {
		q = `SELECT version, algorithm, auth_data, etag FROM key_backup_versions WHERE user_id = $1 AND deleted = 0
			ORDER BY version DESC LIMIT 1`
		args = args[:1]
	}
	err := s.read.QueryRowContext(ctx, q, args...).Scan(&v.Version, &v.Algorithm, &v.AuthData, &v.Etag)
	if errors.Is(err, sql.ErrNoRows) {
		return v, ErrNotFound
	}
	if err != nil {
		return v, fmt.Errorf("backup version: %w", err)
	}
	if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM key_backup_sessions WHERE user_id = $1 AND version = $2`,
		userID, v.Version).Scan(&v.Count); err != nil {
		return v, fmt.Errorf("backup count: %w", err)
	}
	return v, nil
}

// UpdateBackupAuthData replaces a live version's auth_data. ErrNotFound
// when the version does not exist or was deleted.
func (s *Store) UpdateBackupAuthData(ctx context.Context, userID string, version int64, authData string) error {
	res, err := s.write.ExecContext(ctx, `UPDATE key_backup_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2 AND deleted = 0`,
		userID, version, authData)
	if err != nil {
		return fmt.Errorf("update backup version: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteBackupVersion marks a version deleted and drops its sessions.
// ErrNotFound when it does not exist or was already deleted.
func (s *Store) DeleteBackupVersion(ctx context.Context, userID string, version int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET deleted = 1 WHERE user_id = $1 AND version = $2 AND deleted = 0`,
			userID, version)
		if err != nil {
			return fmt.Errorf("delete backup version: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2`, userID, version); err != nil {
			return fmt.Errorf("delete backup sessions: %w", err)
		}
		return nil
	})
}

// PutBackupSessions writes sessions into version, which must be the user's
// current one (ErrNotFound when there is none, *BackupVersionError when it
// is another). For a session already stored, replace(old, new) decides
// whether new takes its place. The etag rises by one when anything
// changed. More than maxSessions sessions in the version (0: no cap) fails
// with ErrBackupFull and changes nothing. It returns the etag and count
// after the write.
func (s *Store) PutBackupSessions(ctx context.Context, userID string, version int64, sessions []BackupSession,
	replace func(old, new *BackupSession) bool, maxSessions int64) (etag, count int64, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var current int64
		err := tx.QueryRowContext(ctx, `SELECT version FROM key_backup_versions WHERE user_id = $1 AND deleted = 0
			ORDER BY version DESC LIMIT 1`, userID).Scan(&current)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("current backup version: %w", err)
		}
		if current != version {
			return &BackupVersionError{Current: current}
		}
		// Lock the version row (PostgreSQL) so concurrent uploads to one
		// backup decide against each other's results, not a stale read.
		if _, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET etag = etag WHERE user_id = $1 AND version = $2`,
			userID, version); err != nil {
			return fmt.Errorf("lock backup version: %w", err)
		}
		changed := false
		for i := range sessions {
			n := &sessions[i]
			var old BackupSession
			var verified int
			err := tx.QueryRowContext(ctx, `SELECT first_message_index, forwarded_count, is_verified FROM key_backup_sessions
				WHERE user_id = $1 AND version = $2 AND room_id = $3 AND session_id = $4`, userID, version, n.RoomID, n.SessionID).
				Scan(&old.FirstMessageIndex, &old.ForwardedCount, &verified)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				_, err = tx.ExecContext(ctx, `INSERT INTO key_backup_sessions (user_id, version, room_id, session_id,
					first_message_index, forwarded_count, is_verified, session_data) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
					userID, version, n.RoomID, n.SessionID, n.FirstMessageIndex, n.ForwardedCount, boolInt(n.IsVerified), n.SessionData)
			case err != nil:
			default:
				old.RoomID, old.SessionID, old.IsVerified = n.RoomID, n.SessionID, verified != 0
				if !replace(&old, n) {
					continue
				}
				_, err = tx.ExecContext(ctx, `UPDATE key_backup_sessions SET first_message_index = $5, forwarded_count = $6,
					is_verified = $7, session_data = $8 WHERE user_id = $1 AND version = $2 AND room_id = $3 AND session_id = $4`,
					userID, version, n.RoomID, n.SessionID, n.FirstMessageIndex, n.ForwardedCount, boolInt(n.IsVerified), n.SessionData)
			}
			if err != nil {
				return fmt.Errorf("put backup session: %w", err)
			}
			changed = true
		}
		if changed {
			if _, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2`,
				userID, version); err != nil {
				return fmt.Errorf("bump backup etag: %w", err)
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM key_backup_sessions WHERE user_id = $1 AND version = $2`,
			userID, version).Scan(&count); err != nil {
			return fmt.Errorf("backup count: %w", err)
		}
		if maxSessions > 0 && count > maxSessions {
			return ErrBackupFull
		}
		return tx.QueryRowContext(ctx, `SELECT etag FROM key_backup_versions WHERE user_id = $1 AND version = $2`,
			userID, version).Scan(&etag)
	})
	return etag, count, err
}

// BackupSessions returns the sessions of a live version: all of them, one
// room's (roomID set) or one session (both set), ordered by room and
// session. ErrNotFound when the version does not exist or was deleted.
func (s *Store) BackupSessions(ctx context.Context, userID string, version int64, roomID, sessionID string) ([]BackupSession, error) {
	var live int
	err := s.read.QueryRowContext(ctx, `SELECT 1 FROM key_backup_versions WHERE user_id = $1 AND version = $2 AND deleted = 0`,
		userID, version).Scan(&live)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("backup version: %w", err)
	}
	q := `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
		FROM key_backup_sessions WHERE user_id = $1 AND version = $2`
	args := []any{userID, version}
	if roomID != "" {
		q += ` AND room_id = $3`
		args = append(args, roomID)
		if sessionID != "" {
			q += ` AND session_id = $4`
			args = append(args, sessionID)
		}
	}
	rows, err := s.read.QueryContext(ctx, q+` ORDER BY room_id, session_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("backup sessions: %w", err)
	}
	defer rows.Close()
	var out []BackupSession
	for rows.Next() {
		var b BackupSession
		var verified int
		if err := rows.Scan(&b.RoomID, &b.SessionID, &b.FirstMessageIndex, &b.ForwardedCount, &verified, &b.SessionData); err != nil {
			return nil, fmt.Errorf("backup sessions: %w", err)
		}
		b.IsVerified = verified != 0
		out = append(out, b)
	}
	return out, rows.Err()
}

// DeleteBackupSessions drops the sessions of a live version: all, one
// room's or one session, as BackupSessions selects them. The etag rises
// when any row went. It returns the etag and count afterwards.
func (s *Store) DeleteBackupSessions(ctx context.Context, userID string, version int64, roomID, sessionID string) (etag, count int64, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET etag = etag WHERE user_id = $1 AND version = $2 AND deleted = 0`,
			userID, version)
		if err != nil {
			return fmt.Errorf("lock backup version: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		q := `DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2`
		args := []any{userID, version}
		if roomID != "" {
			q += ` AND room_id = $3`
			args = append(args, roomID)
			if sessionID != "" {
				q += ` AND session_id = $4`
				args = append(args, sessionID)
			}
		}
		res, err = tx.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("delete backup sessions: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2`,
				userID, version); err != nil {
				return fmt.Errorf("bump backup etag: %w", err)
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM key_backup_sessions WHERE user_id = $1 AND version = $2`,
			userID, version).Scan(&count); err != nil {
			return fmt.Errorf("backup count: %w", err)
		}
		return tx.QueryRowContext(ctx, `SELECT etag FROM key_backup_versions WHERE user_id = $1 AND version = $2`,
			userID, version).Scan(&etag)
	})
	return etag, count, err
}
