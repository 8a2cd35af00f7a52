package storage

import (
	"context"
	"database/sql"
	"fmt"
	"os"

	"modernc.org/sqlite"
)

// BackupSQLite writes a consistent copy of the SQLite database at dbPath
// to dest with VACUUM INTO. It runs in one read transaction on its own
// connection, so in WAL mode a running server keeps writing meanwhile; the
// copy holds exactly the transactions committed when it began. dest must
// not exist. It returns the copy's schema version.
//
// VACUUM INTO rather than copying the files: the database file alone lacks
// the commits still in the WAL, and copying both is not atomic.
func BackupSQLite(ctx context.Context, dbPath, dest string) (int, error) {
	if _, err := os.Stat(dbPath); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	db := sql.OpenDB(dsnConnector{drv: &sqlite.Driver{}, dsn: "file:" + dbPath + "?_pragma=busy_timeout(10000)"})
	defer db.Close()
	db.SetMaxOpenConns(1)
	var version int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&version); err != nil {
		return 0, fmt.Errorf("backup: read schema version: %w", err)
	}
	if err := checkSchemaNotNewer(version); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if _, err := db.ExecContext(ctx, `VACUUM INTO $1`, dest); err != nil {
		return 0, fmt.Errorf("backup: vacuum into %s: %w", dest, err)
	}
	// The copy is written without fsync; make it durable before anyone
	// relies on it.
	f, err := os.Open(dest)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("backup: sync %s: %w", dest, err)
	}
	// VACUUM INTO gives the copy the source's journal mode but no -wal
	// file; read the version back to prove it opens.
	check := sql.OpenDB(dsnConnector{drv: &sqlite.Driver{}, dsn: "file:" + dest + "?mode=ro"})
	defer check.Close()
	var got int
	if err := check.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&got); err != nil {
		return 0, fmt.Errorf("backup: check the copy: %w", err)
	}
	return got, nil
}
