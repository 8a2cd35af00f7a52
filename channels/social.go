package channels

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Likes, comments and moderation (issue 12). A like is one row per (post,
// user), so liking twice changes nothing; the post's row keeps its like and
// comment counts, bumped in the same transaction, so a page of posts
// carries them without counting. Comments list oldest first (a
// conversation reads top down), paged by the post's comment sequence.
//
// Blocks: a block either way between a user and the channel's owner
// refuses that user's likes, comments and comment listing, as it refuses
// following and reading. Blocks between a commenter and an editor, or
// between two commenters, are not checked: the channel is the owner's, and
// a reader who blocked a commenter still sees that comment (clients may
// hide it; the block list is theirs).

// Comment is one comment on a post.
type Comment struct {
	ChannelID string `json:"channel_id"`
	PostID    string `json:"post_id"`
	CommentID string `json:"comment_id"`
	// Seq orders a post's comments; the list's cursor.
	Seq    int64  `json:"seq"`
	Author string `json:"author"`
	Text   string `json:"text"`
	TS     int64  `json:"origin_server_ts"`
}

// SocialStore keeps likes and comments. Every write is atomic, and each
// refuses (ErrNotFound) a post that is missing or retracted.
type SocialStore interface {
	// Like records userID's like; it returns the post's like count.
	Like(ctx context.Context, channelID, postID, userID string, ts int64) (int64, error)
	// Unlike drops userID's like; it returns the post's like count.
	Unlike(ctx context.Context, channelID, postID, userID string) (int64, error)
	// LikedAmong says which of postIDs userID likes.
	LikedAmong(ctx context.Context, channelID, userID string, postIDs []string) (map[string]bool, error)
	// AddComment gives c the post's next comment sequence and stores it.
	AddComment(ctx context.Context, c Comment) (Comment, error)
	GetComment(ctx context.Context, channelID, commentID string) (Comment, error) // ErrNotFound
	DeleteComment(ctx context.Context, channelID, commentID string) error
	// Comments lists a post's comments with Seq > after, oldest first.
	Comments(ctx context.Context, channelID, postID string, after int64, limit int) ([]Comment, error)
	// FollowerPage lists up to limit followers of a channel (any order).
	FollowerPage(ctx context.Context, channelID string, limit int) ([]string, error)
	// DropReads ends the follows of users (their read markers).
	DropReads(ctx context.Context, channelID string, users []string) error
	// FollowsAcross lists the (follower, channel) pairs where a follows a
	// channel owned by b, or b one owned by a.
	FollowsAcross(ctx context.Context, a, b string) ([]Follow, error)
}

// Follow is one user's follow of one channel.
type Follow struct{ User, ChannelID string }

// reader returns the channel if user may read it and react to it: not
// blocked either way by the owner.
func (s *Service) reader(ctx context.Context, user, id string) (Channel, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return Channel{}, err
	}
	if user == c.Owner {
		return c, nil
	}
	if b, err := s.graph.IsBlocked(ctx, user, c.Owner); err != nil {
		return Channel{}, err
	} else if b {
		return Channel{}, fmt.Errorf("%w: blocked", ErrBlocked)
	}
	return c, nil
}

// livePost returns the post unless it is missing or retracted (ErrNotFound).
func (s *Service) livePost(ctx context.Context, id, postID string) (Post, error) {
	p, err := s.store.GetPost(ctx, id, postID)
	if err != nil {
		return Post{}, err
	}
	if p.Retracted {
		return Post{}, fmt.Errorf("%w: post was retracted", ErrNotFound)
	}
	return p, nil
}

// Like makes user like a post; liking twice changes nothing. It returns
// the post's like count.
func (s *Service) Like(ctx context.Context, user, id, postID string) (int64, error) {
	if _, err := s.reader(ctx, user, id); err != nil {
		return 0, err
	}
	return s.store.Like(ctx, id, postID, user, s.now().UnixMilli())
}

// Unlike drops user's like of a post, if any. It returns the like count.
// A block does not stop it: taking back one's own like harms no one.
func (s *Service) Unlike(ctx context.Context, user, id, postID string) (int64, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return 0, err
	}
	return s.store.Unlike(ctx, id, postID, user)
}

func (s *Service) checkComment(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return fmt.Errorf("%w: a comment needs text", ErrInvalid)
	case !utf8.ValidString(text):
		return fmt.Errorf("%w: text must be UTF-8", ErrInvalid)
	case len(text) > s.limits.MaxCommentBytes:
		return fmt.Errorf("%w: comment is larger than %d bytes", ErrTooLarge, s.limits.MaxCommentBytes)
	}
	return nil
}

// Comment adds user's comment to a post. Refused when the owner turned
// comments off (ErrForbidden), on a missing or retracted post
// (ErrNotFound), across a block with the owner (ErrBlocked), and beyond the
// user's comments per minute (*ratelimit.Error); a refusal changes nothing.
func (s *Service) Comment(ctx context.Context, user, id, postID, text string) (Comment, error) {
	if err := s.checkComment(text); err != nil {
		return Comment{}, err
	}
	c, err := s.reader(ctx, user, id)
	if err != nil {
		return Comment{}, err
	}
	if c.CommentsOff {
		return Comment{}, fmt.Errorf("%w: comments are off in this channel", ErrForbidden)
	}
	if _, err := s.livePost(ctx, id, postID); err != nil {
		return Comment{}, err
	}
	if err := s.comments.Take("comments", user, s.now()); err != nil {
		return Comment{}, err
	}
	return s.store.AddComment(ctx, Comment{ChannelID: id, PostID: postID, CommentID: newID("!", ""),
		Author: user, Text: text, TS: s.now().UnixMilli()})
}

// DeleteComment removes a comment: its author, the channel's owner and its
// editors (moderation) may, whether comments are on or off.
func (s *Service) DeleteComment(ctx context.Context, user, id, postID, commentID string) error {
	c, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	cm, err := s.store.GetComment(ctx, id, commentID)
	if err != nil {
		return err
	}
	if cm.PostID != postID {
		return fmt.Errorf("%w: no such comment on this post", ErrNotFound)
	}
	if cm.Author != user && !c.mayModerate(user) {
		return fmt.Errorf("%w: only the author, the owner and editors may delete a comment", ErrForbidden)
	}
	return s.store.DeleteComment(ctx, id, commentID)
}

// mayModerate: the owner and editors moderate comments.
func (c Channel) mayModerate(user string) bool {
	if user == c.Owner {
		return true
	}
	for _, e := range c.Editors {
		if e == user {
			return true
		}
	}
	return false
}

// Comments lists a post's comments oldest first, after the cursor (0 for
// the first page).
func (s *Service) Comments(ctx context.Context, user, id, postID string, after int64, limit int) ([]Comment, error) {
	if after < 0 {
		return nil, fmt.Errorf("%w: bad cursor", ErrInvalid)
	}
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	if _, err := s.reader(ctx, user, id); err != nil {
		return nil, err
	}
	if _, err := s.livePost(ctx, id, postID); err != nil {
		return nil, err
	}
	return s.store.Comments(ctx, id, postID, after, limit)
}

// Blocked ends the follows across a new block between a and b: a's follows
// of b's channels and b's of a's. The graph edge goes first, then the read
// marker, so a failure half way leaves a follow that a retry ends.
func (s *Service) Blocked(ctx context.Context, a, b string) error {
	fs, err := s.store.FollowsAcross(ctx, a, b)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if _, err := s.graph.Unfollow(ctx, f.User, Node(f.ChannelID)); err != nil {
			return err
		}
		if err := s.store.DropReads(ctx, f.ChannelID, []string{f.User}); err != nil {
			return err
		}
		s.followsChanged(f.User)
	}
	return nil
}

// unfollowAll removes every follower's graph edge and read marker, a page
// at a time, before a deleted channel's rows go (RunDeletions): one graph
// write per follower. Each page's read markers go after its edges, so a
// retry goes on where a failed run stopped.
func (s *Service) unfollowAll(ctx context.Context, id string) error {
	for {
		users, err := s.store.FollowerPage(ctx, id, 500)
		if err != nil || len(users) == 0 {
			return err
		}
		for _, u := range users {
			if _, err := s.graph.Unfollow(ctx, u, Node(id)); err != nil {
				return err
			}
		}
		if err := s.store.DropReads(ctx, id, users); err != nil {
			return err
		}
		for _, u := range users {
			s.followsChanged(u)
		}
	}
}
