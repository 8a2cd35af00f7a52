package homeserver_test

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

const chans = "/_parley/client/v1/channels"

func TestChannelLifecycle(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			o := hstest.Options{Store: st, DataDir: t.TempDir()}
			srv := hstest.Start(t, o)
			name := srv.Cfg.ServerName // kept across the restart (Neo4j tests randomise it)
			o.Mutate = func(c *config.Config) { c.ServerName = name }
			owner := srv.Register(t, "owner")
			fan := srv.Register(t, "fan")
			fan2 := srv.Login(t, "fan")

			ch := owner.MustDo("POST", chans, map[string]any{"name": "News", "avatar_url": "mxc://x/abc", "description": "d"})
			id := ch.Get("channel_id").String()
			if !strings.HasPrefix(id, "~") {
				t.Fatalf("channel_id = %q, want ~...", id)
			}
			base := chans + "/" + hstest.Esc(id)
			if got := fan.MustDo("GET", base, nil).Get("name").String(); got != "News" {
				t.Errorf("name = %q, want News", got)
			}
			owner.MustDo("PUT", base, map[string]any{"name": "News 2"})
			if got := fan.MustDo("GET", base, nil).Get("name").String(); got != "News 2" {
				t.Errorf("name after update = %q, want News 2", got)
			}

			fan.MustDo("POST", base+"/follow", map[string]any{})
			var postIDs []string
			for i, txt := range []string{"one", "two", "three"} {
				p := owner.MustDo("POST", base+"/posts", map[string]any{"text": txt, "images": []string{"mxc://x/img"}, "links": []string{"https://example.org"}})
				if got := p.Get("seq").Int(); got != int64(i+1) {
					t.Errorf("post %d seq = %d, want %d", i, got, i+1)
				}
				postIDs = append(postIDs, p.Get("post_id").String())
			}
			// Both devices of the follower see the same unread count.
			for _, d := range []*hstest.Client{fan, fan2} {
				mine := d.MustDo("GET", chans+"/joined", nil)
				if got := mine.Get("channels.0.unread_count").Int(); got != 3 {
					t.Errorf("unread = %d, want 3 (%s)", got, mine.Raw)
				}
				if got := mine.Get("channels.0.newest_post.text").String(); got != "three" {
					t.Errorf("newest = %q, want three", got)
				}
			}

			// Paging newest first with a cursor.
			page := fan.MustDo("GET", base+"/posts?limit=2", nil)
			if got := page.Get("chunk.#.text").String(); got != `["three","two"]` {
				t.Errorf("page 1 = %s, want [three two]", got)
			}
			next := page.Get("next_batch").String()
			page = fan.MustDo("GET", base+"/posts?limit=2&from="+next, nil)
			if got := page.Get("chunk.#.text").String(); got != `["one"]` || page.Get("next_batch").Exists() {
				t.Errorf("page 2 = %s, want [one] and no next_batch", page.Raw)
			}

			// Edit and retract reach the post list.
			owner.MustDo("PUT", base+"/posts/"+hstest.Esc(postIDs[0]), map[string]any{"text": "one!"})
			owner.MustDo("DELETE", base+"/posts/"+hstest.Esc(postIDs[1]), nil)
			page = fan.MustDo("GET", base+"/posts", nil)
			if got := page.Get("chunk.#.text").String(); got != `["three","one!"]` {
				t.Errorf("texts after edit/retract = %s", got)
			}
			if !page.Get("chunk.1.retracted").Bool() {
				t.Errorf("post two not marked retracted: %s", page.Raw)
			}

			fan.MustDo("POST", base+"/read", map[string]any{})
			if got := fan2.MustDo("GET", chans+"/joined", nil).Get("channels.0.unread_count").Int(); got != 0 {
				t.Errorf("unread after mark read on other device = %d, want 0", got)
			}

			// Restart: everything persists.
			srv.Stop()
			srv = hstest.Start(t, o)
			owner, fan = srv.Login(t, "owner"), srv.Login(t, "fan")
			owner.MustDo("POST", base+"/posts", map[string]any{"text": "four"})
			if got := fan.MustDo("GET", chans+"/joined", nil).Get("channels.0.unread_count").Int(); got != 1 {
				t.Errorf("unread after restart and one post = %d, want 1", got)
			}

			fan.MustDo("POST", base+"/unfollow", map[string]any{})
			if got := fan.MustDo("GET", chans+"/joined", nil).Get("channels.#").Int(); got != 0 {
				t.Errorf("channels after unfollow = %d, want 0", got)
			}

			owner.MustDo("DELETE", base, nil)
			if code, _ := fan.Do("GET", base, nil); code != 404 {
				t.Errorf("GET deleted channel = %d, want 404", code)
			}
		})
	}
}

func TestChannelRefusals(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			owner := srv.Register(t, "owner")
			other := srv.Register(t, "other")
			mallory := srv.Register(t, "mallory")
			id := owner.MustDo("POST", chans, map[string]any{"name": "N"}).Get("channel_id").String()
			base := chans + "/" + hstest.Esc(id)
			post := owner.MustDo("POST", base+"/posts", map[string]any{"text": "hi"}).Get("post_id").String()
			owner.MustDo("PUT", rel+"/blocks/"+hstest.Esc(mallory.UserID), map[string]any{})

			cases := []struct {
				name   string
				who    *hstest.Client
				method string
				path   string
				body   any
				code   int
				errc   string
			}{
				{"no name", owner, "POST", chans, map[string]any{}, 400, "M_INVALID_PARAM"},
				{"bad avatar", owner, "POST", chans, map[string]any{"name": "x", "avatar_url": "http://x"}, 400, "M_INVALID_PARAM"},
				{"bad editor", owner, "POST", chans, map[string]any{"name": "x", "editors": []string{"bob"}}, 400, "M_INVALID_PARAM"},
				{"wrong shape", owner, "POST", chans, "{", 400, "M_BAD_JSON"},
				{"bad id", owner, "GET", chans + "/nope", nil, 400, "M_INVALID_PARAM"},
				{"unknown id", owner, "GET", chans + "/" + hstest.Esc("~zz:x"), nil, 404, "M_NOT_FOUND"},
				{"others update", other, "PUT", base, map[string]any{"name": "y"}, 403, "M_FORBIDDEN"},
				{"others delete", other, "DELETE", base, nil, 403, "M_FORBIDDEN"},
				{"others post", other, "POST", base + "/posts", map[string]any{"text": "x"}, 403, "M_FORBIDDEN"},
				{"others retract", other, "DELETE", base + "/posts/" + hstest.Esc(post), nil, 403, "M_FORBIDDEN"},
				{"empty post", owner, "POST", base + "/posts", map[string]any{}, 400, "M_INVALID_PARAM"},
				{"oversize post", owner, "POST", base + "/posts", map[string]any{"text": strings.Repeat("x", 17<<10)}, 413, "M_TOO_LARGE"},
				{"ten images", owner, "POST", base + "/posts", map[string]any{"images": strings.Split(strings.Repeat("mxc://x/y,", 10)[:99], ",")}, 400, "M_INVALID_PARAM"},
				{"image not mxc", owner, "POST", base + "/posts", map[string]any{"images": []string{"https://x/y"}}, 400, "M_INVALID_PARAM"},
				{"link not http", owner, "POST", base + "/posts", map[string]any{"links": []string{"javascript:x"}}, 400, "M_INVALID_PARAM"},
				{"edit unknown post", owner, "PUT", base + "/posts/" + hstest.Esc("$nope"), map[string]any{"text": "x"}, 404, "M_NOT_FOUND"},
				{"bad cursor", owner, "GET", base + "/posts?from=x", nil, 400, "M_INVALID_PARAM"},
				{"bad limit", owner, "GET", base + "/posts?limit=x", nil, 400, "M_INVALID_PARAM"},
				{"blocked follow", mallory, "POST", base + "/follow", map[string]any{}, 403, "M_FORBIDDEN"},
				{"blocked read", mallory, "GET", base + "/posts", nil, 403, "M_FORBIDDEN"},
				{"read unfollowed", other, "POST", base + "/read", map[string]any{}, 404, "M_NOT_FOUND"},
			}
			for _, tc := range cases {
				code, body := tc.who.Do(tc.method, tc.path, tc.body)
				if code != tc.code || body.Get("errcode").String() != tc.errc {
					t.Errorf("%s: got %d %s, want %d %s", tc.name, code, body.Raw, tc.code, tc.errc)
				}
			}
			// Nothing changed: one post, the original name, no follows.
			if got := owner.MustDo("GET", base+"/posts", nil).Get("chunk.#.text").String(); got != `["hi"]` {
				t.Errorf("posts after refusals = %s, want [hi]", got)
			}
			if got := owner.MustDo("GET", base, nil).Get("name").String(); got != "N" {
				t.Errorf("name after refusals = %q, want N", got)
			}
			if got := mallory.MustDo("GET", chans+"/joined", nil).Get("channels.#").Int(); got != 0 {
				t.Errorf("mallory follows %d channels, want 0", got)
			}
		})
	}
}
