package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"
)

// Inspection is what parley doctor reads from a store without changing it.
type Inspection struct {
	Engine        string
	SchemaVersion int       // as recorded; 0 for an empty database
	KnownVersion  int       // the highest this binary has
	DBClock       time.Time // the database server's clock (PostgreSQL); zero for SQLite
	NewestEventTS time.Time // the newest event's origin_server_ts; zero with no events
}

// Inspect connects to the store named by url (or the SQLite file at
// sqlitePath) and reads its schema version and clocks. Unlike Open it
// never migrates, and it does not create a missing SQLite file.
func Inspect(ctx context.Context, url, sqlitePath string) (Inspection, error) {
	var s *Store
	var err error
	if url == "" {
		if _, err := os.Stat(sqlitePath); err != nil {
			return Inspection{}, fmt.Errorf("no database at %s (the server creates it on first start): %w", sqlitePath, err)
		}
		s, err = openSQLite(sqlitePath)
	} else {
		s, err = openPostgres(url)
	}
	if err != nil {
		return Inspection{}, err
	}
	defer s.Close()
	in := Inspection{Engine: s.Engine(), KnownVersion: KnownSchemaVersion()}
	var exists bool
	if s.postgres {
		err = s.read.QueryRowContext(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists)
	} else {
		var n int
		err = s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`).Scan(&n)
		exists = n > 0
	}
	if err != nil {
		return in, fmt.Errorf("inspect: %w", err)
	}
	if !exists {
		return in, nil
	}
	if in.SchemaVersion, err = s.SchemaVersion(ctx); err != nil {
		return in, err
	}
	if s.postgres {
		var ms int64
		if err := s.read.QueryRowContext(ctx, `SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`).Scan(&ms); err != nil {
			return in, fmt.Errorf("inspect: database clock: %w", err)
		}
		in.DBClock = time.UnixMilli(ms)
	}
	var ts sql.NullInt64
	err = s.read.QueryRowContext(ctx, `SELECT MAX(origin_ts) FROM events`).Scan(&ts)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return in, fmt.Errorf("inspect: newest event: %w", err)
	}
	if ts.Valid {
		in.NewestEventTS = time.UnixMilli(ts.Int64)
	}
	return in, nil
}
