package graph_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/parley-im/parley/graph"
)

func testPaging(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	hub := ns.user("hub")
	friends := make([]string, 250)
	for i := range friends {
		friends[i] = ns.user(fmt.Sprintf("f%03d", i))
	}
	// Two requests per timestamp, so the ID breaks ties.
	parallel(t, len(friends), func(i int) error {
		_, err := s.RequestFriend(ctx, friends[i], hub, "", int64(1000+i/2))
		return err
	})

	var reqs []graph.Request
	var sizes []int
	p := graph.Page{Limit: 100}
	for {
		page, next := must2(s.Requests(ctx, hub, graph.DirIn, p))(t)
		reqs, sizes = append(reqs, page...), append(sizes, len(page))
		if next == "" {
			break
		}
		p.From = next
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Errorf("Requests(limit 100) page sizes = %v, want [100 100 50]", sizes)
	}
	if !slices.IsSortedFunc(reqs, func(a, b graph.Request) int { return cmp.Or(cmp.Compare(a.TS, b.TS), cmp.Compare(a.ID, b.ID)) }) {
		t.Errorf("Requests are not in (ts, id) order")
	}
	var senders []string
	for _, r := range reqs {
		senders = append(senders, r.From)
	}
	if slices.Sort(senders); !slices.Equal(senders, friends) {
		t.Errorf("Requests paged to %d senders, want the 250", len(senders))
	}

	parallel(t, len(reqs), func(i int) error {
		_, err := s.Accept(ctx, reqs[i].ID, hub)
		return err
	})
	var got []string
	sizes = nil
	p = graph.Page{Limit: 100}
	for {
		page, next := must2(s.Friends(ctx, hub, p))(t)
		got, sizes = append(got, page...), append(sizes, len(page))
		if next == "" {
			break
		}
		p.From = next
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) || !slices.Equal(got, friends) {
		t.Errorf("Friends(limit 100) = pages %v of %d IDs, want [100 100 50] of the 250 in order", sizes, len(got))
	}
	if page, next := must2(s.Friends(ctx, hub, graph.Page{}))(t); len(page) != 100 || next == "" {
		t.Errorf("Friends(limit 0) = %d IDs, next %q; want 100 and a token", len(page), next)
	}
	for _, bad := range []string{"not a token!", requestToken(t, s, hub)} {
		if _, _, err := s.Friends(ctx, hub, graph.Page{From: bad}); !errors.Is(err, graph.ErrInvalidPage) {
			t.Errorf("Friends(from %q) = %v, want ErrInvalidPage", bad, err)
		}
	}
}

// requestToken returns a next token of a request list, which a user list must refuse.
func requestToken(t testing.TB, s graph.Store, user string) string {
	ctx := context.Background()
	ns := newNamespace()
	for i := range 2 {
		must(s.RequestFriend(ctx, user, ns.user(fmt.Sprint(i)), "", 1))(t)
	}
	_, next := must2(s.Requests(ctx, user, graph.DirOut, graph.Page{Limit: 1}))(t)
	if next == "" {
		t.Fatal("Requests(limit 1) of 2 gave no next token")
	}
	return next
}

func testSuggestions(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	me := ns.user("me")
	f := ns.users("f1", "f2", "f3")
	ties := map[string][]string{ // candidate -> which of my friends it is friends with
		"c1": f, "c2": f[:2], "c3": f[:2], "c4": f[:1],
		"xb": f, "xbb": f, "xro": f, "xri": f, "xf": f[:1],
	}
	for _, fr := range f {
		befriend(t, s, me, fr)
	}
	befriend(t, s, f[0], f[1]) // my friends are friends of friends too
	for c, frs := range ties {
		for _, fr := range frs {
			befriend(t, s, ns.user(c), fr)
		}
	}
	befriend(t, s, me, ns.user("xf"))
	must(s.Block(ctx, me, ns.user("xb")))(t)
	must(s.Block(ctx, ns.user("xbb"), me))(t)
	must(s.RequestFriend(ctx, me, ns.user("xro"), "", 1))(t)
	must(s.RequestFriend(ctx, ns.user("xri"), me, "", 1))(t)
	must(s.Follow(ctx, ns.user("fan"), f[0]))(t) // a follower is no friend

	all := []graph.Suggestion{{ns.user("c1"), 3}, {ns.user("c2"), 2}, {ns.user("c3"), 2}, {ns.user("c4"), 1}}
	cases := []struct {
		user  string
		limit int
		want  []graph.Suggestion
	}{
		{me, 10, all},
		{me, 0, all},
		{me, 1, all[:1]},
		{me, 2, all[:2]}, // the cut falls between two users with 2 mutual friends
		{me, 3, all[:3]},
		{ns.user("loner"), 10, nil},
	}
	for _, c := range cases {
		got := must(s.Suggestions(ctx, c.user, c.limit))(t)
		if !slices.Equal(got, c.want) {
			t.Errorf("Suggestions(%s, %d) = %+v, want %+v", c.user, c.limit, got, c.want)
		}
	}
}

func testRelationship(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	u := ns.user
	a := u("a")
	befriend(t, s, a, u("b"))
	for _, m := range []string{"m1", "m2"} {
		befriend(t, s, u(m), a)
		befriend(t, s, u(m), u("b"))
	}
	must(s.Follow(ctx, a, u("c")))(t)
	must(s.Follow(ctx, u("d"), a))(t)
	must(s.Block(ctx, a, u("e")))(t)
	must(s.Block(ctx, u("f"), a))(t)
	out := must(s.RequestFriend(ctx, a, u("g"), "", 1))(t).Request.ID
	in := must(s.RequestFriend(ctx, u("h"), a, "", 1))(t).Request.ID

	cases := []struct {
		a, b string
		want graph.Relationship
	}{
		{a, u("b"), graph.Relationship{Friends: true, MutualFriends: 2}},
		{u("b"), a, graph.Relationship{Friends: true, MutualFriends: 2}},
		{a, u("m1"), graph.Relationship{Friends: true, MutualFriends: 1}},
		{a, u("c"), graph.Relationship{Following: true}},
		{u("c"), a, graph.Relationship{FollowedBy: true}},
		{a, u("d"), graph.Relationship{FollowedBy: true}},
		{a, u("e"), graph.Relationship{Blocked: true}},
		{a, u("f"), graph.Relationship{BlockedBy: true}},
		{a, u("g"), graph.Relationship{RequestOut: out}},
		{u("g"), a, graph.Relationship{RequestIn: out}},
		{a, u("h"), graph.Relationship{RequestIn: in}},
		{a, u("stranger"), graph.Relationship{}},
		{u("nobody"), u("stranger"), graph.Relationship{}},
	}
	for _, c := range cases {
		if got := must(s.Relationship(ctx, c.a, c.b))(t); got != c.want {
			t.Errorf("Relationship(%s, %s) = %+v, want %+v", c.a, c.b, got, c.want)
		}
	}
}

func testMutualFriends(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	a, b := ns.user("a"), ns.user("b")
	mutual := ns.users("m1", "m2", "m3")
	for _, m := range mutual {
		befriend(t, s, a, m)
		befriend(t, s, m, b)
	}
	befriend(t, s, a, ns.user("onlya"))
	befriend(t, s, b, ns.user("onlyb"))
	befriend(t, s, a, b)

	var got []string
	var sizes []int
	p := graph.Page{Limit: 2}
	for {
		page, next := must2(s.MutualFriends(ctx, a, b, p))(t)
		got, sizes = append(got, page...), append(sizes, len(page))
		if next == "" {
			break
		}
		p.From = next
	}
	if !slices.Equal(got, mutual) || !slices.Equal(sizes, []int{2, 1}) {
		t.Errorf("MutualFriends(limit 2) = %q in pages %v, want %q in [2 1]", got, sizes, mutual)
	}
	if got, _ := must2(s.MutualFriends(ctx, a, ns.user("stranger"), graph.Page{}))(t); len(got) != 0 {
		t.Errorf("MutualFriends(a, stranger) = %q, want none", got)
	}
}

func testCounts(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	a := ns.user("a")
	befriend(t, s, a, ns.user("b"))
	befriend(t, s, ns.user("c"), a)
	must(s.Follow(ctx, ns.user("d"), a))(t)
	for _, u := range ns.users("e", "f", "g") {
		must(s.Follow(ctx, a, u))(t)
	}
	must(s.Block(ctx, a, ns.user("h")))(t)
	cases := []struct {
		user string
		want graph.Counts
	}{
		{a, graph.Counts{Friends: 2, Followers: 1, Following: 3, Blocked: 1}},
		{ns.user("d"), graph.Counts{Following: 1}},
		{ns.user("nobody"), graph.Counts{}},
	}
	for _, c := range cases {
		if got := must(s.Counts(ctx, c.user))(t); got != c.want {
			t.Errorf("Counts(%s) = %+v, want %+v", c.user, got, c.want)
		}
	}
}

func testDMPolicy(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	a := ns.user("a")
	steps := []struct {
		set     graph.DMPolicy // "" = only read
		wantErr bool
		want    graph.DMPolicy
	}{
		{"", false, graph.DMAnyone},
		{graph.DMFriends, false, graph.DMFriends},
		{"nobody", true, graph.DMFriends},
		{graph.DMAnyone, false, graph.DMAnyone},
	}
	for _, st := range steps {
		if st.set != "" {
			if err := s.SetDMPolicy(ctx, a, st.set); (err != nil) != st.wantErr {
				t.Errorf("SetDMPolicy(%q) = %v, want error %v", st.set, err, st.wantErr)
			}
		}
		if got := must(s.DMPolicy(ctx, a))(t); got != st.want {
			t.Errorf("DMPolicy after setting %q = %q, want %q", st.set, got, st.want)
		}
	}
	// Taking part in the graph does not change the default.
	must(s.Follow(ctx, ns.user("b"), ns.user("c")))(t)
	if got := must(s.DMPolicy(ctx, ns.user("b")))(t); got != graph.DMAnyone {
		t.Errorf("DMPolicy of a follower = %q, want anyone", got)
	}
}

// testConcurrentRequests sends a request each way at the same moment. The
// writes must serialise: one creates the request, the other accepts it, and
// no pending request is left behind.
func testConcurrentRequests(t *testing.T, s graph.Store, ns namespace) {
	ctx := context.Background()
	for i := range 8 {
		a, b := ns.user(fmt.Sprint("a", i)), ns.user(fmt.Sprint("b", i))
		var wg sync.WaitGroup
		outs := make([]graph.RequestOutcome, 2)
		errs := make([]error, 2)
		start := make(chan struct{})
		for j, pair := range [][2]string{{a, b}, {b, a}} {
			wg.Go(func() {
				<-start
				outs[j], errs[j] = s.RequestFriend(ctx, pair[0], pair[1], "", 1)
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if outs[0].Friends == outs[1].Friends || !outs[0].Changed || !outs[1].Changed {
			t.Errorf("pair %d: outcomes %+v, want one new request and one acceptance", i, outs)
		}
		if r := must(s.Relationship(ctx, a, b))(t); r != (graph.Relationship{Friends: true}) {
			t.Errorf("pair %d: Relationship = %+v, want friends only", i, r)
		}
	}
}
