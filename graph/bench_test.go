package graph_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/storage"
)

// BenchmarkGraph measures the reads a client makes most, on a generated
// graph (see newBenchGraph) with a hub user of 5,000 friends:
//
//	go test -run '^$' -bench BenchmarkGraph -benchtime 100x ./graph/
//
// Neo4j (PARLEY_TEST_NEO4J_URL) gets PARLEY_BENCH_GRAPH_EDGES follow and
// friend edges (default 1,000,000), loaded once and reused by later runs.
// SQLite, and PostgreSQL when PARLEY_TEST_DATABASE_URL is set, get a fresh
// graph of PARLEY_BENCH_SQL_EDGES (default 100,000) of the same shape.
func BenchmarkGraph(b *testing.B) {
	b.Run("neo4j", func(b *testing.B) {
		o := neo4jTarget(b)
		g := newBenchGraph(envInt(b, "PARLEY_BENCH_GRAPH_EDGES", 1_000_000))
		loadNeo4j(b, o, g)
		benchReads(b, openNeo4j(b, o), g)
	})
	sqlEdges := envInt(b, "PARLEY_BENCH_SQL_EDGES", 100_000)
	b.Run("sqlite", func(b *testing.B) {
		db, err := storage.Open(context.Background(), "", filepath.Join(b.TempDir(), "graph.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		g := newBenchGraph(sqlEdges)
		loadSQL(b, db, g)
		benchReads(b, graph.NewSQL(db), g)
	})
	b.Run("postgres", func(b *testing.B) {
		admin := os.Getenv("PARLEY_TEST_DATABASE_URL")
		if admin == "" {
			b.Skip("PARLEY_TEST_DATABASE_URL not set")
		}
		db, err := storage.Open(context.Background(), hstest.NewPostgresDB(b, admin), "")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		g := newBenchGraph(sqlEdges)
		loadSQL(b, db, g)
		benchReads(b, graph.NewSQL(db), g)
	})
}

func benchReads(b *testing.B, s graph.Store, g *benchGraph) {
	ctx := context.Background()
	hub := g.hub()
	// The first call also proves the graph is what the benchmark claims.
	if c, err := s.Counts(ctx, hub); err != nil || c.Friends != g.hubFriends {
		b.Fatalf("Counts(hub) = %+v, %v; want %d friends", c, err, g.hubFriends)
	}
	if sg, err := s.Suggestions(ctx, hub, 20); err != nil || len(sg) == 0 {
		b.Fatalf("Suggestions(hub) = %v, %v; want some", sg, err)
	}
	b.Run("suggestions", func(b *testing.B) {
		b.ReportAllocs()
		// The mean hides what a user sees on a shared machine; report the
		// median and the 95th percentile too.
		var took []time.Duration
		for b.Loop() {
			start := time.Now()
			if _, err := s.Suggestions(ctx, hub, 20); err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2])/1e6, "p50-ms")
		b.ReportMetric(float64(took[len(took)*95/100])/1e6, "p95-ms")
	})
	b.Run("relationship", func(b *testing.B) {
		other := g.user(int32(g.hubFriends / 2))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Relationship(ctx, hub, other); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("friends-page", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.Friends(ctx, hub, graph.Page{Limit: 100}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
