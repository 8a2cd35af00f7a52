package envelopes

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/parley-im/parley/storage"
)

// benchStores opens SQLite, and PostgreSQL (a fresh database) when
// PARLEY_TEST_DATABASE_URL is set.
func benchStores(b testing.TB) map[string]*storage.Store {
	ctx := context.Background()
	out := map[string]*storage.Store{}
	s, err := storage.Open(ctx, "", filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	out["sqlite"] = s
	admin := os.Getenv("PARLEY_TEST_DATABASE_URL")
	if admin == "" {
		return out
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		b.Fatal(err)
	}
	name := fmt.Sprintf("parley_b_%d_%d", time.Now().UnixNano()%1e9, rand.IntN(1e6))
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); db.Close() })
	u := admin[:len(admin)-len(afterSlash(admin))] + name + queryOf(admin)
	p, err := storage.Open(ctx, u, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	out["postgres"] = p
	return out
}

// afterSlash returns the database name and query of a URL: what follows the last '/'.
func afterSlash(u string) string {
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] == '/' {
			return u[i+1:]
		}
	}
	return u
}

func queryOf(u string) string {
	for i := 0; i < len(u); i++ {
		if u[i] == '?' {
			return u[i:]
		}
	}
	return ""
}

// makeEnvelopes funds and creates n envelopes of count shares each.
func makeEnvelopes(b testing.TB, st *storage.Store, prefix string, n, count int) []string {
	ctx := context.Background()
	ids := make([]string, n)
	total := int64(count) * 10
	for i := range ids {
		id := fmt.Sprintf("%s-%d", prefix, i)
		ids[i] = id
		if _, _, err := st.Move(ctx, storage.Movement{Key: "fund:" + id, Kind: "top_up", TS: 1, Result: "x", Postings: []storage.Posting{
			{Account: "user:@s:b", Amount: total}, {Account: "external:admin", Amount: -total}}}); err != nil {
			b.Fatal(err)
		}
		e := storage.RedEnvelope{ID: id, RoomID: "!r:b", Sender: "@s:b", Kind: KindRandom, Total: total, Count: count, Remaining: total,
			RemainingCount: count, CreatedTS: 1, ExpiresTS: 1 << 60, State: "open"}
		if _, _, err := st.CreateEnvelope(ctx, e, storage.Movement{Key: "send:" + id, Kind: "envelope_send", TS: 1, Result: id,
			Postings: []storage.Posting{{Account: "user:@s:b", Amount: -total, Floor: true}, {Account: "escrow:" + id, Amount: total}}}); err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// benchClaimers is how many claimers run at once: 64 by default,
// PARLEY_ENVELOPE_BENCH_CLAIMERS to change it.
func benchClaimers(b *testing.B) int {
	if v := os.Getenv("PARLEY_ENVELOPE_BENCH_CLAIMERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("PARLEY_ENVELOPE_BENCH_CLAIMERS=%q: want a positive integer", v)
		}
		return n
	}
	return 64
}

// benchShards is the number of owner goroutines: DefaultClaimShards, or
// PARLEY_ENVELOPE_BENCH_SHARDS.
func benchShards(b *testing.B) int {
	if v := os.Getenv("PARLEY_ENVELOPE_BENCH_SHARDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("PARLEY_ENVELOPE_BENCH_SHARDS=%q: want a positive integer", v)
		}
		return n
	}
	return DefaultClaimShards
}

// benchModes: "one" commits every claim in a transaction of its own (a
// batch of at most one: the design before grouping), "grouped" commits
// whatever is waiting in one transaction.
var benchModes = []struct {
	name string
	max  int
}{{"one", 1}, {"grouped", maxBatch}}

// runClaims runs b.N durable claims through a grouper from the configured
// number of concurrent claimers, claim k going to envelope ids[k%len(ids)],
// and reports claims/s, the p99 latency and claims per commit.
func runClaims(b *testing.B, st *storage.Store, max int, ids []string) {
	g := newGrouper(st, NewRand(1), time.Now, benchShards(b), max)
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	claimers := benchClaimers(b)
	b.SetParallelism((claimers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := next.Add(1) - 1
			t0 := time.Now()
			res, _, err := g.claim(context.Background(), ids[k%int64(len(ids))], "@u"+strconv.FormatInt(k, 10)+":b")
			lat[k] = time.Since(t0)
			if err == nil {
				err = res.Err
			}
			if err != nil || res.Replay || res.Amount < 1 {
				b.Errorf("claim %d: %+v %v", k, res, err)
			}
		}
	})
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(g.claims.Load())/float64(max64(g.batches.Load(), 1)), "claims/commit")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// BenchmarkClaimHot: durable claims on one envelope (count b.N) from
// concurrent claimers, one commit per claim ("one") or per batch
// ("grouped").
func BenchmarkClaimHot(b *testing.B) {
	for name, st := range benchStores(b) {
		for _, mode := range benchModes {
			b.Run(name+"/"+mode.name, func(b *testing.B) {
				b.ReportAllocs()
				ids := makeEnvelopes(b, st, fmt.Sprintf("hot-%s-%d", mode.name, b.N), 1, b.N)
				runClaims(b, st, mode.max, ids)
			})
		}
	}
}

// BenchmarkClaimSpread: durable claims spread over 1,000 envelopes (b.N
// envelopes when b.N is smaller, so that CI's 100 iterations do not spend
// seconds creating envelopes nobody claims).
func BenchmarkClaimSpread(b *testing.B) {
	for name, st := range benchStores(b) {
		for _, mode := range benchModes {
			b.Run(name+"/"+mode.name, func(b *testing.B) {
				b.ReportAllocs()
				n := min(1000, b.N)
				ids := makeEnvelopes(b, st, fmt.Sprintf("spread-%s-%d", mode.name, b.N), n, b.N/n+1)
				runClaims(b, st, mode.max, ids)
			})
		}
	}
}
