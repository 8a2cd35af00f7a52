package storage

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

// The queries behind the operator actions of issue 16 (package admin):
// deactivation with erasure, reactivation, and the figures the metrics
// show. None of them is on a hot path.

// EventRef names one event.
type EventRef struct {
	Pos     int64
	EventID string
	RoomID  string
}

// SenderMessages returns up to limit of sender's events after pos
// afterPos, in pos order, that a redaction would erase: not state, not
// redactions themselves, not redacted yet. There is no index on sender,
// so it scans the events table; it serves the rare erasing deactivation.
func (s *Store) SenderMessages(ctx context.Context, sender string, afterPos int64, limit int) ([]EventRef, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT pos, event_id, room_id FROM events
		WHERE sender = $1 AND pos > $2 AND state_key IS NULL AND type <> 'm.room.redaction' AND redacted_by = ''
		ORDER BY pos LIMIT $3`, sender, afterPos, limit)
	if err != nil {
		return nil, fmt.Errorf("messages of %s: %w", sender, err)
	}
	defer rows.Close()
	var out []EventRef
	for rows.Next() {
		var e EventRef
		if err := rows.Scan(&e.Pos, &e.EventID, &e.RoomID); err != nil {
			return nil, fmt.Errorf("messages of %s: %w", sender, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Reactivate clears an account's deactivated mark and sets its password
// hash ("" means no password login until a reset).
func (s *Store) Reactivate(ctx context.Context, userID, passwordHash string) error {
	return s.execOne(ctx, `UPDATE users SET deactivated = 0, password_hash = $2 WHERE user_id = $1`, userID, passwordHash)
}

// Ping checks that the database answers a trivial query on the read pool
// and on the write pool, for the readiness check.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.read.DB.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("ping read pool: %w", err)
	}
	if s.write.DB != s.read.DB {
		if err := s.write.DB.PingContext(ctx); err != nil {
			return fmt.Errorf("ping write pool: %w", err)
		}
	}
	return nil
}

// SchemaVersions returns the newest migration applied to the database
// and the newest this binary knows: equal once migrations are done.
func (s *Store) SchemaVersions(ctx context.Context) (applied, known int, err error) {
	if err := s.read.DB.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&applied); err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	files, err := fs.Glob(schemaFS, "schema/*.sql")
	if err != nil {
		return 0, 0, fmt.Errorf("schema files: %w", err)
	}
	for _, name := range files {
		if v, err := strconv.Atoi(strings.SplitN(filepath.Base(name), "_", 2)[0]); err == nil {
			known = max(known, v)
		}
	}
	return applied, known, nil
}

// Pools returns the database pools for their statistics: the readers and
// the writer (the same pool for PostgreSQL, then write is nil).
func (s *Store) Pools() (read, write *sql.DB) {
	if s.write.DB == s.read.DB {
		return s.read.DB, nil
	}
	return s.read.DB, s.write.DB
}

// Counts are the sizes the metrics show.
type Counts struct {
	Users, Devices, Rooms, Events int64
}

// Counts counts users, devices, rooms and events. Each is a full count
// (COUNT(*) scans the table on PostgreSQL), so callers cache the answer
// rather than run it per scrape.
func (s *Store) Counts(ctx context.Context) (Counts, error) {
	var c Counts
	for _, q := range []struct {
		table string
		dst   *int64
	}{{"users", &c.Users}, {"devices", &c.Devices}, {"rooms", &c.Rooms}, {"events", &c.Events}} {
		if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+q.table).Scan(q.dst); err != nil {
			return c, fmt.Errorf("count %s: %w", q.table, err)
		}
	}
	return c, nil
}
