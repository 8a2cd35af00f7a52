package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Content reports and OpenID tokens (tables from schema 030). The rules
// (who may report what, token lifetime) live in packages reports and
// accounts; storage only keeps the rows.

// Report is one content report: of an event, or of a room when EventID is "".
type Report struct {
	ID          string
	RoomID      string
	EventID     string
	EventSender string
	Reporter    string
	Reason      string
	Score       *int64 // nil when the client gave none
	TS          int64  // ms
}

// AddReport stores a report.
func (s *Store) AddReport(ctx context.Context, r Report) error {
	var score sql.NullInt64
	if r.Score != nil {
		score = sql.NullInt64{Int64: *r.Score, Valid: true}
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO event_reports (report_id, room_id, event_id, event_sender, reporter, reason, score, ts)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, r.ID, r.RoomID, r.EventID, r.EventSender, r.Reporter, r.Reason, score, r.TS)
	if err != nil {
		return fmt.Errorf("add report in %s: %w", r.RoomID, err)
	}
	return nil
}

// ReportsSince counts reporter's reports made after sinceTS (ms), for the
// per-user cap.
func (s *Store) ReportsSince(ctx context.Context, reporter string, sinceTS int64) (int, error) {
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM event_reports WHERE reporter = $1 AND ts > $2`, reporter, sinceTS).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count reports of %s: %w", reporter, err)
	}
	return n, nil
}

// Reports lists up to limit reports newest first, strictly before the
// (beforeTS, beforeID) cursor; beforeTS 0 starts at the newest. The
// operator API (issue 16) pages through it.
func (s *Store) Reports(ctx context.Context, beforeTS int64, beforeID string, limit int) ([]Report, error) {
	q := `SELECT report_id, room_id, event_id, event_sender, reporter, reason, score, ts FROM event_reports`
	args := []any{}
	if beforeTS > 0 {
		q += ` WHERE ts < $1 OR (ts = $1 AND report_id < $2)`
		args = append(args, beforeTS, beforeID)
	}
	q += fmt.Sprintf(` ORDER BY ts DESC, report_id DESC LIMIT %d`, max(limit, 0))
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	defer rows.Close()
	var out []Report
	for rows.Next() {
		var r Report
		var score sql.NullInt64
		if err := rows.Scan(&r.ID, &r.RoomID, &r.EventID, &r.EventSender, &r.Reporter, &r.Reason, &score, &r.TS); err != nil {
			return nil, fmt.Errorf("list reports: %w", err)
		}
		if score.Valid {
			v := score.Int64
			r.Score = &v
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// AddOpenIDToken stores an OpenID token's hash for userID until expiresTS (ms).
func (s *Store) AddOpenIDToken(ctx context.Context, tokenHash, userID string, expiresTS int64) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES ($1, $2, $3)`, tokenHash, userID, expiresTS)
	if err != nil {
		return fmt.Errorf("add openid token: %w", err)
	}
	return nil
}

// OpenIDTokenUser returns the user an unexpired OpenID token (by hash)
// was issued to, or ErrNotFound.
func (s *Store) OpenIDTokenUser(ctx context.Context, tokenHash string, nowMs int64) (string, error) {
	var user string
	err := s.read.QueryRowContext(ctx, `SELECT user_id FROM openid_tokens WHERE token_hash = $1 AND expires_ts > $2`, tokenHash, nowMs).Scan(&user)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("openid token: %w", err)
	}
	return user, nil
}

// DeleteExpiredOpenIDTokens deletes tokens expired at nowMs, and those of
// userID when userID is not "" (deactivation), and returns how many.
func (s *Store) DeleteExpiredOpenIDTokens(ctx context.Context, nowMs int64, userID string) (int64, error) {
	res, err := s.write.ExecContext(ctx, `DELETE FROM openid_tokens WHERE expires_ts <= $1 OR user_id = $2`, nowMs, userID)
	if err != nil {
		return 0, fmt.Errorf("delete openid tokens: %w", err)
	}
	return res.RowsAffected()
}

// EventsByTS returns up to limit events of a room ordered by
// (origin_server_ts, pos) away from a cursor: forwards, those at or after
// (ts, afterPos) exclusive of afterPos itself, oldest first; backwards,
// those at or before it, newest first. Pass afterPos 0 forwards and
// 1<<62 backwards to include every event at ts. The index of schema 030
// serves it.
func (s *Store) EventsByTS(ctx context.Context, roomID string, ts, afterPos int64, forwards bool, limit int) ([]Event, error) {
	var rows *sql.Rows
	var err error
	if forwards {
		rows, err = s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM events e WHERE room_id = $1
			AND (origin_ts > $2 OR (origin_ts = $2 AND pos > $3)) ORDER BY origin_ts ASC, pos ASC LIMIT $4`, roomID, ts, afterPos, limit)
	} else {
		rows, err = s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM events e WHERE room_id = $1
			AND (origin_ts < $2 OR (origin_ts = $2 AND pos < $3)) ORDER BY origin_ts DESC, pos DESC LIMIT $4`, roomID, ts, afterPos, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("events by ts in %s: %w", roomID, err)
	}
	return collectEvents(rows, false)
}

// SetDeactivated marks an account deactivated and drops its password
// hash, so neither login nor a token lookup accepts it again. The row
// stays, so the user ID can never be registered again.
func (s *Store) SetDeactivated(ctx context.Context, userID string) error {
	return s.execOne(ctx, `UPDATE users SET deactivated = 1, password_hash = '' WHERE user_id = $1`, userID)
}

// TrimOpenIDTokens keeps, of userID's OpenID tokens, the one just issued
// (keepHash) and the keep-1 newest others (by expiry), so one user cannot
// fill the table within a token's lifetime.
func (s *Store) TrimOpenIDTokens(ctx context.Context, userID, keepHash string, keep int) error {
	_, err := s.write.ExecContext(ctx, `DELETE FROM openid_tokens WHERE user_id = $1 AND token_hash <> $2 AND token_hash NOT IN
		(SELECT token_hash FROM openid_tokens WHERE user_id = $1 AND token_hash <> $2 ORDER BY expires_ts DESC, token_hash DESC LIMIT $3)`,
		userID, keepHash, max(keep-1, 0))
	if err != nil {
		return fmt.Errorf("trim openid tokens of %s: %w", userID, err)
	}
	return nil
}
