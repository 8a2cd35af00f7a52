package moments_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/moments"
	"github.com/parley-im/parley/storage"
)

// starGraph is a hub with n friends, each friend's only friend the hub:
// the graph's cost is the same for both fan-outs, so the benchmark leaves
// it out and measures what the fan-out changes.
type starGraph struct {
	hub     string
	friends []string
}

func (g starGraph) Friends(_ context.Context, user string, max int) ([]string, error) {
	if user == g.hub {
		return g.friends[:min(max, len(g.friends))], nil
	}
	return []string{g.hub}, nil
}

// benchStore opens a fresh store of the engine: "sqlite", or "postgres"
// when PARLEY_TEST_DATABASE_URL is set.
func benchStore(b *testing.B, engine string) *storage.Store {
	var url, path string
	if engine == "postgres" {
		admin := os.Getenv("PARLEY_TEST_DATABASE_URL")
		if admin == "" {
			b.Skip("PARLEY_TEST_DATABASE_URL not set")
		}
		url = hstest.NewPostgresDB(b, admin)
	} else {
		path = filepath.Join(b.TempDir(), "m.db")
	}
	s, err := storage.Open(context.Background(), url, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// benchFriendCounts reads PARLEY_BENCH_MOMENTS_FRIENDS ("200,5000"); the
// default, 50, keeps CI's 100 iterations quick.
func benchFriendCounts(b *testing.B) []int {
	v := os.Getenv("PARLEY_BENCH_MOMENTS_FRIENDS")
	if v == "" {
		return []int{50}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("PARLEY_BENCH_MOMENTS_FRIENDS: bad count %q", f)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkMomentsFanout compares read and write fan-out for a user with n
// friends, each of whom has posted twice: the user's first feed page
// (latency), then a post by the user (latency, rows written, storage).
//
//	PARLEY_BENCH_MOMENTS_FRIENDS=200,5000 go test -run XXX -bench MomentsFanout -benchtime 200x ./moments/
func BenchmarkMomentsFanout(b *testing.B) {
	ctx := context.Background()
	for _, engine := range []string{"sqlite", "postgres"} {
		for _, n := range benchFriendCounts(b) {
			for _, mode := range []string{moments.FanoutRead, moments.FanoutWrite, moments.FanoutHybrid} {
				b.Run(fmt.Sprintf("%s/friends=%d/%s", engine, n, mode), func(b *testing.B) {
					s := benchStore(b, engine)
					g := starGraph{hub: "@hub:b"}
					for i := range n {
						g.friends = append(g.friends, fmt.Sprintf("@f%05d:b", i))
					}
					svc := moments.New(s.Moments(), g, moments.Config{Fanout: mode, PostsPerMinute: 1 << 30, CommentsPerMinute: 1 << 30})
					for round := range 2 {
						for _, f := range g.friends {
							if _, err := svc.Post(ctx, f, moments.Draft{Text: fmt.Sprintf("post %d of %s", round, f)}); err != nil {
								b.Fatal(err)
							}
						}
					}
					b.Run("feed", func(b *testing.B) {
						b.ReportAllocs()
						for range b.N {
							pg, err := svc.Feed(ctx, g.hub, 0, 20)
							if err != nil || len(pg.Posts) != 20 {
								b.Fatalf("feed: %d posts, %v", len(pg.Posts), err)
							}
						}
					})
					b.Run("post", func(b *testing.B) {
						b.ReportAllocs()
						post := func(i int) {
							if _, err := svc.Post(ctx, g.hub, moments.Draft{Text: "a day at the sea #" + strconv.Itoa(i), Images: []string{"mxc://b/abcdefghijkl"}}); err != nil {
								b.Fatal(err)
							}
						}
						for i := range b.N {
							post(i)
						}
						b.StopTimer()
						// Rows written per post, counted over one more post.
						r0, err := s.Moments().Rows(ctx)
						if err != nil {
							b.Fatal(err)
						}
						post(-1)
						r1, err := s.Moments().Rows(ctx)
						if err != nil {
							b.Fatal(err)
						}
						rows := float64(r1 - r0)
						// Storage: the growth over enough posts that page
						// granularity does not matter, untimed.
						k := max(10, min(200, int(20000/rows)))
						if os.Getenv("PARLEY_BENCH_MOMENTS_FRIENDS") == "" {
							k = 10 // CI: quick, the figure is rough
						}
						before, err := s.Moments().Size(ctx)
						if err != nil {
							b.Fatal(err)
						}
						for i := range k {
							post(i)
						}
						after, err := s.Moments().Size(ctx)
						if err != nil {
							b.Fatal(err)
						}
						b.ReportMetric(rows, "rows/post")
						b.ReportMetric(float64(after-before)/float64(k), "bytes/post")
					})
				})
			}
		}
	}
}
