package inbox

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/parley-im/parley/moments"
)

// Moments in /sync (issue 12): the io.parley.moments section, the red dot
// {"unread": new posts from friends, "notifications": new likes, comments
// and replies}.
//
// The section is state, not a list of events: a sync recomputes the counts
// from the store when something concerning the user changed since its
// token, so a repeat is harmless and nothing needs persisting. Changes take
// positions on a moments counter of its own, carried in the sync token
// after an "m" ("s12_3.7m1733390000000001"). The counter starts each run
// at the start time in microseconds, so a token from an earlier run is
// below it and gets the counts once more. In memory: user -> position of
// the newest change concerning them (one int64 per user touched this run).
// A post costs one map write and one wake-up per friend in memory, and no
// row per friend.

// MomentsCounts computes a user's red dot (moments.Service).
type MomentsCounts interface {
	Counts(ctx context.Context, user string) (moments.Counts, error)
}

// MomentsFeed tells syncs whose moments counts changed and wakes their
// long-polls. It implements moments.News.
type MomentsFeed struct {
	counts MomentsCounts // static after SetCounts
	n      *Notifier     // static

	mu   sync.RWMutex     // guards the fields below (read-locked by every sync's check); never held while calling the notifier
	base int64            // first position of this run
	pos  int64            // newest position
	news map[string]int64 // user -> position of the newest change concerning them
}

var _ moments.News = (*MomentsFeed)(nil)

// NewMomentsFeed hooks a moments feed into n, so HasNews and Wait see
// moments news. Set the counts source with SetCounts before serving.
func NewMomentsFeed(n *Notifier) *MomentsFeed {
	base := time.Now().UnixMicro()
	f := &MomentsFeed{n: n, base: base, pos: base, news: map[string]int64{}}
	hook := f.hasNews
	n.momentsNews.Store(&hook)
	return f
}

// SetCounts sets what computes the counts; call before serving.
func (f *MomentsFeed) SetCounts(c MomentsCounts) { f.counts = c }

// Changed implements moments.News: the users' counts may have changed.
func (f *MomentsFeed) Changed(users []string) {
	f.mu.Lock()
	f.pos++
	for _, u := range users {
		f.news[u] = f.pos
	}
	f.mu.Unlock()
	for _, u := range users {
		f.n.wake(u)
	}
}

// Pos is the moments feed's newest position.
func (f *MomentsFeed) Pos() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.pos
}

// hasNews is the notifier's hook: whether user's counts changed after
// since. A position outside this run (an earlier run's) counts as news, so
// the device gets the counts once. No position (0) is never news: a /sync
// token from before moments gets the position in its next response and the
// counts with the next change. (Sliding sync's tokens never reach this
// hook: they carry notCarried.)
func (f *MomentsFeed) hasNews(user string, since int64) bool {
	if since == 0 {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return since < f.base || since > f.pos || f.news[user] > since
}

// momentsSection is the sync's io.parley.moments section (nil when there is
// nothing new) and the moments position for the next token.
func (s *Syncer) momentsSection(ctx context.Context, user string, initial bool, since int64) ([]byte, int64, error) {
	f := s.moments
	if f == nil || f.counts == nil {
		return nil, 0, nil
	}
	upto := f.Pos()
	if !initial && !f.hasNews(user, since) {
		return nil, upto, nil
	}
	c, err := f.counts.Counts(ctx, user)
	if err != nil {
		// The graph may be down: the sync goes on without the counts
		// (the next change brings them, and GET /moments/counts has
		// them); keeping the old position would spin a long-poll.
		s.log.Warn("sync: moments counts", "user", user, "err", err)
		return nil, upto, nil
	}
	b, err := json.Marshal(c)
	return b, upto, err
}
