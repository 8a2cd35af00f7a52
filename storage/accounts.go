package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// User is an account row.
type User struct {
	UserID       string
	PasswordHash string
	IsAdmin      bool
	DisplayName  string
	AvatarURL    string
	CreatedTS    int64
	Deactivated  bool
}

// Device is one logged-in device and its access token (stored hashed).
type Device struct {
	UserID      string
	DeviceID    string
	DisplayName string
	TokenHash   string
	CreatedTS   int64
	LastSeenTS  int64
	LastSeenIP  string
}

// CreateUser inserts u, or returns ErrConflict when the ID is taken.
func (s *Store) CreateUser(ctx context.Context, u User) error {
	_, err := s.write.ExecContext(ctx,
		`INSERT INTO users (user_id, password_hash, is_admin, displayname, avatar_url, created_ts) VALUES ($1,$2,$3,$4,$5,$6)`,
		u.UserID, u.PasswordHash, boolInt(u.IsAdmin), u.DisplayName, u.AvatarURL, u.CreatedTS)
	if isUniqueViolation(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.UserID, err)
	}
	return nil
}

// GetUser loads one account.
func (s *Store) GetUser(ctx context.Context, userID string) (User, error) {
	var u User
	var admin, deact int
	err := s.read.QueryRowContext(ctx,
		`SELECT user_id, password_hash, is_admin, displayname, avatar_url, created_ts, deactivated FROM users WHERE user_id = $1`,
		userID).Scan(&u.UserID, &u.PasswordHash, &admin, &u.DisplayName, &u.AvatarURL, &u.CreatedTS, &deact)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %s: %w", userID, err)
	}
	u.IsAdmin, u.Deactivated = admin == 1, deact == 1
	return u, nil
}

// Profiles returns the display name and avatar of each of userIDs that has
// an account, in one query: a page of friends or followers costs one read,
// not one per entry.
func (s *Store) Profiles(ctx context.Context, userIDs []string) (map[string]Profile, error) {
	out := make(map[string]Profile, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(userIDs))
	for i, u := range userIDs {
		args[i] = u
	}
	rows, err := s.read.QueryContext(ctx, `SELECT user_id, displayname, avatar_url FROM users WHERE user_id IN (`+
		placeholders(1, len(args))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var p Profile
		if err := rows.Scan(&id, &p.DisplayName, &p.AvatarURL); err != nil {
			return nil, fmt.Errorf("profiles: %w", err)
		}
		out[id] = p
	}
	return out, rows.Err()
}

// Profile is a user's public face.
type Profile struct {
	DisplayName string
	AvatarURL   string
}

// SetPassword replaces a user's password hash.
func (s *Store) SetPassword(ctx context.Context, userID, hash string) error {
	return s.execOne(ctx, `UPDATE users SET password_hash = $2 WHERE user_id = $1`, userID, hash)
}

// SetProfile sets the display name and avatar URL stored with the account.
func (s *Store) SetProfile(ctx context.Context, userID, displayName, avatarURL string) error {
	return s.execOne(ctx, `UPDATE users SET displayname = $2, avatar_url = $3 WHERE user_id = $1`, userID, displayName, avatarURL)
}

func (s *Store) execOne(ctx context.Context, q string, args ...any) error {
	res, err := s.write.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// SearchUsers finds local users whose ID or display name contains term, for
// the user directory. Users who share a room with searcher come first.
func (s *Store) SearchUsers(ctx context.Context, searcher, term string, limit int) ([]User, error) {
	like := "%" + strings.ToLower(escapeLike(term)) + "%"
	rows, err := s.read.QueryContext(ctx, `
		SELECT u.user_id, u.displayname, u.avatar_url,
		       EXISTS (SELECT 1 FROM memberships a JOIN memberships b ON a.room_id = b.room_id
		               WHERE a.user_id = $1 AND a.membership = 'join' AND b.user_id = u.user_id AND b.membership = 'join') AS shared
		FROM users u
		WHERE u.deactivated = 0 AND (LOWER(u.user_id) LIKE $2 ESCAPE '\' OR LOWER(u.displayname) LIKE $2 ESCAPE '\')
		ORDER BY shared DESC, u.user_id
		LIMIT $3`, searcher, like, limit)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var shared bool
		if err := rows.Scan(&u.UserID, &u.DisplayName, &u.AvatarURL, &shared); err != nil {
			return nil, fmt.Errorf("search users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// CreateDevice inserts a device with its token hash; an existing device with
// the same ID gets the new token (a re-login with a known device_id).
func (s *Store) CreateDevice(ctx context.Context, d Device) error {
	_, err := s.write.ExecContext(ctx, `
		INSERT INTO devices (user_id, device_id, display_name, token_hash, created_ts, last_seen_ts, last_seen_ip)
		VALUES ($1,$2,$3,$4,$5,$6,$7)
		ON CONFLICT (user_id, device_id) DO UPDATE SET token_hash = excluded.token_hash,
			display_name = CASE WHEN excluded.display_name = '' THEN devices.display_name ELSE excluded.display_name END`,
		d.UserID, d.DeviceID, d.DisplayName, d.TokenHash, d.CreatedTS, d.LastSeenTS, d.LastSeenIP)
	if err != nil {
		return fmt.Errorf("create device %s/%s: %w", d.UserID, d.DeviceID, err)
	}
	return nil
}

const deviceCols = `user_id, device_id, display_name, token_hash, created_ts, last_seen_ts, last_seen_ip`

func scanDevice(row interface{ Scan(...any) error }) (Device, error) {
	var d Device
	err := row.Scan(&d.UserID, &d.DeviceID, &d.DisplayName, &d.TokenHash, &d.CreatedTS, &d.LastSeenTS, &d.LastSeenIP)
	return d, err
}

// DeviceByToken resolves an access token hash.
func (s *Store) DeviceByToken(ctx context.Context, tokenHash string) (Device, error) {
	d, err := scanDevice(s.read.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE token_hash = $1`, tokenHash))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, ErrNotFound
	}
	if err != nil {
		return Device{}, fmt.Errorf("device by token: %w", err)
	}
	return d, nil
}

// GetDevice loads one device.
func (s *Store) GetDevice(ctx context.Context, userID, deviceID string) (Device, error) {
	d, err := scanDevice(s.read.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE user_id = $1 AND device_id = $2`, userID, deviceID))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, ErrNotFound
	}
	if err != nil {
		return Device{}, fmt.Errorf("get device: %w", err)
	}
	return d, nil
}

// Devices lists a user's devices.
func (s *Store) Devices(ctx context.Context, userID string) ([]Device, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE user_id = $1 ORDER BY device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DevicesOf lists the devices of many users at once (for keys/query).
func (s *Store) DevicesOf(ctx context.Context, userIDs []string) ([]Device, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	args := make([]any, len(userIDs))
	for i, u := range userIDs {
		args[i] = u
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE user_id IN (`+placeholders(1, len(args))+`) ORDER BY user_id, device_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// RenameDevice sets a device's display name.
func (s *Store) RenameDevice(ctx context.Context, userID, deviceID, name string) error {
	return s.execOne(ctx, `UPDATE devices SET display_name = $3 WHERE user_id = $1 AND device_id = $2`, userID, deviceID, name)
}

// TouchDevice records when and from where a device was last seen.
func (s *Store) TouchDevice(ctx context.Context, userID, deviceID string, ts int64, ip string) error {
	_, err := s.write.ExecContext(ctx, `UPDATE devices SET last_seen_ts = $3, last_seen_ip = $4 WHERE user_id = $1 AND device_id = $2`, userID, deviceID, ts, ip)
	return err
}

// DeleteDevices removes devices (and with them their tokens and keys). An
// empty deviceIDs removes every device of the user.
func (s *Store) DeleteDevices(ctx context.Context, userID string, deviceIDs []string) error {
	defer s.dropOTKCounts(userID, deviceIDs)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		// A deleted device's queued to-device messages can never be
		// delivered: they go with it.
		for _, table := range []string{"devices", "e2e_device_keys", "e2e_one_time_keys", "to_device"} {
			q := `DELETE FROM ` + table + ` WHERE user_id = $1`
			args := []any{userID}
			if len(deviceIDs) > 0 {
				q += ` AND device_id IN (` + placeholders(2, len(deviceIDs)) + `)`
				for _, d := range deviceIDs {
					args = append(args, d)
				}
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("delete devices: %w", err)
			}
		}
		// A device's pushers go with it (schema 034, storage/push.go).
		return deleteDevicePushersTx(ctx, tx, userID, deviceIDs)
	})
}

// PutFilter stores a filter and returns its ID (a per-user counter).
// Concurrent callers may pick the same number; the loser retries.
func (s *Store) PutFilter(ctx context.Context, userID, body string) (string, error) {
	for attempt := 0; ; attempt++ {
		id, err := s.putFilterOnce(ctx, userID, body)
		if isUniqueViolation(err) && attempt < 50 {
			continue
		}
		return id, err
	}
}

func (s *Store) putFilterOnce(ctx context.Context, userID, body string) (string, error) {
	var id string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM filters WHERE user_id = $1`, userID).Scan(&n); err != nil {
			return err
		}
		id = fmt.Sprint(n)
		_, err := tx.ExecContext(ctx, `INSERT INTO filters (user_id, filter_id, body) VALUES ($1,$2,$3)`, userID, id, body)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("put filter: %w", err)
	}
	return id, nil
}

// GetFilter loads a stored filter.
func (s *Store) GetFilter(ctx context.Context, userID, filterID string) (string, error) {
	var body string
	err := s.read.QueryRowContext(ctx, `SELECT body FROM filters WHERE user_id = $1 AND filter_id = $2`, userID, filterID).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("get filter: %w", err)
	}
	return body, nil
}

// UseRegistrationToken checks token and, when commit is true, counts one use.
// It reports whether the token is valid now.
func (s *Store) UseRegistrationToken(ctx context.Context, token string, nowMs int64, commit bool) (bool, error) {
	var ok bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var allowed, expiry sql.NullInt64
		var completed int64
		err := tx.QueryRowContext(ctx, `SELECT uses_allowed, completed, expiry_ts FROM registration_tokens WHERE token = $1`, token).Scan(&allowed, &completed, &expiry)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if (allowed.Valid && completed >= allowed.Int64) || (expiry.Valid && expiry.Int64 < nowMs) {
			return nil
		}
		ok = true
		if commit {
			_, err = tx.ExecContext(ctx, `UPDATE registration_tokens SET completed = completed + 1 WHERE token = $1`, token)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("registration token: %w", err)
	}
	return ok, nil
}

// AddRegistrationToken creates a token; usesAllowed <= 0 means unlimited.
func (s *Store) AddRegistrationToken(ctx context.Context, token string, usesAllowed int64) error {
	var allowed any
	if usesAllowed > 0 {
		allowed = usesAllowed
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO registration_tokens (token, uses_allowed) VALUES ($1,$2) ON CONFLICT (token) DO NOTHING`, token, allowed)
	if err != nil {
		return fmt.Errorf("add registration token: %w", err)
	}
	return nil
}

// GetPushRules returns a user's stored push-rule customisations ("" if none).
func (s *Store) GetPushRules(ctx context.Context, userID string) (string, error) {
	var body string
	err := s.read.QueryRowContext(ctx, `SELECT rules FROM push_rules WHERE user_id = $1`, userID).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("get push rules: %w", err)
	}
	return body, nil
}

// PutPushRules stores a user's push-rule customisations.
func (s *Store) PutPushRules(ctx context.Context, userID, rules string) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO push_rules (user_id, rules) VALUES ($1,$2) ON CONFLICT (user_id) DO UPDATE SET rules = excluded.rules`, userID, rules)
	if err != nil {
		return fmt.Errorf("put push rules: %w", err)
	}
	return nil
}
