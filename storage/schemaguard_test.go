package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/storage"
)

// TestSchemaGuardRefusesFutureSchema stamps a database with a schema
// version above every migration this binary has, as a newer Parley would
// leave it: Open refuses, and says which version the database is at and
// which this binary knows. A database at the known version opens.
func TestSchemaGuardRefusesFutureSchema(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			url, path := "", filepath.Join(t.TempDir(), "p.db")
			if engine == "postgres" {
				admin := os.Getenv("PARLEY_TEST_DATABASE_URL")
				if admin == "" {
					t.Skip("PARLEY_TEST_DATABASE_URL not set")
				}
				url = hstest.NewPostgresDB(t, admin)
			}
			s, err := storage.Open(ctx, url, path)
			if err != nil {
				t.Fatal(err)
			}
			known := storage.KnownSchemaVersion()
			if v, err := s.SchemaVersion(ctx); err != nil || v != known {
				t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, known)
			}
			s.Close()
			if s, err = storage.Open(ctx, url, path); err != nil {
				t.Fatalf("reopen at the known version: %v", err)
			}
			future := known + 7
			if err := s.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, future); err != nil {
				t.Fatal(err)
			}
			s.Close()

			s, err = storage.Open(ctx, url, path)
			if err == nil {
				s.Close()
				t.Fatal("Open on a future schema succeeded, want a refusal")
			}
			if !errors.Is(err, storage.ErrSchemaTooNew) {
				t.Errorf("Open error = %v, want ErrSchemaTooNew", err)
			}
			for _, v := range []int{future, known} {
				if !strings.Contains(err.Error(), strconv.Itoa(v)) {
					t.Errorf("Open error = %q, want it to name version %d", err, v)
				}
			}
		})
	}
}
