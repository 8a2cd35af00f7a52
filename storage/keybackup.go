package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
// had (deleted ones included), which makes it the current one. When the
// user already has maxLive versions not deleted (0: no cap) it fails with
// ErrBackupFull.
func (s *Store) CreateBackupVersion(ctx context.Context, userID, algorithm, authData string, maxLive int64) (int64, error) {
	for attempt := 0; ; attempt++ {
		var v, live int64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1, COALESCE(SUM(1 - deleted), 0)
				FROM key_backup_versions WHERE user_id = $1`, userID).Scan(&v, &live); err != nil {
				return err
			}
			if maxLive > 0 && live >= maxLive {
				return ErrBackupFull
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO key_backup_versions (user_id, version, algorithm, auth_data) VALUES ($1,$2,$3,$4)`,
				userID, v, algorithm, authData)
			return err
		})
		if isUniqueViolation(err) && attempt < 3 {
			continue // a concurrent create took the number (PostgreSQL)
		}
		if errors.Is(err, ErrBackupFull) {
			return 0, err
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
	const cols = `SELECT version, algorithm, auth_data, etag, session_count FROM key_backup_versions WHERE user_id = $1 AND deleted = 0`
	q := cols + ` AND version = $2`
	args := []any{userID, version}
	if version == 0 {
		q = cols + ` ORDER BY version DESC LIMIT 1`
		args = args[:1]
	}
	err := s.read.QueryRowContext(ctx, q, args...).Scan(&v.Version, &v.Algorithm, &v.AuthData, &v.Etag, &v.Count)
	if errors.Is(err, sql.ErrNoRows) {
		return v, ErrNotFound
	}
	if err != nil {
		return v, fmt.Errorf("backup version: %w", err)
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

// DeleteBackupVersion marks a version deleted and drops its sessions and
// auth_data; the small row stays so the number is never given out again.
// ErrNotFound when it does not exist or was already deleted.
func (s *Store) DeleteBackupVersion(ctx context.Context, userID string, version int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET deleted = 1, auth_data = '{}', session_count = 0
			WHERE user_id = $1 AND version = $2 AND deleted = 0`,
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

// backupChunk bounds the rows one statement reads or writes, well under
// both engines' parameter limits (8 parameters a row).
const backupChunk = 200

// PutBackupSessions writes sessions into version, which must be the user's
// current one (ErrNotFound when there is none, *BackupVersionError when it
// is another). For a session already stored, replace(old, new) decides
// whether new takes its place. The etag rises by one when anything
// changed. More than maxSessions sessions in all the user's live versions
// (0: no cap) fails with ErrBackupFull and changes nothing. It returns the etag and count
// after the write.
//
// On SQLite the write connection is shared with the room writer, so the
// transaction is kept short: one query reads the stored copies of a chunk
// of sessions and one statement writes the chunk's winners, instead of
// two statements a session.
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
		var written, added int64
		for start := 0; start < len(sessions); start += backupChunk {
			chunk := sessions[start:min(start+backupChunk, len(sessions))]
			w, a, err := s.putBackupChunk(ctx, tx, userID, version, chunk, replace)
			if err != nil {
				return err
			}
			written += w
			added += a
		}
		if written > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET etag = etag + 1, session_count = session_count + $3
				WHERE user_id = $1 AND version = $2`, userID, version, added); err != nil {
				return fmt.Errorf("bump backup etag: %w", err)
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT etag, session_count FROM key_backup_versions WHERE user_id = $1 AND version = $2`,
			userID, version).Scan(&etag, &count); err != nil {
			return fmt.Errorf("backup count: %w", err)
		}
		if maxSessions > 0 && added > 0 {
			// The cap is per user: older versions still hold their keys.
			var total int64
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(session_count), 0) FROM key_backup_versions
				WHERE user_id = $1 AND deleted = 0`, userID).Scan(&total); err != nil {
				return fmt.Errorf("backup total: %w", err)
			}
			if total > maxSessions {
				return ErrBackupFull
			}
		}
		return nil
	})
	return etag, count, err
}

// putBackupChunk writes one chunk of sessions and reports how many rows it
// wrote and how many of those were new.
func (s *Store) putBackupChunk(ctx context.Context, tx *sql.Tx, userID string, version int64, chunk []BackupSession,
	replace func(old, new *BackupSession) bool) (written, added int64, err error) {
	type key struct{ room, session string }
	// SQLite treats "$N" and "?N" as parameter names and resolves each by a
	// linear search, when preparing and again when binding, which made a
	// chunk's statements quadratic in its size (most of an upload's time);
	// plain "?" in argument order costs nothing. PostgreSQL needs "$N".
	ph := func(n int) string {
		if s.postgres {
			return "$" + strconv.Itoa(n)
		}
		return "?"
	}
	var values strings.Builder
	args := make([]any, 0, 8*len(chunk))
	for i, n := range chunk {
		if i > 0 {
			values.WriteByte(',')
		}
		fmt.Fprintf(&values, "(CAST(%s AS TEXT), CAST(%s AS TEXT))", ph(len(args)+1), ph(len(args)+2))
		args = append(args, n.RoomID, n.SessionID)
	}
	rows, err := tx.QueryContext(ctx, `SELECT k.room_id, k.session_id, k.first_message_index, k.forwarded_count, k.is_verified
		FROM key_backup_sessions k JOIN (VALUES `+values.String()+`) AS b ON k.room_id = b.column1 AND k.session_id = b.column2
		WHERE k.user_id = `+ph(len(args)+1)+` AND k.version = `+ph(len(args)+2), append(args, userID, version)...)
	if err != nil {
		return 0, 0, fmt.Errorf("stored backup sessions: %w", err)
	}
	stored := make(map[key]BackupSession, len(chunk))
	for rows.Next() {
		var b BackupSession
		var verified int
		if err := rows.Scan(&b.RoomID, &b.SessionID, &b.FirstMessageIndex, &b.ForwardedCount, &verified); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("stored backup sessions: %w", err)
		}
		b.IsVerified = verified != 0
		stored[key{b.RoomID, b.SessionID}] = b
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("stored backup sessions: %w", err)
	}

	values.Reset()
	args = args[:0]
	for i := range chunk {
		n := &chunk[i]
		if old, ok := stored[key{n.RoomID, n.SessionID}]; ok {
			if !replace(&old, n) {
				continue
			}
		} else {
			added++
		}
		if written > 0 {
			values.WriteByte(',')
		}
		p := len(args)
		fmt.Fprintf(&values, "(%s,%s,%s,%s,%s,%s,%s,%s)", ph(p+1), ph(p+2), ph(p+3), ph(p+4), ph(p+5), ph(p+6), ph(p+7), ph(p+8))
		args = append(args, userID, version, n.RoomID, n.SessionID, n.FirstMessageIndex, n.ForwardedCount, boolInt(n.IsVerified), n.SessionData)
		written++
	}
	if written == 0 {
		return 0, 0, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO key_backup_sessions (user_id, version, room_id, session_id,
		first_message_index, forwarded_count, is_verified, session_data) VALUES `+values.String()+`
		ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET first_message_index = excluded.first_message_index,
		forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified, session_data = excluded.session_data`, args...); err != nil {
		return 0, 0, fmt.Errorf("put backup sessions: %w", err)
	}
	return written, added, nil
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
			if _, err := tx.ExecContext(ctx, `UPDATE key_backup_versions SET etag = etag + 1, session_count = session_count - $3
				WHERE user_id = $1 AND version = $2`, userID, version, n); err != nil {
				return fmt.Errorf("bump backup etag: %w", err)
			}
		}
		return tx.QueryRowContext(ctx, `SELECT etag, session_count FROM key_backup_versions WHERE user_id = $1 AND version = $2`,
			userID, version).Scan(&etag, &count)
	})
	return etag, count, err
}
