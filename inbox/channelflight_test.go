package inbox

import (
	"context"
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
			b, err := shared.section(reads)
			if err != nil {
				t.Errorf("section: %v", err)
			}
			got[i] = gjson.ParseBytes(b)
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
