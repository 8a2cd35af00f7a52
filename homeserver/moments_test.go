package homeserver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

const moms = "/_parley/client/v1/moments"

// befriend makes a and b friends through the API.
func befriend(t *testing.T, a, b *hstest.Client) {
	t.Helper()
	id := a.MustDo("POST", rel+"/friend_requests", map[string]any{"user_id": b.UserID}).Get("request_id").String()
	b.MustDo("POST", rel+"/friend_requests/"+hstest.Esc(id)+"/accept", map[string]any{})
}

// feedTexts lists the texts of c's moments feed, newest first.
func feedTexts(c *hstest.Client) string {
	return c.MustDo("GET", moms+"?limit=100", nil).Get("chunk.#.text").String()
}

func postMoment(c *hstest.Client, body map[string]any) string {
	return c.MustDo("POST", moms, body).Get("post_id").String()
}

// TestMomentsVisibility: every visibility setting, the author's own view,
// paging, a user's album, and deleting a post.
func TestMomentsVisibility(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		for _, fanout := range []string{"read", "write", "hybrid"} {
			t.Run(st.Name+"/"+fanout, func(t *testing.T) {
				srv := hstest.Start(t, hstest.Options{Store: st.Fresh(t), Mutate: func(c *config.Config) {
					// The hybrid pushes the posts of users with one friend
					// and pulls the others', so a feed merges both.
					c.Moments.Fanout, c.Moments.PushMaxFriends = fanout, 1
				}})
				a := srv.Register(t, "alice")
				b := srv.Register(t, "bob")
				c := srv.Register(t, "carol")
				d := srv.Register(t, "dave")
				e := srv.Register(t, "eve") // nobody's friend
				for _, f := range []*hstest.Client{b, c, d} {
					befriend(t, a, f)
				}
				all := postMoment(a, map[string]any{"text": "all", "images": []string{"mxc://x/1", "mxc://x/2"}})
				only := postMoment(a, map[string]any{"text": "only", "visibility": "only", "users": []string{b.UserID}})
				postMoment(a, map[string]any{"text": "except", "visibility": "except", "users": []string{c.UserID}})

				cases := []struct {
					who  *hstest.Client
					want string
				}{
					{a, `["except","only","all"]`},
					{b, `["except","only","all"]`},
					{c, `["all"]`},
					{d, `["except","all"]`},
					{e, `[]`},
				}
				for _, tc := range cases {
					if got := feedTexts(tc.who); got != tc.want {
						t.Errorf("%s's feed = %s, want %s", tc.who.UserID, got, tc.want)
					}
				}
				// Only the author sees the lists.
				if got := a.MustDo("GET", moms+"/"+hstest.Esc(only), nil).Get("users").String(); got != `["`+b.UserID+`"]` {
					t.Errorf("author's view of users = %s", got)
				}
				if got := b.MustDo("GET", moms+"/"+hstest.Esc(only), nil); got.Get("users").Exists() || got.Get("text").String() != "only" {
					t.Errorf("bob's view of the only post = %s, want it without users", got.Raw)
				}
				for _, who := range []*hstest.Client{c, e} {
					if code, _ := who.Do("GET", moms+"/"+hstest.Esc(only), nil); code != 404 {
						t.Errorf("%s GET only-post = %d, want 404", who.UserID, code)
					}
				}
				if got := d.MustDo("GET", moms+"/users/"+hstest.Esc(a.UserID), nil).Get("chunk.#.text").String(); got != `["except","all"]` {
					t.Errorf("dave's view of alice's album = %s", got)
				}
				if got := e.MustDo("GET", moms+"/users/"+hstest.Esc(a.UserID), nil).Get("chunk.#").Int(); got != 0 {
					t.Errorf("eve's view of alice's album has %d posts, want 0", got)
				}
				if got := d.MustDo("GET", moms, nil).Get("chunk.1.images.#").Int(); got != 2 {
					t.Errorf("images of the all post = %d, want 2", got)
				}

				// Paging with a cursor.
				p1 := b.MustDo("GET", moms+"?limit=2", nil)
				next := p1.Get("next_batch").String()
				if p1.Get("chunk.#.text").String() != `["except","only"]` || next == "" {
					t.Fatalf("page 1 = %s", p1.Raw)
				}
				p2 := b.MustDo("GET", moms+"?limit=2&from="+next, nil)
				if p2.Get("chunk.#.text").String() != `["all"]` || p2.Get("next_batch").Exists() {
					t.Errorf("page 2 = %s, want [all] and no next_batch", p2.Raw)
				}

				// Deleting a post removes it everywhere.
				b.MustDo("POST", moms+"/"+hstest.Esc(all)+"/comments", map[string]any{"text": "nice"})
				a.MustDo("DELETE", moms+"/"+hstest.Esc(all), nil)
				for _, who := range []*hstest.Client{a, b, c, d} {
					if got := feedTexts(who); strings.Contains(got, `"all"`) {
						t.Errorf("%s's feed after delete = %s", who.UserID, got)
					}
					if code, _ := who.Do("GET", moms+"/"+hstest.Esc(all), nil); code != 404 {
						t.Errorf("%s GET deleted post = %d, want 404", who.UserID, code)
					}
				}
				if got := a.MustDo("GET", moms+"/notifications", nil).Get("chunk.#").Int(); got != 0 {
					t.Errorf("notifications about a deleted post = %d, want 0", got)
				}
			})
		}
	}
}

// TestMomentsCommentTriangle: alice is friends with bob and carol, who are
// not friends. Bob and carol never see each other's likes and comments on
// alice's post; alice sees all; replies notify the comment's author.
func TestMomentsCommentTriangle(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			a := srv.Register(t, "alice")
			b := srv.Register(t, "bob")
			c := srv.Register(t, "carol")
			befriend(t, a, b)
			befriend(t, a, c)
			p := moms + "/" + hstest.Esc(postMoment(a, map[string]any{"text": "trip"}))
			bc := b.MustDo("POST", p+"/comments", map[string]any{"text": "from bob"}).Get("comment_id").String()
			cc := c.MustDo("POST", p+"/comments", map[string]any{"text": "from carol"}).Get("comment_id").String()
			b.MustDo("PUT", p+"/like", map[string]any{})
			c.MustDo("PUT", p+"/like", map[string]any{})
			a.MustDo("POST", p+"/comments", map[string]any{"text": "thanks bob", "reply_to": bc})

			cases := []struct {
				who           *hstest.Client
				likes, texts  string
				feedLikeCount int64
			}{
				{a, `["` + b.UserID + `","` + c.UserID + `"]`, `["from bob","from carol","thanks bob"]`, 2},
				{b, `["` + b.UserID + `"]`, `["from bob","thanks bob"]`, 1},
				{c, `["` + c.UserID + `"]`, `["from carol","thanks bob"]`, 1},
			}
			for _, tc := range cases {
				got := tc.who.MustDo("GET", p, nil)
				if l := got.Get("likes.#.sender").String(); l != tc.likes {
					t.Errorf("%s sees likes %s, want %s", tc.who.UserID, l, tc.likes)
				}
				if x := got.Get("comments.#.text").String(); x != tc.texts {
					t.Errorf("%s sees comments %s, want %s", tc.who.UserID, x, tc.texts)
				}
				if n := tc.who.MustDo("GET", moms, nil).Get("chunk.0.likes.#").Int(); n != tc.feedLikeCount {
					t.Errorf("%s's feed shows %d likes, want %d", tc.who.UserID, n, tc.feedLikeCount)
				}
			}
			// Carol cannot answer a comment she cannot see.
			if code, _ := c.Do("POST", p+"/comments", map[string]any{"text": "hi bob", "reply_to": bc}); code != 404 {
				t.Errorf("carol replying to bob's comment = %d, want 404", code)
			}
			// Bob cannot delete carol's comment; carol can.
			if code, _ := b.Do("DELETE", p+"/comments/"+hstest.Esc(cc), nil); code != 403 {
				t.Errorf("bob deleting carol's comment = %d, want 403", code)
			}
			c.MustDo("DELETE", p+"/comments/"+hstest.Esc(cc), nil)
			if got := a.MustDo("GET", p, nil).Get("comments.#.text").String(); got != `["from bob","thanks bob"]` {
				t.Errorf("comments after carol deleted hers = %s", got)
			}

			kinds := a.MustDo("GET", moms+"/notifications", nil).Get("chunk.#.kind").String()
			if kinds != `["like","like","comment"]` { // carol's comment was deleted, with its notification
				t.Errorf("alice's notifications = %s", kinds)
			}
			if got := b.MustDo("GET", moms+"/notifications", nil); got.Get("chunk.#.kind").String() != `["reply"]` || got.Get("chunk.0.sender").String() != a.UserID {
				t.Errorf("bob's notifications = %s, want one reply from alice", got.Raw)
			}
			b.MustDo("DELETE", p+"/like", nil)
			if got := a.MustDo("GET", p, nil).Get("likes.#.sender").String(); got != `["`+c.UserID+`"]` {
				t.Errorf("likes after bob's unlike = %s", got)
			}
		})
	}
}

// TestMomentsUnfriendAndBlock: unfriending or blocking, either way, hides
// the other's posts, past ones too, at once; befriending again shows them.
func TestMomentsUnfriendAndBlock(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		for _, fanout := range []string{"read", "write", "hybrid"} {
			t.Run(st.Name+"/"+fanout, func(t *testing.T) {
				srv := hstest.Start(t, hstest.Options{Store: st.Fresh(t), Mutate: func(c *config.Config) {
					// The hybrid pushes the posts of users with one friend
					// and pulls the others', so a feed merges both.
					c.Moments.Fanout, c.Moments.PushMaxFriends = fanout, 1
				}})
				a := srv.Register(t, "alice")
				b := srv.Register(t, "bob")
				befriend(t, a, b)
				pa := postMoment(a, map[string]any{"text": "a1"})
				postMoment(b, map[string]any{"text": "b1"})
				both := `["b1","a1"]`
				for _, who := range []*hstest.Client{a, b} {
					if got := feedTexts(who); got != both {
						t.Fatalf("%s's feed = %s, want %s", who.UserID, got, both)
					}
				}
				hidden := func(step string) {
					t.Helper()
					if got := feedTexts(a); got != `["a1"]` {
						t.Errorf("%s: alice's feed = %s, want [a1]", step, got)
					}
					if got := feedTexts(b); got != `["b1"]` {
						t.Errorf("%s: bob's feed = %s, want [b1]", step, got)
					}
					if code, _ := b.Do("GET", moms+"/"+hstest.Esc(pa), nil); code != 404 {
						t.Errorf("%s: bob GET alice's post = %d, want 404", step, code)
					}
					if code, _ := b.Do("POST", moms+"/"+hstest.Esc(pa)+"/comments", map[string]any{"text": "x"}); code != 404 {
						t.Errorf("%s: bob comments on alice's post = %d, want 404", step, code)
					}
				}
				steps := []struct {
					name       string
					cut, renew func()
				}{
					{"alice unfriends bob", func() { a.MustDo("DELETE", rel+"/friends/"+hstest.Esc(b.UserID), nil) }, func() { befriend(t, a, b) }},
					{"bob unfriends alice", func() { b.MustDo("DELETE", rel+"/friends/"+hstest.Esc(a.UserID), nil) }, func() { befriend(t, b, a) }},
					{"alice blocks bob", func() { a.MustDo("PUT", rel+"/blocks/"+hstest.Esc(b.UserID), map[string]any{}) },
						func() { a.MustDo("DELETE", rel+"/blocks/"+hstest.Esc(b.UserID), nil); befriend(t, a, b) }},
					{"bob blocks alice", func() { b.MustDo("PUT", rel+"/blocks/"+hstest.Esc(a.UserID), map[string]any{}) },
						func() { b.MustDo("DELETE", rel+"/blocks/"+hstest.Esc(a.UserID), nil); befriend(t, a, b) }},
				}
				for _, s := range steps {
					s.cut()
					hidden(s.name)
					s.renew()
					for _, who := range []*hstest.Client{a, b} {
						if got := feedTexts(who); got != both {
							t.Errorf("after %s and back: %s's feed = %s, want %s", s.name, who.UserID, got, both)
						}
					}
				}
			})
		}
	}
}

// momSec is a sync's io.parley.moments section.
func momSec(s gjson.Result) gjson.Result { return s.Get(`io\.parley\.moments`) }

// TestMomentsRedDot: a friend's post shows as unread on both of bob's
// devices (a long-poll wakes), opening the feed on one clears it on both;
// likes, comments and replies count as notifications; the counts survive
// a restart.
func TestMomentsRedDot(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			o := hstest.Options{Store: st, DataDir: t.TempDir()}
			srv := hstest.Start(t, o)
			name := srv.Cfg.ServerName
			o.Mutate = func(c *config.Config) { c.ServerName = name }
			a := srv.Register(t, "alice")
			b1 := srv.Register(t, "bob")
			b2 := srv.Login(t, "bob")
			befriend(t, a, b1)

			s1, s2 := b1.Sync("", 0), b2.Sync("", 0)
			if got := momSec(s1).Raw; got != `{"unread":0,"notifications":0}` {
				t.Errorf("initial section = %s", got)
			}
			tok1, tok2 := s1.Get("next_batch").String(), s2.Get("next_batch").String()
			// A long-poll wakes on the post.
			done := make(chan gjson.Result, 1)
			go func() { done <- b2.WithT(t).Sync(tok2, 10000) }()
			// The post may come before or after the poll starts: either way
			// the poll must return with the count.
			postMoment(a, map[string]any{"text": "hello"})
			var got gjson.Result
			select {
			case got = <-done:
			case <-time.After(15 * time.Second):
				t.Fatal("bob's long-poll did not wake on alice's post")
			}
			if n := momSec(got).Get("unread").Int(); n != 1 {
				t.Errorf("device 2 unread = %d, want 1 (%s)", n, momSec(got).Raw)
			}
			tok2 = got.Get("next_batch").String()
			s1 = b1.Sync(tok1, 0)
			if n := momSec(s1).Get("unread").Int(); n != 1 {
				t.Errorf("device 1 unread = %d, want 1", n)
			}
			tok1 = s1.Get("next_batch").String()
			// Nothing new: no section.
			if s := b1.Sync(tok1, 0); momSec(s).Exists() {
				t.Errorf("sync with no moments news carries %s", momSec(s).Raw)
			}

			// Opening the feed on device 1 clears the dot on device 2.
			b1.MustDo("GET", moms, nil)
			s2 = b2.Sync(tok2, 5000)
			if got := momSec(s2).Raw; got != `{"unread":0,"notifications":0}` {
				t.Errorf("device 2 after device 1 read the feed = %s", got)
			}
			tok2 = s2.Get("next_batch").String()

			// Bob's own post is no red dot for him; alice's like and
			// comment on it are notifications.
			bp := postMoment(b1, map[string]any{"text": "mine"})
			a.MustDo("PUT", moms+"/"+hstest.Esc(bp)+"/like", map[string]any{})
			a.MustDo("POST", moms+"/"+hstest.Esc(bp)+"/comments", map[string]any{"text": "cool"})
			s2 = b2.Sync(tok2, 5000)
			if got := momSec(s2).Raw; got != `{"unread":0,"notifications":2}` {
				t.Errorf("device 2 after a like and a comment = %s", got)
			}
			tok2 = s2.Get("next_batch").String()

			// Restart in the middle: a new post, then the server stops.
			postMoment(a, map[string]any{"text": "before restart"})
			srv.Stop()
			srv = hstest.Start(t, o)
			b2 = srv.Login(t, "bob")
			b2s := b2.Sync(tok2, 5000) // a token from the earlier run
			if got := momSec(b2s).Raw; got != `{"unread":1,"notifications":2}` {
				t.Errorf("after restart = %s, want 1 unread and 2 notifications", got)
			}
			tok2 = b2s.Get("next_batch").String()
			if n := b2.MustDo("GET", moms+"/notifications", nil).Get("chunk.#").Int(); n != 2 {
				t.Errorf("notifications listed = %d, want 2", n)
			}
			b2.MustDo("POST", moms+"/read", map[string]any{})
			if got := strings.TrimSpace(b2.MustDo("GET", moms+"/counts", nil).Raw); got != `{"unread":0,"notifications":0}` {
				t.Errorf("counts after reading both = %s", got)
			}
			if got := momSec(b2.Sync(tok2, 5000)).Raw; got != `{"unread":0,"notifications":0}` {
				t.Errorf("sync after reading both = %s", got)
			}
		})
	}
}

// TestMomentsBadInput: each bad request gets a Matrix error and changes
// nothing.
func TestMomentsBadInput(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			a := srv.Register(t, "alice")
			b := srv.Register(t, "bob")
			e := srv.Register(t, "eve")
			befriend(t, a, b)
			post := moms + "/" + hstest.Esc(postMoment(a, map[string]any{"text": "keep"}))
			gone := postMoment(a, map[string]any{"text": "gone"})
			a.MustDo("DELETE", moms+"/"+hstest.Esc(gone), nil)
			bc := b.MustDo("POST", post+"/comments", map[string]any{"text": "c"}).Get("comment_id").String()
			tenImages := make([]string, 10)
			for i := range tenImages {
				tenImages[i] = "mxc://x/img"
			}

			cases := []struct {
				name   string
				who    *hstest.Client
				method string
				path   string
				body   any
				code   int
				errc   string
			}{
				{"empty post", a, "POST", moms, map[string]any{}, 400, "M_INVALID_PARAM"},
				{"ten images", a, "POST", moms, map[string]any{"images": tenImages}, 400, "M_INVALID_PARAM"},
				{"http image", a, "POST", moms, map[string]any{"images": []string{"https://x/y"}}, 400, "M_INVALID_PARAM"},
				{"oversize", a, "POST", moms, map[string]any{"text": strings.Repeat("x", 17<<10)}, 413, "M_TOO_LARGE"},
				{"bad visibility", a, "POST", moms, map[string]any{"text": "x", "visibility": "public"}, 400, "M_INVALID_PARAM"},
				{"only without list", a, "POST", moms, map[string]any{"text": "x", "visibility": "only"}, 400, "M_INVALID_PARAM"},
				{"list with friends", a, "POST", moms, map[string]any{"text": "x", "users": []string{b.UserID}}, 400, "M_INVALID_PARAM"},
				{"only a non-friend", a, "POST", moms, map[string]any{"text": "x", "visibility": "only", "users": []string{e.UserID}}, 400, "M_INVALID_PARAM"},
				{"except a non-friend", a, "POST", moms, map[string]any{"text": "x", "visibility": "except", "users": []string{b.UserID, e.UserID}}, 400, "M_INVALID_PARAM"},
				{"bad user ID in list", a, "POST", moms, map[string]any{"text": "x", "visibility": "only", "users": []string{"bob"}}, 400, "M_INVALID_PARAM"},
				{"wrong shape", a, "POST", moms, map[string]any{"text": 5}, 400, "M_BAD_JSON"},
				{"bad post ID", a, "GET", moms + "/" + hstest.Esc("a b"), nil, 400, "M_INVALID_PARAM"},
				{"unknown post", a, "GET", moms + "/" + hstest.Esc("$nope"), nil, 404, "M_NOT_FOUND"},
				{"comment on deleted post", b, "POST", moms + "/" + hstest.Esc(gone) + "/comments", map[string]any{"text": "x"}, 404, "M_NOT_FOUND"},
				{"like deleted post", b, "PUT", moms + "/" + hstest.Esc(gone) + "/like", map[string]any{}, 404, "M_NOT_FOUND"},
				{"empty comment", b, "POST", post + "/comments", map[string]any{"text": " "}, 400, "M_INVALID_PARAM"},
				{"oversize comment", b, "POST", post + "/comments", map[string]any{"text": strings.Repeat("x", 3<<10)}, 413, "M_TOO_LARGE"},
				{"reply to unknown comment", b, "POST", post + "/comments", map[string]any{"text": "x", "reply_to": "$nope"}, 404, "M_NOT_FOUND"},
				{"stranger comments", e, "POST", post + "/comments", map[string]any{"text": "x"}, 404, "M_NOT_FOUND"},
				{"stranger likes", e, "PUT", post + "/like", map[string]any{}, 404, "M_NOT_FOUND"},
				{"friend deletes post", b, "DELETE", post, nil, 403, "M_FORBIDDEN"},
				{"poster deletes bob's comment", a, "DELETE", post + "/comments/" + hstest.Esc(bc), nil, 403, "M_FORBIDDEN"},
				{"comment on another post", b, "DELETE", moms + "/" + hstest.Esc(gone) + "/comments/" + hstest.Esc(bc), nil, 404, "M_NOT_FOUND"},
				{"bad cursor", a, "GET", moms + "?from=abc", nil, 400, "M_INVALID_PARAM"},
				{"bad limit", a, "GET", moms + "?limit=-1", nil, 400, "M_INVALID_PARAM"},
				{"bad album user", a, "GET", moms + "/users/bob", nil, 400, "M_INVALID_PARAM"},
			}
			for _, tc := range cases {
				code, res := tc.who.Do(tc.method, tc.path, tc.body)
				if code != tc.code || res.Get("errcode").String() != tc.errc {
					t.Errorf("%s: got %d %s, want %d %s", tc.name, code, res.Raw, tc.code, tc.errc)
				}
			}
			// Nothing changed.
			if got := feedTexts(b); got != `["keep"]` {
				t.Errorf("bob's feed after bad input = %s, want [keep]", got)
			}
			if got := a.MustDo("GET", post, nil).Get("comments.#.text").String(); got != `["c"]` {
				t.Errorf("comments after bad input = %s, want [c]", got)
			}
			if got := a.MustDo("GET", moms+"/counts", nil).Get("notifications").Int(); got != 1 {
				t.Errorf("alice's notifications after bad input = %d, want 1", got)
			}
		})
	}
}

// TestMomentsRateLimits: posts per minute per author and comments per
// minute per user; a refusal is 429 with retry_after_ms and stores
// nothing, and other users are not limited by it.
func TestMomentsRateLimits(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st, Mutate: func(c *config.Config) {
				c.Moments.PostsPerMinute, c.Moments.CommentsPerMinute = 2, 2
			}})
			a := srv.Register(t, "alice")
			b := srv.Register(t, "bob")
			c := srv.Register(t, "carol")
			befriend(t, a, b)
			befriend(t, a, c)

			p := moms + "/" + hstest.Esc(postMoment(a, map[string]any{"text": "one"}))
			postMoment(a, map[string]any{"text": "two"})
			wantLimited(t, a, moms, map[string]any{"text": "three"})
			if got := feedTexts(b); got != `["two","one"]` {
				t.Errorf("bob's feed after alice's refused post = %s, want [two one]", got)
			}
			postMoment(b, map[string]any{"text": "bob's"}) // another author

			b.MustDo("POST", p+"/comments", map[string]any{"text": "c1"})
			b.MustDo("POST", p+"/comments", map[string]any{"text": "c2"})
			wantLimited(t, b, p+"/comments", map[string]any{"text": "c3"})
			c.MustDo("POST", p+"/comments", map[string]any{"text": "carol's"}) // another user
			got := a.MustDo("GET", moms+"?limit=100", nil).Get(`chunk.#(text=="one").comments.#.text`).String()
			if got != `["c1","c2","carol's"]` {
				t.Errorf("comments after bob's refused one = %s, want [c1 c2 carol's]", got)
			}
		})
	}
}
