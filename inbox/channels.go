package inbox

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/parley-im/parley/channels"
)

// Broadcast channels in /sync (issue 12): the io.parley.channels section.
//
// A post is written once (read fan-out). Every post, edit and retraction
// takes a position on the channel stream, a counter of its own carried in
// the sync token after a dot ("s12_3.7"); the feed keeps each channel's
// newest position in memory and each user's followed channels in a cache
// dropped on follow and unfollow. A sync compares the two in memory and
// queries only the channels with news: O(channels with news), never
// O(posts) or O(followers). A long-poll registers its user in the waiter
// set of each followed channel; a post wakes that set and clears it, so a
// post costs no row and no work per offline follower.

// ChannelStore is what the feed reads (storage.ChannelStore).
type ChannelStore interface {
	ChannelNewsPositions(ctx context.Context) (map[string]int64, error)
	FollowedChannelIDs(ctx context.Context, userID string) ([]string, error)
	ChannelNews(ctx context.Context, ids []string, since, upto int64, limit int) ([]channels.Followed, []channels.Post, error)
	ReadSeqs(ctx context.Context, userID string, ids []string) (map[string]int64, error)
	Followed(ctx context.Context, userID string) ([]channels.Followed, error)
}

// channelPostBatch bounds the changed posts one sync carries; a device that
// missed more lists the channel's posts.
const channelPostBatch = 100

// ChannelFeed is the channel stream: it orders post changes, tells syncs
// which followed channels have news, and wakes followers' long-polls.
type ChannelFeed struct {
	store ChannelStore // static
	n     *Notifier    // static

	writeMu sync.Mutex // serialises stream writes, so positions publish in order

	// flight shares one ChannelNews read among the followers one post wakes
	// together: they ask for the same channels over the same range.
	flight singleflight.Group

	mu      sync.Mutex                     // guards the fields below; never held while calling the notifier
	pos     int64                          // published watermark of the channel stream
	news    map[string]int64               // channel -> its newest change
	follows map[string][]string            // user -> followed channels, cached; absent: not loaded
	gen     uint64                         // bumped by Follows, so a load racing a follow is not cached
	waiters map[string]map[string]struct{} // channel -> users long-polling now
}

var _ channels.Stream = (*ChannelFeed)(nil)

// NewChannelFeed loads each channel's newest position and hooks the feed
// into n, so that HasNews and Wait see channel news.
func NewChannelFeed(ctx context.Context, store ChannelStore, n *Notifier) (*ChannelFeed, error) {
	news, err := store.ChannelNewsPositions(ctx)
	if err != nil {
		return nil, err
	}
	f := &ChannelFeed{store: store, n: n, news: news, follows: map[string][]string{}, waiters: map[string]map[string]struct{}{}}
	for _, p := range news {
		f.pos = max(f.pos, p)
	}
	hook := f.hasNews
	n.channelNews.Store(&hook)
	return f, nil
}

// Pos is the channel stream's watermark.
func (f *ChannelFeed) Pos() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos
}

// Write implements channels.Stream: f runs with the next position; once it
// succeeds the position is published and the channel's waiters wake.
func (f *ChannelFeed) Write(ctx context.Context, channelID string, write func(pos int64) error) error {
	f.writeMu.Lock()
	defer f.writeMu.Unlock()
	f.mu.Lock()
	next := f.pos + 1
	f.mu.Unlock()
	if err := write(next); err != nil {
		return err
	}
	f.mu.Lock()
	f.pos = next
	f.news[channelID] = next
	ws := f.waiters[channelID]
	delete(f.waiters, channelID)
	f.mu.Unlock()
	for u := range ws {
		f.n.wake(u)
	}
	return nil
}

// Waiting reports how many users are long-polling on channelID's news: a
// test hook, and a gauge for operators.
func (f *ChannelFeed) Waiting(channelID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters[channelID])
}

// Follows implements channels.Stream: user's cached follow set is dropped.
func (f *ChannelFeed) Follows(user string) {
	f.mu.Lock()
	delete(f.follows, user)
	f.gen++
	f.mu.Unlock()
	f.n.wake(user) // a new follow shows in the user's next sync
}

// followed returns user's followed channels, from the cache or the store.
func (f *ChannelFeed) followed(ctx context.Context, user string) ([]string, error) {
	f.mu.Lock()
	ids, ok := f.follows[user]
	gen := f.gen
	f.mu.Unlock()
	if ok {
		return ids, nil
	}
	ids, err := f.store.FollowedChannelIDs(ctx, user)
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []string{}
	}
	f.mu.Lock()
	if f.gen == gen {
		f.follows[user] = ids
	}
	f.mu.Unlock()
	return ids, nil
}

// hasNews is the notifier's hook: whether a followed channel changed after
// since; if none did, user joins the waiter sets of the followed channels,
// so the next post wakes them.
//
// Every woken long-poll of every member runs it, so the common case (the
// follow set cached) takes the lock once and makes no context or timer.
func (f *ChannelFeed) hasNews(user string, since int64) bool {
	f.mu.Lock()
	ids, cached := f.follows[user]
	if !cached {
		f.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		ids, err = f.followed(ctx, user)
		cancel()
		if err != nil || len(ids) == 0 {
			return false // no channels, or the sync goes on without channel news
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	if len(ids) == 0 {
		return false
	}
	for _, id := range ids {
		if f.news[id] > since {
			return true
		}
	}
	for _, id := range ids {
		w := f.waiters[id]
		if w == nil {
			w = map[string]struct{}{}
			f.waiters[id] = w
		}
		w[user] = struct{}{}
	}
	return false
}

// withNews returns user's followed channels changed after since.
func (f *ChannelFeed) withNews(ids []string, since int64) []string {
	var out []string
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if f.news[id] > since {
			out = append(out, id)
		}
	}
	return out
}

// channelSection is the sync's io.parley.channels section (nil when there is
// nothing to say) and the channel position for the next token. An initial
// sync lists every followed channel; an incremental one the channels with
// news, with the posts changed since the token (edits and retractions
// included, so devices holding a post learn of them).
func (s *Syncer) channelSection(ctx context.Context, user string, initial bool, since int64) ([]byte, int64, error) {
	f := s.channels
	if f == nil {
		return nil, since, nil
	}
	upto := f.Pos()
	ids, err := f.followed(ctx, user)
	if err != nil || len(ids) == 0 {
		return nil, upto, err
	}
	type section struct {
		Channels []channels.Followed `json:"channels"`
		Posts    []channels.Post     `json:"posts"`
	}
	var sec section
	if initial {
		if sec.Channels, err = f.store.Followed(ctx, user); err != nil {
			return nil, 0, err
		}
	} else {
		news := f.withNews(ids, since)
		if len(news) == 0 {
			return nil, upto, nil
		}
		if sec.Channels, sec.Posts, err = f.channelNews(ctx, user, news, since, upto); err != nil {
			return nil, 0, err
		}
		if len(sec.Posts) == channelPostBatch {
			upto = sec.Posts[len(sec.Posts)-1].StreamPos
		}
	}
	if len(sec.Channels) == 0 && len(sec.Posts) == 0 {
		return nil, upto, nil
	}
	if sec.Posts == nil {
		sec.Posts = []channels.Post{}
	}
	b, err := json.Marshal(sec)
	return b, upto, err
}

// sharedNews is one ChannelNews answer, read once for every caller of the
// same key; callers must not modify it.
type sharedNews struct {
	chans []channels.Followed
	posts []channels.Post
}

// channelNews is the incremental section's read: the channels ids with
// their newest posts and the posts changed in (since, upto], shared among
// concurrent callers asking the same (a post wakes every follower at once,
// each with the same token), then user's own read markers, which give the
// unread counts and drop a channel unfollowed since the follow set was
// cached.
func (f *ChannelFeed) channelNews(ctx context.Context, user string, ids []string, since, upto int64) ([]channels.Followed, []channels.Post, error) {
	var key strings.Builder
	key.WriteString(strconv.FormatInt(since, 10))
	key.WriteByte(' ')
	key.WriteString(strconv.FormatInt(upto, 10))
	for _, id := range ids {
		key.WriteByte(' ')
		key.WriteString(id)
	}
	v, err, _ := f.flight.Do(key.String(), func() (any, error) {
		// Not the first caller's context: its end must not fail the others.
		chans, posts, err := f.store.ChannelNews(context.WithoutCancel(ctx), ids, since, upto, channelPostBatch)
		return sharedNews{chans, posts}, err
	})
	if err != nil {
		return nil, nil, err
	}
	shared := v.(sharedNews)
	reads, err := f.store.ReadSeqs(ctx, user, ids)
	if err != nil {
		return nil, nil, err
	}
	chans := make([]channels.Followed, 0, len(shared.chans))
	for _, c := range shared.chans {
		read, ok := reads[c.Channel.ID]
		if !ok {
			continue
		}
		c.Unread = max(c.Channel.Seq-read, 0)
		chans = append(chans, c)
	}
	posts := shared.posts
	if len(chans) < len(shared.chans) { // some channel was unfollowed: none of its posts
		posts = nil
		for _, p := range shared.posts {
			if _, ok := reads[p.ChannelID]; ok {
				posts = append(posts, p)
			}
		}
	}
	return chans, posts, nil
}
