package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// AuditEntry is one row of the admin audit log (schema 031).
type AuditEntry struct {
	ID     int64
	TS     int64
	Actor  string // the admin's user ID, or "cli" for the parley command
	Action string // e.g. "user.create", "room.block"
	Target string // the user, room or token acted on
	Detail string // a short JSON object or ""
}

// AddAudit appends e to the audit log and returns its ID. IDs rise by one;
// two writers that pick the same one retry, as PutFilter does.
func (s *Store) AddAudit(ctx context.Context, e AuditEntry) (int64, error) {
	for attempt := 0; ; attempt++ {
		var id int64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM admin_audit`).Scan(&id); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO admin_audit (id, ts, actor, action, target, detail) VALUES ($1,$2,$3,$4,$5,$6)`,
				id, e.TS, e.Actor, e.Action, e.Target, e.Detail)
			return err
		})
		if isUniqueViolation(err) && attempt < 50 {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("add audit row: %w", err)
		}
		return id, nil
	}
}

// AuditLog returns up to limit rows with an ID below before (0 means from
// the newest), newest first; target, if not "", keeps only its rows.
func (s *Store) AuditLog(ctx context.Context, before int64, target string, limit int) ([]AuditEntry, error) {
	q := `SELECT id, ts, actor, action, target, detail FROM admin_audit WHERE ($1 = 0 OR id < $1)`
	args := []any{before}
	if target != "" {
		q += ` AND target = $3`
	}
	args = append(args, limit)
	if target != "" {
		args = append(args, target)
	}
	rows, err := s.read.QueryContext(ctx, q+` ORDER BY id DESC LIMIT $2`, args...)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		if err := rows.Scan(&e.ID, &e.TS, &e.Actor, &e.Action, &e.Target, &e.Detail); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// UserSummary is a row of the admin user list.
type UserSummary struct {
	UserID      string
	DisplayName string
	IsAdmin     bool
	Deactivated bool
	CreatedTS   int64
	LastSeenTS  int64 // newest last_seen_ts of the user's devices; 0 if none
}

// ListUsers pages through every account (deactivated ones too) in user ID
// order, after the ID after ("" from the start); term, if not "", keeps
// those whose ID or display name contains it.
func (s *Store) ListUsers(ctx context.Context, term, after string, limit int) ([]UserSummary, error) {
	like := "%" + strings.ToLower(escapeLike(term)) + "%"
	rows, err := s.read.QueryContext(ctx, `
		SELECT u.user_id, u.displayname, u.is_admin, u.deactivated, u.created_ts,
		       COALESCE((SELECT MAX(d.last_seen_ts) FROM devices d WHERE d.user_id = u.user_id), 0)
		FROM users u
		WHERE u.user_id > $1 AND (LOWER(u.user_id) LIKE $2 ESCAPE '\' OR LOWER(u.displayname) LIKE $2 ESCAPE '\')
		ORDER BY u.user_id
		LIMIT $3`, after, like, limit)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []UserSummary
	for rows.Next() {
		var u UserSummary
		var admin, deact int
		if err := rows.Scan(&u.UserID, &u.DisplayName, &admin, &deact, &u.CreatedTS, &u.LastSeenTS); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		u.IsAdmin, u.Deactivated = admin == 1, deact == 1
		out = append(out, u)
	}
	return out, rows.Err()
}

// SetAdmin makes a user a server admin or not.
func (s *Store) SetAdmin(ctx context.Context, userID string, admin bool) error {
	return s.execOne(ctx, `UPDATE users SET is_admin = $2 WHERE user_id = $1`, userID, boolInt(admin))
}

// RegistrationToken is a row of registration_tokens. UsesAllowed and
// ExpiryTS are 0 when unlimited.
type RegistrationToken struct {
	Token       string
	UsesAllowed int64
	Completed   int64
	ExpiryTS    int64
}

// CreateRegistrationToken inserts t (zero fields mean unlimited), or
// returns ErrConflict when the token exists.
func (s *Store) CreateRegistrationToken(ctx context.Context, t RegistrationToken) error {
	var allowed, expiry any
	if t.UsesAllowed > 0 {
		allowed = t.UsesAllowed
	}
	if t.ExpiryTS > 0 {
		expiry = t.ExpiryTS
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO registration_tokens (token, uses_allowed, expiry_ts) VALUES ($1,$2,$3)`, t.Token, allowed, expiry)
	if isUniqueViolation(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("create registration token: %w", err)
	}
	return nil
}

// RegistrationTokens lists every stored token.
func (s *Store) RegistrationTokens(ctx context.Context) ([]RegistrationToken, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT token, COALESCE(uses_allowed, 0), completed, COALESCE(expiry_ts, 0) FROM registration_tokens ORDER BY token`)
	if err != nil {
		return nil, fmt.Errorf("registration tokens: %w", err)
	}
	defer rows.Close()
	var out []RegistrationToken
	for rows.Next() {
		var t RegistrationToken
		if err := rows.Scan(&t.Token, &t.UsesAllowed, &t.Completed, &t.ExpiryTS); err != nil {
			return nil, fmt.Errorf("registration tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteRegistrationToken removes a token, or returns ErrNotFound.
func (s *Store) DeleteRegistrationToken(ctx context.Context, token string) error {
	return s.execOne(ctx, `DELETE FROM registration_tokens WHERE token = $1`, token)
}

// RoomSummary is a row of the admin room list.
type RoomSummary struct {
	Room
	JoinedMembers int64 // all joined members, local and remote
	Blocked       bool
}

// ListRooms pages through rooms in room ID order after the ID after;
// term, if not "", keeps rooms whose ID or one of whose aliases contains
// it. Room names are not searched: they live in event JSON.
func (s *Store) ListRooms(ctx context.Context, term, after string, limit int) ([]RoomSummary, error) {
	like := "%" + strings.ToLower(escapeLike(term)) + "%"
	rows, err := s.read.QueryContext(ctx, `
		SELECT r.room_id, r.room_version, r.creator, r.published, r.created_ts,
		       (SELECT COUNT(*) FROM memberships m WHERE m.room_id = r.room_id AND m.membership = 'join'),
		       EXISTS (SELECT 1 FROM blocked_rooms b WHERE b.room_id = r.room_id)
		FROM rooms r
		WHERE r.room_id > $1 AND (LOWER(r.room_id) LIKE $2 ESCAPE '\'
		      OR EXISTS (SELECT 1 FROM room_aliases a WHERE a.room_id = r.room_id AND LOWER(a.alias) LIKE $2 ESCAPE '\'))
		ORDER BY r.room_id
		LIMIT $3`, after, like, limit)
	if err != nil {
		return nil, fmt.Errorf("list rooms: %w", err)
	}
	defer rows.Close()
	var out []RoomSummary
	for rows.Next() {
		var r RoomSummary
		var pub int
		var blocked bool
		if err := rows.Scan(&r.RoomID, &r.Version, &r.Creator, &pub, &r.CreatedTS, &r.JoinedMembers, &blocked); err != nil {
			return nil, fmt.Errorf("list rooms: %w", err)
		}
		r.Published, r.Blocked = pub == 1, blocked
		out = append(out, r)
	}
	return out, rows.Err()
}

// SetRoomBlocked blocks a room (recording who did it and when) or lifts
// the block. Both are idempotent.
func (s *Store) SetRoomBlocked(ctx context.Context, roomID string, blocked bool, by string, ts int64) error {
	var err error
	if blocked {
		_, err = s.write.ExecContext(ctx, `INSERT INTO blocked_rooms (room_id, blocked_by, ts) VALUES ($1,$2,$3) ON CONFLICT (room_id) DO NOTHING`, roomID, by, ts)
	} else {
		_, err = s.write.ExecContext(ctx, `DELETE FROM blocked_rooms WHERE room_id = $1`, roomID)
	}
	if err != nil {
		return fmt.Errorf("set room %s blocked: %w", roomID, err)
	}
	return nil
}

// BlockedRooms lists every blocked room's ID.
func (s *Store) BlockedRooms(ctx context.Context) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT room_id FROM blocked_rooms ORDER BY room_id`)
	if err != nil {
		return nil, fmt.Errorf("blocked rooms: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("blocked rooms: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
