package envelopes

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/parley-im/parley/storage"
)

// benchStores opens SQLite, and PostgreSQL (a fresh database) when
// PARLEY_TEST_DATABASE_URL is set.
func benchStores(b *testing.B) map[string]*storage.Store {
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
func makeEnvelopes(b *testing.B, st *storage.Store, prefix string, n, count int) []string {
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

// claimer runs durable claims the way Service.Claim does, either holding
// a per-envelope lock (single owner) or relying on the conditional UPDATE
// alone and retrying when it loses (cas).
type claimer struct {
	st    *storage.Store
	rnd   *Rand
	lock  bool
	locks sync.Map // envelope ID -> *sync.Mutex
	lat   []time.Duration
	mu    sync.Mutex
	tries atomic.Int64
}

func (c *claimer) claim(ctx context.Context, id, user string) error {
	if c.lock {
		l, _ := c.locks.LoadOrStore(id, new(sync.Mutex))
		l.(*sync.Mutex).Lock()
		defer l.(*sync.Mutex).Unlock()
	}
	t0 := time.Now()
	for {
		c.tries.Add(1)
		_, _, err := c.st.ClaimEnvelope(ctx, id, user, 2, func(e storage.RedEnvelope) error {
			if e.RemainingCount < 1 || e.State != "open" {
				return ErrEmpty
			}
			return nil
		}, func(e storage.RedEnvelope) int64 { return Share(c.rnd, e.Kind, e.Remaining, e.RemainingCount) })
		if errors.Is(err, storage.ErrRetry) {
			continue
		}
		c.mu.Lock()
		c.lat = append(c.lat, time.Since(t0))
		c.mu.Unlock()
		return err
	}
}

func (c *claimer) report(b *testing.B) {
	sort.Slice(c.lat, func(i, j int) bool { return c.lat[i] < c.lat[j] })
	if len(c.lat) > 0 {
		b.ReportMetric(float64(c.lat[len(c.lat)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(float64(c.tries.Load())/float64(b.N), "tries/claim")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
}

// BenchmarkClaimHot: durable claims on one envelope from 64 concurrent
// claimers, each claim a committed transaction.
func BenchmarkClaimHot(b *testing.B) {
	for name, st := range benchStores(b) {
		for _, mode := range []string{"lock", "cas"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				b.ReportAllocs()
				id := makeEnvelopes(b, st, fmt.Sprintf("hot-%s-%d", mode, b.N), 1, b.N)[0]
				c := &claimer{st: st, rnd: NewRand(1), lock: mode == "lock"}
				var next atomic.Int64
				b.SetParallelism(32) // 32 × GOMAXPROCS claimers
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := c.claim(context.Background(), id, fmt.Sprintf("@u%d:b", next.Add(1))); err != nil {
							b.Error(err)
						}
					}
				})
				b.StopTimer()
				c.report(b)
			})
		}
	}
}

// BenchmarkClaimSpread: durable claims spread over 1,000 envelopes.
func BenchmarkClaimSpread(b *testing.B) {
	for name, st := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			const n = 1000
			per := b.N/n + 1
			ids := makeEnvelopes(b, st, fmt.Sprintf("spread-%d", b.N), n, per)
			c := &claimer{st: st, rnd: NewRand(1), lock: true}
			var next atomic.Int64
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := next.Add(1)
					if err := c.claim(context.Background(), ids[k%n], fmt.Sprintf("@u%d:b", k)); err != nil {
						b.Error(err)
					}
				}
			})
			b.StopTimer()
			c.report(b)
		})
	}
}
