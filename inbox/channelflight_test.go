package inbox

import (
	"context"
	"encoding/json"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/channels"
)

// blockingChannelStore answers ChannelNews once released, counting reads.
type blockingChannelStore struct {
	ChannelStore // nil: only ChannelNews is called
	calls        atomic.Int32
	release      chan struct{}
}

func (s *blockingChannelStore) ChannelNews(ctx context.Context, ids []string, since, upto int64, limit int) ([]channels.Followed, []channels.Post, error) {
	s.calls.Add(1)
	<-s.release
	var fs []channels.Followed
	var posts []channels.Post
	for _, id := range ids {
		fs = append(fs, channels.Followed{Channel: channels.Channel{ID: id, Seq: 10}})
		posts = append(posts, channels.Post{ChannelID: id, Seq: 10, StreamPos: upto})
	}
	return fs, posts, nil
}

// TestWokenFollowersShareOneChannelRead: a post wakes every follower at
// once, each with the same token; they must share one read of the
// channel's news (it was two queries per follower, then one of their read
// markers each), while each gets its own unread count from the read
// markers the feed keeps.
func TestWokenFollowersShareOneChannelRead(t *testing.T) {
	const followers = 8
	st := &blockingChannelStore{release: make(chan struct{})}
	f := &ChannelFeed{store: st}
	got := make([]gjson.Result, followers)
	var wg sync.WaitGroup
	for i := range followers {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			if i == 0 {
				cancel() // one follower hangs up: the shared read goes on for the rest
			}
			reads := []channels.ReadMarker{{ChannelID: "~a", ReadSeq: int64(i)}, {ChannelID: "~b", ReadSeq: 10}}
			shared, err := f.channelNews(ctx, reads, 5, 9)
			cancel()
			if err != nil {
				t.Errorf("channelNews: %v", err)
				return
			}
			got[i] = gjson.ParseBytes(shared.section(reads))
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for int(st.calls.Load())+waitingInFlight("blockingChannelStore).ChannelNews") < followers {
		if time.Now().After(deadline) {
			t.Fatalf("followers reading %d + waiting %d after 10s, want %d", st.calls.Load(),
				waitingInFlight("blockingChannelStore).ChannelNews"), followers)
		}
		runtime.Gosched()
	}
	close(st.release)
	wg.Wait()
	if n := st.calls.Load(); n != 1 {
		t.Errorf("store reads for %d followers woken by one post = %d, want 1", followers, n)
	}
	for i, g := range got {
		unread := g.Get("channels.#.unread_count").String()
		want := "[" + strconv.Itoa(10-i) + ",0]"
		if unread != want || g.Get("posts.#").Int() != 2 || g.Get("channels.0.channel.channel_id").String() != "~a" {
			t.Errorf("follower %d got %s, want ~a with unread %d, ~b with 0, two posts", i, g.Raw, 10-i)
		}
	}
}

// TestSharedSectionRendersAsJSON: the section rendered once and patched
// with each follower's unread count is what encoding/json makes of it.
func TestSharedSectionRendersAsJSON(t *testing.T) {
	newest := &channels.Post{ChannelID: "~a", PostID: "$p", Seq: 7, Author: "@o:hs", Text: "hi \"there\" <b>", Images: []string{"mxc://hs/i"}, TS: 5, Likes: 2}
	chans := []channels.Followed{
		{Channel: channels.Channel{ID: "~a", Owner: "@o:hs", Name: "A", Editors: []string{"@e:hs"}, CreatedTS: 1, Seq: 7}, Newest: newest},
		{Channel: channels.Channel{ID: "~b", Owner: "@o:hs", Name: "B", Editors: []string{}, CommentsOff: true, Seq: 0}},
	}
	posts := []channels.Post{*newest, {ChannelID: "~a", PostID: "$q", Seq: 6, Retracted: true}}
	n, err := renderNews(chans, posts)
	if err != nil {
		t.Fatal(err)
	}
	reads := []channels.ReadMarker{{ChannelID: "~b", ReadSeq: 0}, {ChannelID: "~a", ReadSeq: 3}}
	want := append([]channels.Followed{}, chans...)
	want[0].Unread = 4
	wantJSON, err := json.Marshal(struct {
		Channels []channels.Followed `json:"channels"`
		Posts    []channels.Post     `json:"posts"`
	}{want, posts})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.section(reads); string(got) != string(wantJSON) {
		t.Errorf("section\n got %s\nwant %s", got, wantJSON)
	}
}

// TestLateFollowersReadKeptNews: followers woken by one post reach the feed
// over tens of milliseconds, after the shared read has ended; they read the
// answer kept in memory until the stream moves on.
func TestLateFollowersReadKeptNews(t *testing.T) {
	st := &blockingChannelStore{release: make(chan struct{})}
	close(st.release)
	f := &ChannelFeed{store: st, news: map[string]int64{}, prev: map[string]int64{}}
	ctx := context.Background()
	reads := []channels.ReadMarker{{ChannelID: "~a"}}
	if err := f.Write(ctx, "~a", func(int64) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := f.channelNews(ctx, reads, 0, f.Pos()); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.calls.Load(); n != 1 {
		t.Errorf("store reads for three followers one after another = %d, want 1", n)
	}
	if err := f.Write(ctx, "~a", func(int64) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.channelNews(ctx, reads, 0, f.Pos()); err != nil {
		t.Fatal(err)
	}
	if n := st.calls.Load(); n != 2 {
		t.Errorf("store reads after the stream moved on = %d, want 2", n)
	}
}

// TestWithNewsAsksOneQuestion: followers woken by one post hold tokens at
// different positions (other channels' posts move the one stream along);
// whoever has seen the channel's change before the post asks from that
// change, so they share one read. A follower further behind asks from its
// own token, and so does everyone after a restart, when the change before
// is not known.
func TestWithNewsAsksOneQuestion(t *testing.T) {
	f := &ChannelFeed{news: map[string]int64{"~a": 10, "~b": 4}, prev: map[string]int64{"~a": 6}}
	a := []channels.ReadMarker{{ChannelID: "~a"}}
	ab := []channels.ReadMarker{{ChannelID: "~a"}, {ChannelID: "~b"}}
	tests := []struct {
		name        string
		reads       []channels.ReadMarker
		since, upto int64
		want        int // channels with news
		from        int64
	}{
		{"token at the change before", a, 6, 12, 1, 6},
		{"token past it", a, 9, 12, 1, 6},
		{"token before it", a, 5, 12, 1, 5},
		{"no news", a, 10, 12, 0, 10},
		{"newest change past upto", a, 7, 9, 1, 7},
		{"change before unknown", ab, 3, 12, 2, 3},
		{"only the known channel has news", ab, 7, 12, 1, 6},
	}
	for _, tt := range tests {
		news, from := f.withNews(tt.reads, tt.since, tt.upto)
		if len(news) != tt.want || from != tt.from {
			t.Errorf("%s: %d channels from %d, want %d from %d", tt.name, len(news), from, tt.want, tt.from)
		}
	}
}
