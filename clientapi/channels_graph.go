package clientapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-im/parley/channels"
	"github.com/parley-im/parley/graph"
)

// FromGraph adapts the relationship graph: follows are edges from the
// follower to the channel's node, blocks are the follower's and owner's.
func ChannelGraph(g graph.Store) channels.Graph { return channelGraph{g} }

type channelGraph struct{ g graph.Store }

func mapChannelGraph(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, graph.ErrBlocked):
		return fmt.Errorf("%w: %w", channels.ErrBlocked, err)
	case errors.Is(err, graph.ErrUnavailable):
		return fmt.Errorf("%w: %w", channels.ErrUnavailable, err)
	}
	return err
}

func (a channelGraph) Follow(ctx context.Context, from, to string) (bool, error) {
	ok, err := a.g.Follow(ctx, from, to)
	return ok, mapChannelGraph(err)
}

func (a channelGraph) Unfollow(ctx context.Context, from, to string) (bool, error) {
	ok, err := a.g.Unfollow(ctx, from, to)
	return ok, mapChannelGraph(err)
}

func (a channelGraph) IsBlocked(ctx context.Context, x, y string) (bool, error) {
	r, err := a.g.Relationship(ctx, x, y)
	if err != nil {
		return false, mapChannelGraph(err)
	}
	return r.Blocked || r.BlockedBy, nil
}
