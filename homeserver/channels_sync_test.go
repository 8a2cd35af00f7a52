package homeserver_test

import (
	"testing"
	"time"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/tidwall/gjson"
)

// chanSec is a sync's io.parley.channels section.
func chanSec(s gjson.Result) gjson.Result { return s.Get(`io\.parley\.channels`) }

// TestChannelSyncSection: a follower's devices get, per followed channel
// with news, the unread count and newest post, and the posts changed since
// their token (an edit and a retraction included); a sync with no channel
// news carries no section; a non-follower never gets one; the section
// survives a restart; an unfollow ends it.
func TestChannelSyncSection(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			o := hstest.Options{Store: st, DataDir: t.TempDir()}
			srv := hstest.Start(t, o)
			name := srv.Cfg.ServerName
			o.Mutate = func(c *config.Config) { c.ServerName = name }
			owner := srv.Register(t, "owner")
			fan := srv.Register(t, "fan")
			fan2 := srv.Login(t, "fan")
			other := srv.Register(t, "other")

			id := owner.MustDo("POST", chans, map[string]any{"name": "News"}).Get("channel_id").String()
			base := chans + "/" + hstest.Esc(id)
			owner.MustDo("POST", base+"/posts", map[string]any{"text": "before"})
			fan.MustDo("POST", base+"/follow", map[string]any{})

			s0 := fan.Sync("", 0)
			if got := chanSec(s0).Get("channels.0.channel.channel_id").String(); got != id {
				t.Fatalf("initial sync channel = %q, want %q (%s)", got, id, chanSec(s0).Raw)
			}
			if got := chanSec(s0).Get("channels.0.unread_count").Int(); got != 0 {
				t.Errorf("initial unread = %d, want 0", got)
			}
			s0b := fan2.Sync("", 0)
			o0 := other.Sync("", 0)
			if chanSec(o0).Exists() {
				t.Errorf("non-follower's initial sync has a channel section: %s", chanSec(o0).Raw)
			}

			p1 := owner.MustDo("POST", base+"/posts", map[string]any{"text": "one"}).Get("post_id").String()
			for _, d := range []struct {
				c     *hstest.Client
				since string
			}{{fan, s0.Get("next_batch").String()}, {fan2, s0b.Get("next_batch").String()}} {
				s := d.c.Sync(d.since, 0)
				sec := chanSec(s)
				if got := sec.Get("channels.0.unread_count").Int(); got != 1 {
					t.Errorf("unread after a post = %d, want 1 (%s)", got, sec.Raw)
				}
				if got := sec.Get("channels.0.newest_post.text").String(); got != "one" {
					t.Errorf("newest = %q, want one", got)
				}
				if got := sec.Get("posts.#.text").String(); got != `["one"]` {
					t.Errorf("changed posts = %s, want [one]", got)
				}
			}
			if s := other.Sync(o0.Get("next_batch").String(), 0); chanSec(s).Exists() {
				t.Errorf("non-follower got channel news: %s", chanSec(s).Raw)
			}

			s1 := fan.Sync(s0.Get("next_batch").String(), 0)
			s2 := fan.Sync(s1.Get("next_batch").String(), 0)
			if chanSec(s2).Exists() {
				t.Errorf("sync with no channel news has a section: %s", chanSec(s2).Raw)
			}

			owner.MustDo("PUT", base+"/posts/"+hstest.Esc(p1), map[string]any{"text": "one!"})
			s3 := fan.Sync(s2.Get("next_batch").String(), 0)
			if got := chanSec(s3).Get("posts.#.text").String(); got != `["one!"]` {
				t.Errorf("edit in sync = %s, want [one!] (%s)", got, chanSec(s3).Raw)
			}
			owner.MustDo("DELETE", base+"/posts/"+hstest.Esc(p1), nil)
			s4 := fan.Sync(s3.Get("next_batch").String(), 0)
			if got := chanSec(s4).Get("posts.0.post_id").String(); got != p1 || !chanSec(s4).Get("posts.0.retracted").Bool() {
				t.Errorf("retraction in sync = %s, want %s retracted", chanSec(s4).Raw, p1)
			}

			// Restart: a token from before it still works.
			tok := s4.Get("next_batch").String()
			srv.Stop()
			srv = hstest.Start(t, o)
			owner, fan = srv.Login(t, "owner"), srv.Login(t, "fan")
			if s := fan.Sync(tok, 0); chanSec(s).Exists() {
				t.Errorf("sync after restart with no news has a section: %s", chanSec(s).Raw)
			}
			owner.MustDo("POST", base+"/posts", map[string]any{"text": "two"})
			s5 := fan.Sync(tok, 0)
			if got := chanSec(s5).Get("posts.#.text").String(); got != `["two"]` {
				t.Errorf("post after restart = %s, want [two]", chanSec(s5).Raw)
			}

			// The feed keeps read markers in memory: a post after a mark-read
			// counts from the new marker.
			fan.MustDo("POST", base+"/read", map[string]any{})
			owner.MustDo("POST", base+"/posts", map[string]any{"text": "after read"})
			s5 = fan.Sync(s5.Get("next_batch").String(), 0)
			if got := chanSec(s5).Get("channels.0.unread_count").Int(); got != 1 {
				t.Errorf("unread after a mark-read and one post = %d, want 1 (%s)", got, chanSec(s5).Raw)
			}

			fan.MustDo("POST", base+"/unfollow", map[string]any{})
			s6 := fan.Sync(s5.Get("next_batch").String(), 0)
			owner.MustDo("POST", base+"/posts", map[string]any{"text": "three"})
			if s := fan.Sync(s6.Get("next_batch").String(), 0); chanSec(s).Exists() {
				t.Errorf("sync after unfollow has a section: %s", chanSec(s).Raw)
			}
		})
	}
}

// TestChannelPostWakesFollowers: a follower's long-poll returns with the
// post once it lands; a non-follower's long-poll is not woken by it.
func TestChannelPostWakesFollowers(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			owner := srv.Register(t, "owner")
			fan := srv.Register(t, "fan")
			other := srv.Register(t, "other")
			id := owner.MustDo("POST", chans, map[string]any{"name": "News"}).Get("channel_id").String()
			base := chans + "/" + hstest.Esc(id)
			fan.MustDo("POST", base+"/follow", map[string]any{})
			fs := fan.Sync("", 0).Get("next_batch").String()
			os := other.Sync("", 0).Get("next_batch").String()

			fanDone := make(chan gjson.Result, 1)
			otherDone := make(chan gjson.Result, 1)
			go func() { fanDone <- fan.Sync(fs, 30_000) }()
			go func() { otherDone <- other.Sync(os, 3_000) }()
			hstest.Eventually(t, "the follower long-polling", func() bool { return srv.Srv.Channels.Waiting(id) == 1 })
			owner.MustDo("POST", base+"/posts", map[string]any{"text": "hi"})
			start := time.Now()
			s := <-fanDone
			if got := chanSec(s).Get("posts.#.text").String(); got != `["hi"]` {
				t.Errorf("woken follower's sync = %s, want [hi]", chanSec(s).Raw)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("follower woke after %v", d)
			}
			var os2 gjson.Result
			select {
			case os2 = <-otherDone:
				t.Errorf("non-follower's long-poll returned before its timeout: %s", os2.Raw)
			default:
				os2 = <-otherDone
			}
			if s := os2; chanSec(s).Exists() {
				t.Errorf("non-follower's long-poll carries channel news: %s", chanSec(s).Raw)
			}
		})
	}
}

// TestFollowingListsNoChannels: a user's following list shows the users
// they follow, not the channels (which are followed through the graph as
// nodes too), with full pages when channels sit between users.
func TestFollowingListsNoChannels(t *testing.T) {
	for _, st := range hstest.GraphStores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st})
			owner := srv.Register(t, "owner")
			fan := srv.Register(t, "fan")
			star := srv.Register(t, "star")
			for i := 0; i < 3; i++ {
				id := owner.MustDo("POST", chans, map[string]any{"name": "N"}).Get("channel_id").String()
				fan.MustDo("POST", chans+"/"+hstest.Esc(id)+"/follow", map[string]any{})
			}
			fan.MustDo("PUT", rel+"/follows/"+hstest.Esc(star.UserID), map[string]any{})
			for _, limit := range []string{"", "?limit=1"} {
				res := fan.MustDo("GET", rel+"/users/"+hstest.Esc(fan.UserID)+"/following"+limit, nil)
				if got := res.Get("chunk.#.user_id").String(); got != `["`+star.UserID+`"]` {
					t.Errorf("following%s = %s, want [%s]", limit, res.Raw, star.UserID)
				}
			}
		})
	}
}

// TestChannelSyncQueriesFlat: a follower's incremental sync with news in
// one channel makes as many queries with 1 followed channel as with many
// (the 1 vs 500; 20 here to stay fast, the cost does not depend
// on the count), and a sync with no channel news makes no channel query.
func TestChannelSyncQueriesFlat(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			count := func(n int) (withNews, without int64) {
				fresh := st // a fresh database per count
				for _, f := range hstest.Stores(t) {
					if f.Name == st.Name {
						fresh = f
					}
				}
				srv := hstest.Start(t, hstest.Options{Store: fresh})
				owner := srv.Register(t, "owner")
				fan := srv.Register(t, "fan")
				var last string
				for i := 0; i < n; i++ {
					last = owner.MustDo("POST", chans, map[string]any{"name": "N"}).Get("channel_id").String()
					fan.MustDo("POST", chans+"/"+hstest.Esc(last)+"/follow", map[string]any{})
				}
				since := fan.Sync("", 0).Get("next_batch").String()
				owner.MustDo("POST", chans+"/"+hstest.Esc(last)+"/posts", map[string]any{"text": "warm"})
				since = fan.Sync(since, 0).Get("next_batch").String() // loads the follow cache
				owner.MustDo("POST", chans+"/"+hstest.Esc(last)+"/posts", map[string]any{"text": "hi"})
				q0 := srv.Srv.Store.Queries()
				s := fan.Sync(since, 0)
				withNews = srv.Srv.Store.Queries() - q0
				if got := chanSec(s).Get("posts.#.text").String(); got != `["hi"]` {
					t.Errorf("n=%d: posts = %s, want [hi]", n, chanSec(s).Raw)
				}
				q0 = srv.Srv.Store.Queries()
				fan.Sync(s.Get("next_batch").String(), 0)
				without = srv.Srv.Store.Queries() - q0
				return withNews, without
			}
			w1, o1 := count(1)
			wn, on := count(20)
			if w1 != wn || o1 != on {
				t.Errorf("queries with news / without: 1 channel %d/%d, 20 channels %d/%d; want equal", w1, o1, wn, on)
			}
			// Two reads shared by every follower one post wakes together
			// (inbox.ChannelFeed.channelNews); the follower's read markers
			// are in the feed's memory.
			if w1-o1 != 2 {
				t.Errorf("channel queries with news = %d, want 2", w1-o1)
			}
		})
	}
}
