package graph_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/parley-im/parley/graph"
)

// TestConformance runs every case on every backend. A backend is opened once
// per run; each case works in a namespace of its own, so cases stay
// independent on a shared Neo4j too.
func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			for _, c := range conformanceCases {
				t.Run(c.name, func(t *testing.T) { c.run(t, s, newNamespace()) })
			}
		})
	}
}

var conformanceCases = []struct {
	name string
	run  func(t *testing.T, s graph.Store, ns namespace)
}{
	{"follow and unfollow", testFollow},
	{"a request each way makes friends", testMutualRequest},
	{"repeats change nothing", testRepeats},
	{"block effects", testBlockEffects},
	{"blocked users cannot request or follow", testBlockedRefused},
	{"self", testSelf},
	{"answering permissions", testAnswerPermissions},
	{"paging 250 requests and friends", testPaging},
	{"suggestions", testSuggestions},
	{"relationship", testRelationship},
	{"mutual friends", testMutualFriends},
	{"counts", testCounts},
	{"dm policy", testDMPolicy},
	{"concurrent requests each way", testConcurrentRequests},
}

// must and must2 end the test on an error: must(s.Friends(...))(t).
func must[T any](v T, err error) func(t testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// befriend makes a and b friends through a request and its acceptance.
func befriend(t testing.TB, s graph.Store, a, b string) {
	t.Helper()
	ctx := context.Background()
	out := must(s.RequestFriend(ctx, a, b, "", 1))(t)
	if out.Friends {
		return
	}
	must(s.Accept(ctx, out.Request.ID, b))(t)
}

// allUsers reads a whole user list, page by page.
func allUsers(t testing.TB, list func(p graph.Page) ([]string, string, error)) []string {
	t.Helper()
	var out []string
	p := graph.Page{Limit: 1000}
	for {
		ids, next := must2(list(p))(t)
		out = append(out, ids...)
		if next == "" {
			return out
		}
		p.From = next
	}
}

func must2[A, B any](a A, b B, err error) func(t testing.TB) (A, B) {
	return func(t testing.TB) (A, B) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
}

func testFollow(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	a, b := ns.user("a"), ns.user("b")
	steps := []struct {
		name string
		do   func() (bool, error)
		want bool
	}{
		{"follow", func() (bool, error) { return s.Follow(ctx, a, b) }, true},
		{"follow again", func() (bool, error) { return s.Follow(ctx, a, b) }, false},
		{"unfollow", func() (bool, error) { return s.Unfollow(ctx, a, b) }, true},
		{"unfollow again", func() (bool, error) { return s.Unfollow(ctx, a, b) }, false},
		{"follow once more", func() (bool, error) { return s.Follow(ctx, a, b) }, true},
	}
	for _, st := range steps {
		if got, err := st.do(); err != nil || got != st.want {
			t.Fatalf("%s = %v, %v; want %v", st.name, got, err, st.want)
		}
	}
	lists := []struct {
		name string
		list func(graph.Page) ([]string, string, error)
		want []string
	}{
		{"Following(a)", func(p graph.Page) ([]string, string, error) { return s.Following(ctx, a, p) }, []string{b}},
		{"Followers(b)", func(p graph.Page) ([]string, string, error) { return s.Followers(ctx, b, p) }, []string{a}},
		{"Followers(a)", func(p graph.Page) ([]string, string, error) { return s.Followers(ctx, a, p) }, nil},
		{"Friends(a)", func(p graph.Page) ([]string, string, error) { return s.Friends(ctx, a, p) }, nil},
	}
	for _, l := range lists {
		if got := allUsers(t, l.list); !slices.Equal(got, l.want) {
			t.Errorf("%s = %q, want %q", l.name, got, l.want)
		}
	}
	if r := must(s.Relationship(ctx, b, a))(t); !r.FollowedBy || r.Following {
		t.Errorf("Relationship(b, a) = %+v, want followed_by only", r)
	}
}

func testMutualRequest(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	a, b := ns.user("a"), ns.user("b")
	first := must(s.RequestFriend(ctx, a, b, "hello", 10))(t)
	if first.Friends || !first.Changed || first.Request.ID == "" || first.Request.State != "pending" ||
		first.Request.From != a || first.Request.To != b || first.Request.Message != "hello" || first.Request.TS != 10 {
		t.Fatalf("RequestFriend(a, b) = %+v, want a new pending request", first)
	}
	second := must(s.RequestFriend(ctx, b, a, "hi", 20))(t)
	want := graph.RequestOutcome{Request: first.Request, Friends: true, Changed: true}
	want.Request.State = "accepted"
	if second != want {
		t.Errorf("RequestFriend(b, a) = %+v, want %+v", second, want)
	}
	for _, dir := range []graph.Direction{graph.DirIn, graph.DirOut} {
		for _, u := range []string{a, b} {
			if reqs, _ := must2(s.Requests(ctx, u, dir, graph.Page{}))(t); len(reqs) != 0 {
				t.Errorf("Requests(%s, %v) = %+v, want none", u, dir, reqs)
			}
		}
	}
	if got := allUsers(t, func(p graph.Page) ([]string, string, error) { return s.Friends(ctx, b, p) }); !slices.Equal(got, []string{a}) {
		t.Errorf("Friends(b) = %q, want [a]", got)
	}
	if _, err := s.Accept(ctx, first.Request.ID, b); !errors.Is(err, graph.ErrNotFound) {
		t.Errorf("Accept(answered request) = %v, want ErrNotFound", err)
	}
}

func testRepeats(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	a, b := ns.user("a"), ns.user("b")
	first := must(s.RequestFriend(ctx, a, b, "one", 1))(t)
	again := must(s.RequestFriend(ctx, a, b, "two", 2))(t)
	if again.Changed || again.Friends || again.Request != first.Request {
		t.Errorf("repeated RequestFriend = %+v, want unchanged %+v", again, first.Request)
	}
	must(s.Accept(ctx, first.Request.ID, b))(t)
	for _, pair := range [][2]string{{a, b}, {b, a}} {
		if out := must(s.RequestFriend(ctx, pair[0], pair[1], "", 3))(t); out != (graph.RequestOutcome{Friends: true}) {
			t.Errorf("RequestFriend(%s, friend) = %+v, want friends and unchanged", pair[0], out)
		}
	}
	if reqs, _ := must2(s.Requests(ctx, a, graph.DirOut, graph.Page{}))(t); len(reqs) != 0 {
		t.Errorf("Requests(a, out) after requesting a friend = %+v, want none", reqs)
	}
	steps := []struct {
		name string
		do   func() (bool, error)
		want bool
	}{
		{"unfriend", func() (bool, error) { return s.Unfriend(ctx, b, a) }, true},
		{"unfriend again", func() (bool, error) { return s.Unfriend(ctx, a, b) }, false},
		{"block", func() (bool, error) { e, err := s.Block(ctx, a, b); return e.Changed, err }, true},
		{"block again", func() (bool, error) { e, err := s.Block(ctx, a, b); return e.Changed, err }, false},
		{"unblock", func() (bool, error) { return s.Unblock(ctx, a, b) }, true},
		{"unblock again", func() (bool, error) { return s.Unblock(ctx, a, b) }, false},
	}
	for _, st := range steps {
		if got, err := st.do(); err != nil || got != st.want {
			t.Errorf("%s = %v, %v; want %v", st.name, got, err, st.want)
		}
	}
}

func testBlockEffects(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	cases := []struct {
		name string
		// setup builds ties between blocker x and blocked y and returns the
		// effects the block must report.
		setup func(x, y string) graph.BlockEffects
	}{
		{"no ties", func(x, y string) graph.BlockEffects { return graph.BlockEffects{Changed: true} }},
		{"friends", func(x, y string) graph.BlockEffects {
			befriend(t, s, x, y)
			return graph.BlockEffects{Changed: true, Unfriended: true}
		}},
		{"blocker follows", func(x, y string) graph.BlockEffects {
			must(s.Follow(ctx, x, y))(t)
			return graph.BlockEffects{Changed: true, Unfollowed: true}
		}},
		{"blocked follows", func(x, y string) graph.BlockEffects {
			must(s.Follow(ctx, y, x))(t)
			return graph.BlockEffects{Changed: true, LostFollower: true}
		}},
		{"request out", func(x, y string) graph.BlockEffects {
			r := must(s.RequestFriend(ctx, x, y, "m", 5))(t).Request
			r.State = "cancelled"
			return graph.BlockEffects{Changed: true, CancelledOut: []graph.Request{r}}
		}},
		{"request in", func(x, y string) graph.BlockEffects {
			r := must(s.RequestFriend(ctx, y, x, "m", 5))(t).Request
			r.State = "cancelled"
			return graph.BlockEffects{Changed: true, CancelledIn: []graph.Request{r}}
		}},
		{"friends and follows both ways", func(x, y string) graph.BlockEffects {
			befriend(t, s, y, x)
			must(s.Follow(ctx, x, y))(t)
			must(s.Follow(ctx, y, x))(t)
			return graph.BlockEffects{Changed: true, Unfriended: true, Unfollowed: true, LostFollower: true}
		}},
		{"follows and a request", func(x, y string) graph.BlockEffects {
			must(s.Follow(ctx, x, y))(t)
			must(s.Follow(ctx, y, x))(t)
			r := must(s.RequestFriend(ctx, y, x, "", 7))(t).Request
			r.State = "cancelled"
			return graph.BlockEffects{Changed: true, Unfollowed: true, LostFollower: true, CancelledIn: []graph.Request{r}}
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, y := ns.user(fmt.Sprint("x", i)), ns.user(fmt.Sprint("y", i))
			want := c.setup(x, y)
			got := must(s.Block(ctx, x, y))(t)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Block = %+v, want %+v", got, want)
			}
			if r := must(s.Relationship(ctx, x, y))(t); r != (graph.Relationship{Blocked: true}) {
				t.Errorf("Relationship(blocker, blocked) = %+v, want blocked only", r)
			}
			if r := must(s.Relationship(ctx, y, x))(t); r != (graph.Relationship{BlockedBy: true}) {
				t.Errorf("Relationship(blocked, blocker) = %+v, want blocked_by only", r)
			}
			if got := allUsers(t, func(p graph.Page) ([]string, string, error) { return s.Blocked(ctx, x, p) }); !slices.Equal(got, []string{y}) {
				t.Errorf("Blocked(blocker) = %q, want [%s]", got, y)
			}
			for _, u := range []string{x, y} {
				for _, dir := range []graph.Direction{graph.DirIn, graph.DirOut} {
					if reqs, _ := must2(s.Requests(ctx, u, dir, graph.Page{}))(t); len(reqs) != 0 {
						t.Errorf("Requests(%s, %v) after block = %+v, want none", u, dir, reqs)
					}
				}
			}
		})
	}
}

func testBlockedRefused(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	x, y := ns.user("blocker"), ns.user("blocked")
	must(s.Block(ctx, x, y))(t)
	ops := []struct {
		name string
		do   func(from, to string) error
	}{
		{"RequestFriend", func(from, to string) error { _, err := s.RequestFriend(ctx, from, to, "", 1); return err }},
		{"Follow", func(from, to string) error { _, err := s.Follow(ctx, from, to); return err }},
	}
	for _, op := range ops {
		for _, dir := range [][2]string{{x, y}, {y, x}} {
			if err := op.do(dir[0], dir[1]); !errors.Is(err, graph.ErrBlocked) {
				t.Errorf("%s(%s, %s) = %v, want ErrBlocked", op.name, dir[0], dir[1], err)
			}
		}
	}
	if r := must(s.Relationship(ctx, y, x))(t); r != (graph.Relationship{BlockedBy: true}) {
		t.Errorf("refused writes left %+v, want blocked_by only", r)
	}
	must(s.Unblock(ctx, x, y))(t)
	for _, op := range ops {
		if err := op.do(y, x); err != nil {
			t.Errorf("%s after unblock = %v, want nil", op.name, err)
		}
	}
}

func testSelf(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	a := ns.user("a")
	ops := []struct {
		name string
		do   func() error
	}{
		{"Follow", func() error { _, err := s.Follow(ctx, a, a); return err }},
		{"Unfollow", func() error { _, err := s.Unfollow(ctx, a, a); return err }},
		{"RequestFriend", func() error { _, err := s.RequestFriend(ctx, a, a, "", 1); return err }},
		{"Unfriend", func() error { _, err := s.Unfriend(ctx, a, a); return err }},
		{"Block", func() error { _, err := s.Block(ctx, a, a); return err }},
		{"Unblock", func() error { _, err := s.Unblock(ctx, a, a); return err }},
		{"Relationship", func() error { _, err := s.Relationship(ctx, a, a); return err }},
		{"MutualFriends", func() error { _, _, err := s.MutualFriends(ctx, a, a, graph.Page{}); return err }},
	}
	for _, op := range ops {
		if err := op.do(); !errors.Is(err, graph.ErrSelf) {
			t.Errorf("%s(a, a) = %v, want ErrSelf", op.name, err)
		}
	}
}

func testAnswerPermissions(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	answers := map[string]func(id, user string) (graph.Request, error){
		"Accept":  func(id, user string) (graph.Request, error) { return s.Accept(ctx, id, user) },
		"Decline": func(id, user string) (graph.Request, error) { return s.Decline(ctx, id, user) },
		"Cancel":  func(id, user string) (graph.Request, error) { return s.Cancel(ctx, id, user) },
	}
	cases := []struct {
		answer, by string // by: sender, recipient or stranger
		want       string // the request's state after, or "" for ErrNotFound
	}{
		{"Accept", "recipient", "accepted"},
		{"Accept", "sender", ""},
		{"Accept", "stranger", ""},
		{"Decline", "recipient", "declined"},
		{"Decline", "sender", ""},
		{"Decline", "stranger", ""},
		{"Cancel", "sender", "cancelled"},
		{"Cancel", "recipient", ""},
		{"Cancel", "stranger", ""},
	}
	for i, c := range cases {
		from, to := ns.user(fmt.Sprint("from", i)), ns.user(fmt.Sprint("to", i))
		req := must(s.RequestFriend(ctx, from, to, "", int64(i)))(t).Request
		by := map[string]string{"sender": from, "recipient": to, "stranger": ns.user("stranger")}[c.by]
		got, err := answers[c.answer](req.ID, by)
		if c.want == "" {
			if !errors.Is(err, graph.ErrNotFound) {
				t.Errorf("%s by %s = %+v, %v; want ErrNotFound", c.answer, c.by, got, err)
			}
			if r := must(s.Relationship(ctx, from, to))(t); r.RequestOut != req.ID {
				t.Errorf("after a refused %s by %s the request is gone: %+v", c.answer, c.by, r)
			}
			continue
		}
		want := req
		want.State = c.want
		if err != nil || got != want {
			t.Errorf("%s by %s = %+v, %v; want %+v", c.answer, c.by, got, err, want)
		}
		if _, err := answers[c.answer](req.ID, by); !errors.Is(err, graph.ErrNotFound) {
			t.Errorf("%s by %s twice = %v, want ErrNotFound", c.answer, c.by, err)
		}
		if r := must(s.Relationship(ctx, from, to))(t); r.Friends != (c.want == "accepted") || r.RequestOut != "" {
			t.Errorf("after %s by %s: %+v", c.answer, c.by, r)
		}
	}
	for name, answer := range answers {
		if _, err := answer("no-such-request", ns.user("to0")); !errors.Is(err, graph.ErrNotFound) {
			t.Errorf("%s(unknown ID) = %v, want ErrNotFound", name, err)
		}
	}
}

// parallel runs f(0..n-1) on a few goroutines and fails the test on the
// first error. The graph has writers that queue (SQLite) and writers that
// do not (PostgreSQL, Neo4j); a handful of workers keeps both quick.
func parallel(t testing.TB, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 6 {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
