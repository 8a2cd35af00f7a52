package graph_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/storage"
)

// backend opens a graph.Store for one test, or skips the test saying why.
type backend struct {
	name string
	open func(t testing.TB) graph.Store
}

// backends are every Store implementation: SQLite always, PostgreSQL when
// PARLEY_TEST_DATABASE_URL is set, Neo4j when PARLEY_TEST_NEO4J_URL is set.
var backends = []backend{
	{"sqlite", openSQLite},
	{"postgres", openPostgres},
	{"neo4j", openNeo4jForTest},
}

func openSQLite(t testing.TB) graph.Store {
	db, err := storage.Open(context.Background(), "", filepath.Join(t.TempDir(), "graph.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return graph.NewSQL(db)
}

func openPostgres(t testing.TB) graph.Store {
	admin := os.Getenv("PARLEY_TEST_DATABASE_URL")
	if admin == "" {
		t.Skip("PARLEY_TEST_DATABASE_URL not set: no PostgreSQL to test against (eval \"$(scripts/pg-start.sh)\")")
	}
	db, err := storage.Open(context.Background(), hstest.NewPostgresDB(t, admin), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return graph.NewSQL(db)
}

// neo4jTarget returns the test Neo4j's options, or skips the test. The
// database is shared with other packages' tests, so tests never wipe it:
// each works in its own user-ID namespace (see newNamespace).
func neo4jTarget(t testing.TB) graph.Neo4jOptions {
	url := os.Getenv("PARLEY_TEST_NEO4J_URL")
	if url == "" {
		t.Skip("PARLEY_TEST_NEO4J_URL not set: no Neo4j to test against (eval \"$(scripts/neo4j-start.sh)\")")
	}
	return graph.Neo4jOptions{
		URL:      url,
		User:     os.Getenv("PARLEY_TEST_NEO4J_USER"),
		Password: os.Getenv("PARLEY_TEST_NEO4J_PASSWORD"),
		// These tests check what the store answers, not how fast: a Neo4j
		// just started on a busy 2-core CI machine plans each new query
		// slowly (one Follow took over the default 5 s while other
		// packages' tests shared it). The outage tests set their own.
		Timeout: 30 * time.Second,
	}
}

func openNeo4jForTest(t testing.TB) graph.Store {
	return openNeo4j(t, neo4jTarget(t))
}

func openNeo4j(t testing.TB, o graph.Neo4jOptions) *graph.Neo4jStore {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := graph.OpenNeo4j(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// namespace makes user IDs no other test uses: "@<random>-<name>:graph.test".
type namespace string

func newNamespace() namespace {
	return namespace("t" + strings.ToLower(rand.Text()[:10]))
}

func (ns namespace) user(name string) string {
	return fmt.Sprintf("@%s-%s:graph.test", ns, name)
}

func (ns namespace) users(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = ns.user(n)
	}
	return out
}
