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
// newest position in memory and each user's followed channels, with their
// read markers, in a cache dropped on follow, unfollow and mark-read. A
// sync compares the two in memory and queries only the channels with news,
// in one read shared by every follower the post woke: O(channels with
// news), never O(posts) or O(followers), and no query of the follower's
// own. A long-poll registers its user in the waiter
// set of each followed channel; a post wakes that set and clears it, so a
// post costs no row and no work per offline follower.

// ChannelStore is what the feed reads (storage.ChannelStore).
type ChannelStore interface {
	ChannelNewsPositions(ctx context.Context) (map[string]int64, error)
	FollowedReads(ctx context.Context, userID string) ([]channels.ReadMarker, error)
	ChannelNews(ctx context.Context, ids []string, since, upto int64, limit int) ([]channels.Followed, []channels.Post, error)
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
	// together: they ask for the same channels over the same range. The
	// wake-ups of 2,000 followers spread over tens of milliseconds, longer
	// than a read, so the answers are also kept (recent) until the stream
	// moves on: a later follower with the same question reads memory.
	flight singleflight.Group

	mu      sync.Mutex                       // guards the fields below; never held while calling the notifier
	pos     int64                            // published watermark of the channel stream
	news    map[string]int64                 // channel -> its newest change
	prev    map[string]int64                 // channel -> the change before its newest, for channels written since start
	follows map[string][]channels.ReadMarker // user -> followed channels with read markers, cached; absent: not loaded
	gen     uint64                           // bumped by Follows, so a load racing a follow or a read is not cached
	waiters map[string]map[string]struct{}   // channel -> users long-polling now
	recent  map[string]*sharedNews           // ChannelNews answers up to pos, by flight key
}

var _ channels.Stream = (*ChannelFeed)(nil)

// NewChannelFeed loads each channel's newest position and hooks the feed
// into n, so that HasNews and Wait see channel news.
func NewChannelFeed(ctx context.Context, store ChannelStore, n *Notifier) (*ChannelFeed, error) {
	news, err := store.ChannelNewsPositions(ctx)
	if err != nil {
		return nil, err
	}
	f := &ChannelFeed{store: store, n: n, news: news, prev: map[string]int64{}, follows: map[string][]channels.ReadMarker{}, waiters: map[string]map[string]struct{}{}}
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
// succeeds the position is published and the channel's waiters wake, after
// the news they will ask for has been read (wakeAfterRead).
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
	clear(f.recent) // every later sync asks up to next: none of these keys again
	prev := f.news[channelID]
	f.prev[channelID], f.news[channelID] = prev, next
	ws := f.waiters[channelID]
	delete(f.waiters, channelID)
	f.mu.Unlock()
	if len(ws) > 0 {
		go f.wakeAfterRead(channelID, prev, next, ws)
	}
	return nil
}

// wakeAfterRead reads the news that the followers in ws, long-polling on
// channelID, will ask for (withNews makes their questions one), then wakes
// them. Woken first, 2,000 followers' goroutines would all be scheduled
// before the one reading for them ran again: 10 to 20 ms on PostgreSQL,
// whose reads wait on the network, before anyone was answered. The post's
// acknowledgement does not wait for it.
func (f *ChannelFeed) wakeAfterRead(channelID string, prev, pos int64, ws map[string]struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	// A failed read is the followers' to retry: they are woken regardless.
	_, _ = f.channelNews(ctx, []channels.ReadMarker{{ChannelID: channelID}}, prev, pos)
	cancel()
	for u := range ws {
		f.n.wake(u)
	}
}

// Waiting reports how many users are long-polling on channelID's news: a
// test hook, and a gauge for operators.
func (f *ChannelFeed) Waiting(channelID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters[channelID])
}

// Follows implements channels.Stream: user's cached follow set and read
// markers are dropped.
func (f *ChannelFeed) Follows(user string) {
	f.mu.Lock()
	delete(f.follows, user)
	f.gen++
	f.mu.Unlock()
	f.n.wake(user) // a new follow shows in the user's next sync
}

// followed returns user's followed channels with their read markers, from
// the cache or the store; callers must not modify the slice.
func (f *ChannelFeed) followed(ctx context.Context, user string) ([]channels.ReadMarker, error) {
	f.mu.Lock()
	ids, ok := f.follows[user]
	gen := f.gen
	f.mu.Unlock()
	if ok {
		return ids, nil
	}
	ids, err := f.store.FollowedReads(ctx, user)
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []channels.ReadMarker{}
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
	for _, r := range ids {
		if f.news[r.ChannelID] > since {
			return true
		}
	}
	for _, r := range ids {
		w := f.waiters[r.ChannelID]
		if w == nil {
			w = map[string]struct{}{}
			f.waiters[r.ChannelID] = w
		}
		w[user] = struct{}{}
	}
	return false
}

// withNews returns the followed channels of reads changed after since, and
// the position to read their changes from. That is since, or, when each of
// those channels changed once in (since, upto] and the change before is
// known, the latest of those earlier changes: the same changes, and one
// question for every follower a post wakes, whatever their tokens (other
// channels' posts move everyone's token along the one stream).
func (f *ChannelFeed) withNews(reads []channels.ReadMarker, since, upto int64) ([]channels.ReadMarker, int64) {
	var out []channels.ReadMarker
	from, once := int64(0), true
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range reads {
		n := f.news[r.ChannelID]
		if n <= since {
			continue
		}
		out = append(out, r)
		p, ok := f.prev[r.ChannelID]
		once = once && ok && p <= since && n <= upto
		from = max(from, p)
	}
	if !once || len(out) == 0 {
		from = since
	}
	return out, from
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
	reads, err := f.followed(ctx, user)
	if err != nil || len(reads) == 0 {
		return nil, upto, err
	}
	if initial {
		fs, err := f.store.Followed(ctx, user)
		if err != nil || len(fs) == 0 {
			return nil, upto, err
		}
		b, err := json.Marshal(struct {
			Channels []channels.Followed `json:"channels"`
			Posts    []channels.Post     `json:"posts"`
		}{fs, []channels.Post{}})
		return b, upto, err
	}
	news, from := f.withNews(reads, since, upto)
	if len(news) == 0 {
		return nil, upto, nil
	}
	shared, err := f.channelNews(ctx, news, from, upto)
	if err != nil {
		return nil, 0, err
	}
	if len(shared.posts) == channelPostBatch {
		upto = shared.posts[len(shared.posts)-1].StreamPos
	}
	if len(shared.chans) == 0 && len(shared.posts) == 0 {
		return nil, upto, nil
	}
	return shared.section(news), upto, nil
}

// sharedNews is one ChannelNews answer, read and rendered once for every
// caller of the same key; callers must not modify it.
type sharedNews struct {
	chans     []renderedChannel
	posts     []channels.Post
	postsJSON []byte // posts, rendered
}

// renderedChannel is one channels.Followed rendered but for its unread
// count, which is each follower's own: head ends before the count's value,
// tail follows it.
type renderedChannel struct {
	id         string
	seq        int64
	head, tail []byte
}

func renderChannel(c channels.Followed) (renderedChannel, error) {
	ch, err := json.Marshal(c.Channel)
	if err != nil {
		return renderedChannel{}, err
	}
	r := renderedChannel{id: c.Channel.ID, seq: c.Channel.Seq, tail: []byte("}")}
	r.head = append(append([]byte(`{"channel":`), ch...), `,"unread_count":`...)
	if c.Newest != nil {
		p, err := json.Marshal(c.Newest)
		if err != nil {
			return renderedChannel{}, err
		}
		r.tail = append(append([]byte(`,"newest_post":`), p...), '}')
	}
	return r, nil
}

// section renders the io.parley.channels section for a follower with the
// read markers reads: the shared rendering with the follower's own unread
// counts put in, so a woken follower costs one buffer.
func (n *sharedNews) section(reads []channels.ReadMarker) []byte {
	size := len(n.postsJSON) + 32
	for _, c := range n.chans {
		size += len(c.head) + len(c.tail) + 21
	}
	b := make([]byte, 0, size)
	b = append(b, `{"channels":[`...)
	for i, c := range n.chans {
		if i > 0 {
			b = append(b, ',')
		}
		var unread int64
		for _, r := range reads {
			if r.ChannelID == c.id {
				unread = max(c.seq-r.ReadSeq, 0)
				break
			}
		}
		b = append(b, c.head...)
		b = strconv.AppendInt(b, unread, 10)
		b = append(b, c.tail...)
	}
	b = append(b, `],"posts":`...)
	b = append(b, n.postsJSON...)
	return append(b, '}')
}

// renderNews renders a ChannelNews answer for sharing.
func renderNews(chans []channels.Followed, posts []channels.Post) (*sharedNews, error) {
	if posts == nil {
		posts = []channels.Post{}
	}
	pj, err := json.Marshal(posts)
	if err != nil {
		return nil, err
	}
	n := &sharedNews{chans: make([]renderedChannel, len(chans)), posts: posts, postsJSON: pj}
	for i, c := range chans {
		if n.chans[i], err = renderChannel(c); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// channelNews is the incremental section's read: the followed channels of
// reads with their newest posts and the posts changed in (since, upto],
// shared among concurrent callers asking the same (a post wakes every
// follower at once, each with the same token). The callers' own parts, the
// read markers that give their unread counts, are in memory.
func (f *ChannelFeed) channelNews(ctx context.Context, reads []channels.ReadMarker, since, upto int64) (*sharedNews, error) {
	var key strings.Builder
	key.WriteString(strconv.FormatInt(since, 10))
	key.WriteByte(' ')
	key.WriteString(strconv.FormatInt(upto, 10))
	for _, r := range reads {
		key.WriteByte(' ')
		key.WriteString(r.ChannelID)
	}
	k := key.String()
	f.mu.Lock()
	n, ok := f.recent[k]
	f.mu.Unlock()
	if ok {
		return n, nil
	}
	v, err, _ := f.flight.Do(k, func() (any, error) {
		ids := make([]string, len(reads))
		for i, r := range reads {
			ids[i] = r.ChannelID
		}
		// Not the first caller's context: its end must not fail the others.
		chans, posts, err := f.store.ChannelNews(context.WithoutCancel(ctx), ids, since, upto, channelPostBatch)
		if err != nil {
			return nil, err
		}
		n, err := renderNews(chans, posts)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		if f.pos == upto && len(f.recent) < maxRecentNews {
			if f.recent == nil {
				f.recent = map[string]*sharedNews{}
			}
			f.recent[k] = n
		}
		f.mu.Unlock()
		return n, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*sharedNews), nil
}

// maxRecentNews bounds the answers kept between two stream writes: one per
// distinct (token, followed channels with news), and one post's wake-ups
// ask few distinct questions.
const maxRecentNews = 256
