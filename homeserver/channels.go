package homeserver

import (
	"context"

	"github.com/parley-im/parley/channels"
	"github.com/parley-im/parley/clientapi"
	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/storage"
)

// newChannels wires broadcast channels: the rules, and the channel stream
// that carries posts into /sync and wakes followers' long-polls.
func newChannels(ctx context.Context, cfg config.Config, store *storage.Store, rel graph.Store, n *inbox.Notifier) (*channels.Service, *inbox.ChannelFeed, error) {
	feed, err := inbox.NewChannelFeed(ctx, store.Channels(), n)
	if err != nil {
		return nil, nil, err
	}
	svc := channels.New(store.Channels(), clientapi.ChannelGraph(rel), cfg.ServerName, channels.Limits{
		MaxPostBytes: cfg.Channels.MaxPostBytes, PostsPerMinute: cfg.Channels.PostsPerMinute,
		CommentsPerMinute: cfg.Channels.CommentsPerMinute})
	svc.SetStream(feed)
	return svc, feed, nil
}
