package graph_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/storage"
)

// benchGraph is a generated social graph for the benchmarks: a hub user
// with up to 5,000 friends (WeChat's cap), and random friend and follow
// edges, half each, among edges/10 users. The same size always gives the
// same graph, so a loaded graph can be reused.
type benchGraph struct {
	ns         string // user-ID namespace, named for the generator and size
	users      int
	hubFriends int
	friends    [][2]int32 // user indexes; the hub is user 0
	follows    [][2]int32
}

// benchGraphVersion changes whenever newBenchGraph makes a different graph,
// so that a stale graph in a shared Neo4j is not reused.
const benchGraphVersion = 1

func newBenchGraph(edges int) *benchGraph {
	g := &benchGraph{ns: fmt.Sprintf("bench%d-%d", benchGraphVersion, edges)}
	g.hubFriends = min(5000, edges/10)
	g.users = max(edges/10, 2*g.hubFriends+2)
	rng := rand.New(rand.NewPCG(uint64(edges), benchGraphVersion))
	seen := make(map[uint64]bool, edges)
	for i := 1; i <= g.hubFriends; i++ {
		g.friends = append(g.friends, [2]int32{0, int32(i)})
	}
	// Everyone but the hub: the hub keeps exactly hubFriends friends.
	randomPair := func() (int32, int32) {
		return int32(1 + rng.IntN(g.users-1)), int32(1 + rng.IntN(g.users-1))
	}
	for len(g.friends) < edges/2 {
		a, b := randomPair()
		if a > b {
			a, b = b, a
		}
		if k := uint64(a)<<32 | uint64(b); a != b && !seen[k] {
			seen[k] = true
			g.friends = append(g.friends, [2]int32{a, b})
		}
	}
	for len(g.friends)+len(g.follows) < edges {
		a, b := randomPair()
		if k := 1<<63 | uint64(a)<<32 | uint64(b); a != b && !seen[k] {
			seen[k] = true
			g.follows = append(g.follows, [2]int32{a, b})
		}
	}
	return g
}

func (g *benchGraph) user(i int32) string { return fmt.Sprintf("@%s-u%07d:bench.test", g.ns, i) }

func (g *benchGraph) hub() string { return g.user(0) }

// envInt reads a positive integer from the environment, or returns def.
func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// progress reports a loader's advance on stderr at most every two seconds.
type progress struct {
	what  string
	start time.Time
	last  time.Time
}

func (p *progress) report(done, total int) {
	if now := time.Now(); done == total || now.Sub(p.last) > 2*time.Second {
		p.last = now
		fmt.Fprintf(os.Stderr, "graphload: %s %d/%d (%.0fs)\n", p.what, done, total, now.Sub(p.start).Seconds())
	}
}

const loadBatch = 10_000

// loadNeo4j loads g with batched UNWIND ... MERGE, so an interrupted load
// can simply be run again. A marker node records a finished load; with it
// present the graph is reused as it is.
func loadNeo4j(tb testing.TB, o graph.Neo4jOptions, g *benchGraph) {
	ctx := context.Background()
	auth := neo4j.NoAuth()
	if o.User != "" {
		auth = neo4j.BasicAuth(o.User, o.Password, "")
	}
	driver, err := neo4j.NewDriverWithContext(o.URL, auth)
	if err != nil {
		tb.Fatal(err)
	}
	defer driver.Close(ctx)
	run := func(q string, params map[string]any) *neo4j.EagerResult {
		res, err := neo4j.ExecuteQuery(ctx, driver, q, params, neo4j.EagerResultTransformer)
		if err != nil {
			tb.Fatalf("load bench graph: %v", err)
		}
		return res
	}
	if res := run(`MATCH (m:ParleyBenchGraph {ns: $ns, done: true}) RETURN m`, map[string]any{"ns": g.ns}); len(res.Records) > 0 {
		fmt.Fprintf(os.Stderr, "graphload: reusing %s in Neo4j\n", g.ns)
		return
	}
	start := time.Now()
	p := &progress{what: "users", start: start}
	for lo := 0; lo < g.users; lo += loadBatch {
		ids := make([]string, 0, loadBatch)
		for i := lo; i < min(lo+loadBatch, g.users); i++ {
			ids = append(ids, g.user(int32(i)))
		}
		run(`UNWIND $ids AS id MERGE (:User {id: id})`, map[string]any{"ids": ids})
		p.report(lo+len(ids), g.users)
	}
	edges := func(what, merge string, pairs [][2]int32) {
		p := &progress{what: what, start: start}
		for lo := 0; lo < len(pairs); lo += loadBatch {
			batch := pairs[lo:min(lo+loadBatch, len(pairs))]
			rows := make([]any, len(batch))
			for i, e := range batch {
				rows[i] = map[string]any{"a": g.user(e[0]), "b": g.user(e[1])}
			}
			run(`UNWIND $rows AS row
				MATCH (a:User {id: row.a}) MATCH (b:User {id: row.b}) `+merge, map[string]any{"rows": rows})
			p.report(lo+len(batch), len(pairs))
		}
	}
	edges("friendships", `MERGE (a)-[:FRIEND]-(b)`, g.friends)
	edges("follows", `MERGE (a)-[:FOLLOWS]->(b)`, g.follows)
	run(`MERGE (m:ParleyBenchGraph {ns: $ns}) SET m.done = true, m.users = $users, m.friendships = $friends, m.follows = $follows`,
		map[string]any{"ns": g.ns, "users": g.users, "friends": len(g.friends), "follows": len(g.follows)})
	fmt.Fprintf(os.Stderr, "graphload: loaded %s in %.0fs\n", g.ns, time.Since(start).Seconds())
}

// loadSQL loads g into a fresh store, ten thousand rows a transaction.
func loadSQL(tb testing.TB, db *storage.Store, g *benchGraph) {
	ctx := context.Background()
	start := time.Now()
	edges := func(what string, pairs [][2]int32, add func(tx *storage.GraphTx, a, b string) (bool, error)) {
		p := &progress{what: what, start: start}
		for lo := 0; lo < len(pairs); lo += loadBatch {
			batch := pairs[lo:min(lo+loadBatch, len(pairs))]
			err := db.GraphWrite(ctx, func(tx *storage.GraphTx) error {
				for _, e := range batch {
					if _, err := add(tx, g.user(e[0]), g.user(e[1])); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				tb.Fatalf("load bench graph: %v", err)
			}
			p.report(lo+len(batch), len(pairs))
		}
	}
	edges("friendships", g.friends, func(tx *storage.GraphTx, a, b string) (bool, error) { return tx.AddFriendship(ctx, a, b) })
	edges("follows", g.follows, func(tx *storage.GraphTx, a, b string) (bool, error) { return tx.AddFollow(ctx, a, b) })
}
