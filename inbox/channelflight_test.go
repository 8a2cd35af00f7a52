package inbox

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-im/parley/channels"
)

// blockingChannelStore answers ChannelNews once released, counting reads;
// each user's read markers are in reads (a channel absent: not followed).
type blockingChannelStore struct {
	ChannelStore // nil: only ChannelNews and ReadSeqs are called
	calls        atomic.Int32
	release      chan struct{}
	reads        map[string]map[string]int64
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

func (s *blockingChannelStore) ReadSeqs(ctx context.Context, user string, ids []string) (map[string]int64, error) {
	return s.reads[user], nil
}

// TestWokenFollowersShareOneChannelRead: a post wakes every follower at
// once, each with the same token; they must share one read of the
// channel's news (it was two queries per follower), while each gets its own
// unread count, and a follower who unfollowed meanwhile gets neither the
// channel nor its posts.
func TestWokenFollowersShareOneChannelRead(t *testing.T) {
	const followers = 8
	st := &blockingChannelStore{release: make(chan struct{}), reads: map[string]map[string]int64{}}
	for i := range followers {
		st.reads["@f"+strconv.Itoa(i)+":hs"] = map[string]int64{"~a": int64(i), "~b": 10}
	}
	st.reads["@f7:hs"] = map[string]int64{"~b": 10} // unfollowed ~a
	f := &ChannelFeed{store: st}
	ids := []string{"~a", "~b"}
	type answer struct {
		chans []channels.Followed
		posts []channels.Post
	}
	got := make([]answer, followers)
	var wg sync.WaitGroup
	for i := range followers {
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			if i == 0 {
				cancel() // one follower hangs up: the shared read goes on for the rest
			}
			chans, posts, err := f.channelNews(ctx, "@f"+strconv.Itoa(i)+":hs", ids, 5, 9)
			if err != nil {
				t.Errorf("channelNews: %v", err)
			}
			cancel()
			got[i] = answer{chans, posts}
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
	for i, a := range got[:followers-1] {
		if len(a.chans) != 2 || a.chans[0].Unread != int64(10-i) || a.chans[1].Unread != 0 || len(a.posts) != 2 {
			t.Errorf("follower %d got %+v, want ~a with %d unread, ~b with 0, two posts", i, a, 10-i)
		}
	}
	if a := got[followers-1]; len(a.chans) != 1 || a.chans[0].Channel.ID != "~b" || len(a.posts) != 1 || a.posts[0].ChannelID != "~b" {
		t.Errorf("the follower who unfollowed ~a got %+v, want ~b alone", a)
	}
}
