package clientapi

import (
	"context"
	"encoding/json"

	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/rooms"
)

// Relationship news reaches every device of the users concerned as notices
// in /sync, under "io.parley.relationships" (docs/graph.md lists the types).
// A blocked user is never told of the block.
const (
	noticeFollowType     = "io.parley.follow"
	noticeRequestType    = "io.parley.friend_request"
	noticeFriendshipType = "io.parley.friendship"
	noticeBlockType      = "io.parley.block"
)

func notice(user, typ string, content any) rooms.Notice {
	b, _ := json.Marshal(content) // plain structs and maps: cannot fail
	return rooms.Notice{UserID: user, Type: typ, Content: b}
}

// noticeFollow tells the followed user of a new (or lost) follower, and the
// follower's other devices of their own change.
func (a *API) noticeFollow(ctx context.Context, follower, followee string, following bool) error {
	c := map[string]any{"follower": follower, "followee": followee, "following": following}
	return a.rooms.NotifyUsers(ctx, []rooms.Notice{notice(followee, noticeFollowType, c), notice(follower, noticeFollowType, c)})
}

// noticeRequest tells both sides of a request's new state, except that a
// decline is told only to the one who declined: the sender sees the request
// stay unanswered, as in WeChat.
func (a *API) noticeRequest(ctx context.Context, req graph.Request) error {
	ns := []rooms.Notice{notice(req.To, noticeRequestType, req)}
	if req.State != "declined" {
		ns = append(ns, notice(req.From, noticeRequestType, req))
	}
	return a.rooms.NotifyUsers(ctx, ns)
}

// noticeFriendship tells each side that the other is now (or no longer) a
// friend.
func (a *API) noticeFriendship(ctx context.Context, x, y string, friends bool) error {
	if a.contacts != nil {
		a.contacts.Forget(x, y)
	}
	return a.rooms.NotifyUsers(ctx, []rooms.Notice{
		notice(x, noticeFriendshipType, map[string]any{"user_id": y, "friends": friends}),
		notice(y, noticeFriendshipType, map[string]any{"user_id": x, "friends": friends}),
	})
}

// noticeBlock tells the blocker's devices of the block and of what it cut.
func (a *API) noticeBlock(ctx context.Context, blocker, blocked string, on bool, eff graph.BlockEffects) error {
	if a.contacts != nil {
		// The blocker's block list (to-device checks it), and both friend
		// lists when the block ended a friendship.
		a.contacts.Forget(blocker, blocked)
	}
	if on && !eff.Changed {
		return nil
	}
	c := map[string]any{"user_id": blocked, "blocked": on}
	if on {
		c["unfriended"], c["unfollowed"], c["lost_follower"] = eff.Unfriended, eff.Unfollowed, eff.LostFollower
	}
	return a.rooms.NotifyUsers(ctx, []rooms.Notice{notice(blocker, noticeBlockType, c)})
}
