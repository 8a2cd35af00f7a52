package homeserver

import (
	"github.com/parley-im/parley/clientapi"
	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/moments"
	"github.com/parley-im/parley/storage"
)

// newMoments wires moments: the rules on the store and the relationship
// graph, and the feed that carries the red dot into /sync. Without a graph
// there are no friends, so no moments (both nil).
func newMoments(cfg config.Config, store *storage.Store, rel graph.Store, n *inbox.Notifier) (*moments.Service, *inbox.MomentsFeed) {
	if rel == nil {
		return nil, nil
	}
	svc := moments.New(store.Moments(), clientapi.MomentsGraph(rel), moments.Config{
		MaxPostBytes: cfg.Moments.MaxPostBytes, MaxFriends: cfg.Moments.MaxFriends, Fanout: cfg.Moments.Fanout,
		PushMaxFriends: cfg.Moments.PushMaxFriends, PostsPerMinute: cfg.Moments.PostsPerMinute,
		CommentsPerMinute: cfg.Moments.CommentsPerMinute})
	feed := inbox.NewMomentsFeed(n)
	feed.SetCounts(svc)
	svc.SetNews(feed)
	return svc, feed
}
