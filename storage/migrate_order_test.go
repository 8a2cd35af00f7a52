package storage

import (
	"context"
	"path/filepath"
	"testing"
)

// TestMigrationBelowNewestApplied: a migration whose number is below the
// newest one already applied (branches merge in any order, and a database
// can be made between two merges) is still applied at the next open.
func TestMigrationBelowNewestApplied(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "parley.db")
	s, err := Open(ctx, "", path)
	if err != nil {
		t.Fatal(err)
	}
	// As if 036 had not existed when this database was made.
	for _, q := range []string{`DROP TABLE store_epoch`, `DELETE FROM schema_version WHERE version = 36`} {
		if _, err := s.write.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if s, err = Open(ctx, "", path); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_version WHERE version = 36`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("version 36 rows after reopen = %d (%v), want 1", n, err)
	}
	if _, err := s.Epoch(ctx); err != nil {
		t.Errorf("the migration's table is not there: %v", err)
	}
}
