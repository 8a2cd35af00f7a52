package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/storage"
)

// withEnv returns getenv with extra variables set over base.
func withEnv(base func(string) string, kv ...string) func(string) string {
	extra := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		extra[kv[i]] = kv[i+1]
	}
	return func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		return base(k)
	}
}

// doctorLine returns the line of check name in doctor's output.
func doctorLine(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(strings.TrimSpace(l[4:]), name) {
			return l
		}
	}
	return ""
}

// TestDoctor runs parley doctor on both stores against a running server:
// every check passes with a line each; then a missing signing key, a
// public URL nobody answers at and a database from a future schema each
// fail it with a non-zero exit and a FAIL line; with no public URL
// configured that check says it is skipped.
func TestDoctor(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			dataDir := t.TempDir()
			srv := hstest.Start(t, hstest.Options{Store: store, DataDir: dataDir})
			env := withEnv(opsEnv(dataDir, store.URL), "PARLEY_PUBLIC_BASE_URL", srv.URL)

			out, err := cli(t, env, "doctor")
			if err != nil {
				t.Fatalf("doctor on a healthy server = %v\n%s", err, out)
			}
			for _, name := range []string{"config", "store", "disk", "signing key", "clock", "public url"} {
				if l := doctorLine(out, name); !strings.HasPrefix(l, "ok") {
					t.Errorf("doctor line for %s = %q, want ok\n%s", name, l, out)
				}
			}

			out, err = cli(t, withEnv(env, "PARLEY_PUBLIC_BASE_URL", ""), "doctor")
			if l := doctorLine(out, "public url"); err != nil || !strings.HasPrefix(l, "skip") {
				t.Errorf("doctor without public_base_url = %v, line %q, want a skip\n%s", err, l, out)
			}
			out, err = cli(t, withEnv(env, "PARLEY_PUBLIC_BASE_URL", "http://127.0.0.1:2"), "doctor")
			if l := doctorLine(out, "public url"); err == nil || !strings.HasPrefix(l, "FAIL") {
				t.Errorf("doctor with an unreachable public URL = %v, line %q, want a FAIL\n%s", err, l, out)
			}
			srv.Stop()

			key := filepath.Join(dataDir, "signing.key")
			if err := os.Rename(key, key+".away"); err != nil {
				t.Fatal(err)
			}
			out, err = cli(t, env, "doctor")
			if l := doctorLine(out, "signing key"); err == nil || !strings.HasPrefix(l, "FAIL") {
				t.Errorf("doctor without a signing key = %v, line %q, want a FAIL\n%s", err, l, out)
			}
			if err := os.Rename(key+".away", key); err != nil {
				t.Fatal(err)
			}

			stampFuture(t, store.URL, filepath.Join(dataDir, "parley.db"))
			out, err = cli(t, env, "doctor")
			if l := doctorLine(out, "store"); err == nil || !strings.HasPrefix(l, "FAIL") {
				t.Errorf("doctor on a future schema = %v, line %q, want a FAIL\n%s", err, l, out)
			}
		})
	}
}

// stampFuture records a schema version above this binary's, as a newer
// Parley would.
func stampFuture(t *testing.T, url, sqlitePath string) int {
	t.Helper()
	ctx := context.Background()
	s, err := storage.Open(ctx, url, sqlitePath)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	driver, dsn := "sqlite", sqlitePath // both drivers are registered by storage's imports
	if url != "" {
		driver, dsn = "pgx", url
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	future := storage.KnownSchemaVersion() + 1
	if _, err := db.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, future); err != nil {
		t.Fatal(err)
	}
	return future
}

// TestServeRefusesFutureSchema: parley serve on a database a newer Parley
// migrated exits with an error naming both schema versions, on both
// stores, before it listens.
func TestServeRefusesFutureSchema(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			dataDir := t.TempDir()
			future := stampFuture(t, store.URL, filepath.Join(dataDir, "parley.db"))
			out, err := cli(t, withEnv(opsEnv(dataDir, store.URL), "PARLEY_LISTEN", "127.0.0.1:0"), "serve")
			if err == nil {
				t.Fatalf("serve on a future schema succeeded\n%s", out)
			}
			for _, v := range []int{future, storage.KnownSchemaVersion()} {
				if !strings.Contains(err.Error(), strconv.Itoa(v)) {
					t.Errorf("serve error = %q, want it to name schema version %d", err, v)
				}
			}
		})
	}
}
