package homeserver_test

import (
	"context"
	"strings"
	"testing"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// TestChannelLikesAndComments: likes are idempotent and counted in the
// post list; comments list oldest first in pages; the author, the owner and
// an editor may delete a comment, nobody else; the owner turns comments off
// and on; a retracted or missing post refuses likes and comments with 404.
func TestChannelLikesAndComments(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			owner := srv.Register(t, "owner")
			editor := srv.Register(t, "editor")
			fan := srv.Register(t, "fan")
			fan2 := srv.Register(t, "fan2")
			id := owner.MustDo("POST", chans, map[string]any{"name": "N", "editors": []string{editor.UserID}}).Get("channel_id").String()
			base := chans + "/" + hstest.Esc(id)
			post := owner.MustDo("POST", base+"/posts", map[string]any{"text": "hi"}).Get("post_id").String()
			pbase := base + "/posts/" + hstest.Esc(post)

			// Likes: twice is once; the list carries the count and whether
			// I like the post.
			for i, want := range []int64{1, 1} {
				if got := fan.MustDo("PUT", pbase+"/likes", map[string]any{}).Get("like_count").Int(); got != want {
					t.Errorf("like %d: like_count = %d, want %d", i, got, want)
				}
			}
			fan2.MustDo("PUT", pbase+"/likes", map[string]any{})
			if got := fan.MustDo("GET", base+"/posts", nil).Get("chunk.0.like_count").Int(); got != 2 {
				t.Errorf("listed like_count = %d, want 2", got)
			}
			for i, want := range []int64{1, 1} {
				if got := fan2.MustDo("DELETE", pbase+"/likes", nil).Get("like_count").Int(); got != want {
					t.Errorf("unlike %d: like_count = %d, want %d", i, got, want)
				}
			}
			// Each reader's list says whether they like each post; /sync's
			// shared rendering does not.
			for _, c := range []struct {
				who  *hstest.Client
				want string
			}{{fan, "[true]"}, {fan2, "[false]"}, {owner, "[false]"}} {
				if got := c.who.MustDo("GET", base+"/posts", nil).Get("chunk.#.liked_by_me").Raw; got != c.want {
					t.Errorf("%s: liked_by_me = %s, want %s", c.who.UserID, got, c.want)
				}
			}

			// Comments: oldest first, paged.
			var cids []string
			for _, c := range []struct {
				who  *hstest.Client
				text string
			}{{fan, "c1"}, {fan2, "c2"}, {fan, "c3"}, {owner, "c4"}} {
				res := c.who.MustDo("POST", pbase+"/comments", map[string]any{"text": c.text})
				if got := res.Get("author").String(); got != c.who.UserID {
					t.Errorf("comment author = %q, want %q", got, c.who.UserID)
				}
				cids = append(cids, res.Get("comment_id").String())
			}
			page := fan.MustDo("GET", pbase+"/comments?limit=3", nil)
			if got := page.Get("chunk.#.text").String(); got != `["c1","c2","c3"]` {
				t.Errorf("comments page 1 = %s, want [c1 c2 c3]", got)
			}
			page = fan.MustDo("GET", pbase+"/comments?limit=3&from="+page.Get("next_batch").String(), nil)
			if got := page.Get("chunk.#.text").String(); got != `["c4"]` || page.Get("next_batch").Exists() {
				t.Errorf("comments page 2 = %s, want [c4] and no next_batch", page.Raw)
			}

			// Deleting: another follower may not; the author, the owner and an editor may.
			if code, res := fan2.Do("DELETE", pbase+"/comments/"+hstest.Esc(cids[0]), nil); code != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("others delete comment = %d %s, want 403 M_FORBIDDEN", code, res.Raw)
			}
			fan.MustDo("DELETE", pbase+"/comments/"+hstest.Esc(cids[0]), nil)
			owner.MustDo("DELETE", pbase+"/comments/"+hstest.Esc(cids[1]), nil)
			editor.MustDo("DELETE", pbase+"/comments/"+hstest.Esc(cids[2]), nil)
			if code, _ := fan.Do("DELETE", pbase+"/comments/"+hstest.Esc(cids[0]), nil); code != 404 {
				t.Errorf("deleting a deleted comment = %d, want 404", code)
			}
			listed := fan.MustDo("GET", base+"/posts", nil)
			if got := listed.Get("chunk.0.comment_count").Int(); got != 1 {
				t.Errorf("comment_count = %d, want 1 (%s)", got, listed.Raw)
			}
			if got := fan.MustDo("GET", pbase+"/comments", nil).Get("chunk.#.text").String(); got != `["c4"]` {
				t.Errorf("comments after deletes = %s, want [c4]", got)
			}

			// Comments off: refused, listing and likes still work; on again.
			if code, _ := fan.Do("PUT", base, map[string]any{"comments_off": true}); code != 403 {
				t.Errorf("a follower turning comments off = %d, want 403", code)
			}
			owner.MustDo("PUT", base, map[string]any{"comments_off": true})
			if !fan.MustDo("GET", base, nil).Get("comments_off").Bool() {
				t.Errorf("channel does not show comments_off")
			}
			if code, res := fan.Do("POST", pbase+"/comments", map[string]any{"text": "x"}); code != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
				t.Errorf("comment with comments off = %d %s, want 403 M_FORBIDDEN", code, res.Raw)
			}
			fan.MustDo("GET", pbase+"/comments", nil)
			owner.MustDo("DELETE", pbase+"/comments/"+hstest.Esc(cids[3]), nil)
			owner.MustDo("PUT", base, map[string]any{"comments_off": false})
			fan.MustDo("POST", pbase+"/comments", map[string]any{"text": "back"})

			// A retracted or missing post: 404 everywhere.
			owner.MustDo("DELETE", pbase, nil)
			missing := base + "/posts/" + hstest.Esc("$nope")
			for _, p := range []string{pbase, missing} {
				for _, r := range []struct{ method, path string }{
					{"PUT", p + "/likes"}, {"DELETE", p + "/likes"}, {"POST", p + "/comments"}, {"GET", p + "/comments"},
				} {
					code, res := fan.Do(r.method, r.path, map[string]any{"text": "x"})
					if code != 404 || res.Get("errcode").String() != "M_NOT_FOUND" {
						t.Errorf("%s %s = %d %s, want 404 M_NOT_FOUND", r.method, r.path, code, res.Raw)
					}
				}
			}

			// Bad input: 400, nothing changed.
			p2 := owner.MustDo("POST", base+"/posts", map[string]any{"text": "two"}).Get("post_id").String()
			p2base := base + "/posts/" + hstest.Esc(p2)
			for _, c := range []struct {
				name, method, path string
				body               any
				code               int
				errc               string
			}{
				{"empty comment", "POST", p2base + "/comments", map[string]any{"text": " "}, 400, "M_INVALID_PARAM"},
				{"huge comment", "POST", p2base + "/comments", map[string]any{"text": strings.Repeat("x", 2049)}, 413, "M_TOO_LARGE"},
				{"bad json", "POST", p2base + "/comments", "{", 400, "M_BAD_JSON"},
				{"bad cursor", "GET", p2base + "/comments?from=x", nil, 400, "M_INVALID_PARAM"},
				{"zero limit", "GET", p2base + "/comments?limit=0", nil, 400, "M_INVALID_PARAM"},
				{"negative cursor", "GET", p2base + "/comments?from=-1", nil, 400, "M_INVALID_PARAM"},
				{"comment of another post", "DELETE", p2base + "/comments/" + hstest.Esc(cids[3]), nil, 404, "M_NOT_FOUND"},
			} {
				code, res := fan.Do(c.method, c.path, c.body)
				if code != c.code || res.Get("errcode").String() != c.errc {
					t.Errorf("%s: got %d %s, want %d %s", c.name, code, res.Raw, c.code, c.errc)
				}
			}
			if got := fan.MustDo("GET", p2base+"/comments", nil).Get("chunk.#").Int(); got != 0 {
				t.Errorf("comments after refusals = %d, want 0", got)
			}
		})
	}
}

// TestChannelSocialBlocks: a block either way between a user and the owner
// refuses that user's likes, comments and comment listing (not taking back
// a like), and ends the user's follow of the owner's channels (graph edge
// and "my channels").
func TestChannelSocialBlocks(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			owner := srv.Register(t, "owner")
			blocked := srv.Register(t, "blocked") // the owner blocks them
			blocker := srv.Register(t, "blocker") // they block the owner
			id := owner.MustDo("POST", chans, map[string]any{"name": "N"}).Get("channel_id").String()
			base := chans + "/" + hstest.Esc(id)
			pbase := base + "/posts/" + hstest.Esc(owner.MustDo("POST", base+"/posts", map[string]any{"text": "hi"}).Get("post_id").String())
			for _, c := range []*hstest.Client{blocked, blocker} {
				c.MustDo("POST", base+"/follow", map[string]any{})
			}
			blocked.MustDo("PUT", pbase+"/likes", map[string]any{})
			owner.MustDo("PUT", rel+"/blocks/"+hstest.Esc(blocked.UserID), map[string]any{})
			blocker.MustDo("PUT", rel+"/blocks/"+hstest.Esc(owner.UserID), map[string]any{})

			for _, c := range []*hstest.Client{blocked, blocker} {
				for _, r := range []struct{ method, path string }{
					{"PUT", pbase + "/likes"}, {"POST", pbase + "/comments"}, {"GET", pbase + "/comments"},
				} {
					code, res := c.Do(r.method, r.path, map[string]any{"text": "x"})
					if code != 403 || res.Get("errcode").String() != "M_FORBIDDEN" {
						t.Errorf("%s: %s %s = %d %s, want 403 M_FORBIDDEN", c.UserID, r.method, r.path, code, res.Raw)
					}
				}
				if got := c.MustDo("GET", chans+"/joined", nil).Get("channels.#").Int(); got != 0 {
					t.Errorf("%s still follows %d channels after the block", c.UserID, got)
				}
				r, err := srv.Srv.Graph.Relationship(context.Background(), c.UserID, id)
				if err != nil || r.Following {
					t.Errorf("%s: graph follow edge after the block: following=%v err=%v", c.UserID, r.Following, err)
				}
			}
			// Taking back one's own like is allowed across a block.
			if got := blocked.MustDo("DELETE", pbase+"/likes", nil).Get("like_count").Int(); got != 0 {
				t.Errorf("like_count after the blocked user's unlike = %d, want 0", got)
			}
			if got := owner.MustDo("GET", base+"/posts", nil).Get("chunk.0.comment_count").Int(); got != 0 {
				t.Errorf("comment_count after refusals = %d, want 0", got)
			}
		})
	}
}

// TestChannelDeleteDropsFollowEdges: deleting a channel hides it from
// everyone at once; its followers' follow edges in the graph and its rows
// go in the background, and a deletion a restart interrupted is finished
// by the next start.
func TestChannelDeleteDropsFollowEdges(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			o := hstest.Options{Store: st, DataDir: t.TempDir()}
			srv := hstest.Start(t, o)
			name := srv.Cfg.ServerName
			o.Mutate = func(c *config.Config) { c.ServerName = name }
			owner := srv.Register(t, "owner")
			fan := srv.Register(t, "fan")
			ctx := context.Background()
			made := func() (id, base string) {
				id = owner.MustDo("POST", chans, map[string]any{"name": "N"}).Get("channel_id").String()
				base = chans + "/" + hstest.Esc(id)
				fan.MustDo("POST", base+"/follow", map[string]any{})
				p := owner.MustDo("POST", base+"/posts", map[string]any{"text": "hi"}).Get("post_id").String()
				fan.MustDo("POST", base+"/posts/"+hstest.Esc(p)+"/comments", map[string]any{"text": "c"})
				return id, base
			}
			gone := func(srv *hstest.Server, id string) {
				t.Helper()
				hstest.Eventually(t, "the follow edge and the rows of "+id+" gone", func() bool {
					r, err := srv.Srv.Graph.Relationship(ctx, fan.UserID, id)
					left, lerr := srv.Srv.Store.Channels().Deleting(ctx)
					return err == nil && lerr == nil && !r.Following && len(left) == 0
				})
			}

			id, base := made()
			owner.MustDo("DELETE", base, nil)
			if got := fan.MustDo("GET", chans+"/joined", nil).Get("channels.#").Int(); got != 0 {
				t.Errorf("channels right after deletion = %d, want 0", got)
			}
			for _, path := range []string{base, base + "/posts"} {
				if code, _ := fan.Do("GET", path, nil); code != 404 {
					t.Errorf("GET %s right after deletion = %d, want 404", path, code)
				}
			}
			if code, _ := fan.Do("POST", base+"/follow", map[string]any{}); code != 404 {
				t.Errorf("follow right after deletion = %d, want 404", code)
			}
			if code, _ := owner.Do("DELETE", base, nil); code != 404 {
				t.Errorf("second deletion = %d, want 404", code)
			}
			gone(srv, id)

			// A deletion marked but not finished when the server stopped:
			// marked in the store, the running job is not told (it listed
			// the marked channels when it started).
			id2, _ := made()
			if err := srv.Srv.Store.Channels().MarkDeleting(ctx, id2); err != nil {
				t.Fatal(err)
			}
			srv.Stop()
			srv = hstest.Start(t, o)
			gone(srv, id2)
		})
	}
}

// TestChannelCommentLimit: comments per minute per user, over all posts; a
// refusal is 429 with retry_after_ms and stores nothing; another user is
// not limited by it.
func TestChannelCommentLimit(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st, Mutate: func(c *config.Config) { c.Channels.CommentsPerMinute = 2 }})
			owner := srv.Register(t, "owner")
			fan := srv.Register(t, "fan")
			other := srv.Register(t, "other")
			id := owner.MustDo("POST", chans, map[string]any{"name": "N"}).Get("channel_id").String()
			base := chans + "/" + hstest.Esc(id)
			var posts []string
			for _, txt := range []string{"a", "b"} {
				posts = append(posts, base+"/posts/"+hstest.Esc(owner.MustDo("POST", base+"/posts", map[string]any{"text": txt}).Get("post_id").String()))
			}
			fan.MustDo("POST", posts[0]+"/comments", map[string]any{"text": "1"})
			fan.MustDo("POST", posts[1]+"/comments", map[string]any{"text": "2"})
			wantLimited(t, fan, posts[0]+"/comments", map[string]any{"text": "3"})
			if got := fan.MustDo("GET", posts[0]+"/comments", nil).Get("chunk.#").Int(); got != 1 {
				t.Errorf("comments after the refusal = %d, want 1", got)
			}
			other.MustDo("POST", posts[0]+"/comments", map[string]any{"text": "o"})
		})
	}
}
