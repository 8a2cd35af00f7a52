// Package storagetest runs a test against every store engine: SQLite, and
// PostgreSQL when PARLEY_TEST_DATABASE_URL is set, each in a fresh
// database. Domain packages use it to test their services on real stores.
package storagetest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/storage"
)

// ForEachEngine runs f as a subtest per engine, with a new, migrated store
// that is closed when the subtest ends.
func ForEachEngine(t *testing.T, f func(t *testing.T, s *storage.Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		s, err := storage.Open(context.Background(), "", filepath.Join(t.TempDir(), "p.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		f(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		admin := os.Getenv("PARLEY_TEST_DATABASE_URL")
		if admin == "" {
			t.Skip("PARLEY_TEST_DATABASE_URL not set: no PostgreSQL server to test against")
		}
		s, err := storage.Open(context.Background(), hstest.NewPostgresDB(t, admin), "")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		f(t, s)
	})
}
