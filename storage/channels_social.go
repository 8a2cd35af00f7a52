package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parley-im/parley/channels"
)

// Channel likes and comments (schema 048): channels.SocialStore.

// Like records a like and returns the post's like count; a second like by
// the same user changes nothing. A missing or retracted post is
// channels.ErrNotFound, checked in the same transaction.
func (c *ChannelStore) Like(ctx context.Context, channelID, postID, userID string, ts int64) (int64, error) {
	var n int64
	err := c.s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO channel_likes (channel_id, post_id, user_id, ts) VALUES ($1, $2, $3, $4)
			ON CONFLICT (channel_id, post_id, user_id) DO NOTHING`, channelID, postID, userID, ts)
		if err != nil {
			return fmt.Errorf("like %s: %w", postID, err)
		}
		q := `SELECT like_count FROM channel_posts WHERE channel_id = $1 AND post_id = $2 AND retracted = 0`
		if added, _ := res.RowsAffected(); added > 0 {
			q = `UPDATE channel_posts SET like_count = like_count + 1 WHERE channel_id = $1 AND post_id = $2 AND retracted = 0 RETURNING like_count`
		}
		return postCount(tx.QueryRowContext(ctx, q, channelID, postID), &n, postID)
	})
	return n, err
}

// Unlike drops a like, if any, and returns the post's like count.
func (c *ChannelStore) Unlike(ctx context.Context, channelID, postID, userID string) (int64, error) {
	var n int64
	err := c.s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM channel_likes WHERE channel_id = $1 AND post_id = $2 AND user_id = $3`, channelID, postID, userID)
		if err != nil {
			return fmt.Errorf("unlike %s: %w", postID, err)
		}
		q := `SELECT like_count FROM channel_posts WHERE channel_id = $1 AND post_id = $2 AND retracted = 0`
		if gone, _ := res.RowsAffected(); gone > 0 {
			q = `UPDATE channel_posts SET like_count = like_count - 1 WHERE channel_id = $1 AND post_id = $2 AND retracted = 0 RETURNING like_count`
		}
		return postCount(tx.QueryRowContext(ctx, q, channelID, postID), &n, postID)
	})
	return n, err
}

// LikedAmong says which of postIDs userID likes: one read of the likes'
// primary key, whatever the page size.
func (c *ChannelStore) LikedAmong(ctx context.Context, channelID, userID string, postIDs []string) (map[string]bool, error) {
	out := make(map[string]bool, len(postIDs))
	if len(postIDs) == 0 {
		return out, nil
	}
	in, args := inList(postIDs, 3)
	rows, err := c.s.read.QueryContext(ctx, `SELECT post_id FROM channel_likes WHERE channel_id = $1 AND user_id = $2 AND post_id IN (`+in+`)`,
		append([]any{channelID, userID}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("likes of %s: %w", userID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("likes of %s: %w", userID, err)
		}
		out[id] = true
	}
	return out, rows.Err()
}

// postCount scans a count off a post's row; no row is channels.ErrNotFound.
func postCount(row *sql.Row, n *int64, postID string) error {
	err := row.Scan(n)
	if errors.Is(err, sql.ErrNoRows) {
		return channels.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("post %s: %w", postID, err)
	}
	return nil
}

// AddComment takes the post's next comment sequence, bumps its comment
// count and stores the comment: one transaction, refused (ErrNotFound) on a
// missing or retracted post.
func (c *ChannelStore) AddComment(ctx context.Context, cm channels.Comment) (channels.Comment, error) {
	err := c.s.inTx(ctx, func(tx *sql.Tx) error {
		err := postCount(tx.QueryRowContext(ctx, `UPDATE channel_posts SET comment_seq = comment_seq + 1, comment_count = comment_count + 1
			WHERE channel_id = $1 AND post_id = $2 AND retracted = 0 RETURNING comment_seq`, cm.ChannelID, cm.PostID), &cm.Seq, cm.PostID)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO channel_comments (channel_id, post_id, seq, comment_id, author, body, ts) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			cm.ChannelID, cm.PostID, cm.Seq, cm.CommentID, cm.Author, cm.Text, cm.TS)
		if err != nil {
			return fmt.Errorf("comment on %s: %w", cm.PostID, err)
		}
		return nil
	})
	return cm, err
}

const channelCommentCols = `channel_id, post_id, seq, comment_id, author, body, ts`

func scanChannelComment(sc interface{ Scan(...any) error }, cm *channels.Comment) error {
	return sc.Scan(&cm.ChannelID, &cm.PostID, &cm.Seq, &cm.CommentID, &cm.Author, &cm.Text, &cm.TS)
}

// GetComment reads one comment, or channels.ErrNotFound.
func (c *ChannelStore) GetComment(ctx context.Context, channelID, commentID string) (channels.Comment, error) {
	var cm channels.Comment
	err := scanChannelComment(c.s.read.QueryRowContext(ctx, `SELECT `+channelCommentCols+` FROM channel_comments WHERE channel_id = $1 AND comment_id = $2`, channelID, commentID), &cm)
	if errors.Is(err, sql.ErrNoRows) {
		return cm, channels.ErrNotFound
	}
	if err != nil {
		return cm, fmt.Errorf("get comment %s: %w", commentID, err)
	}
	return cm, nil
}

// DeleteComment removes a comment and lowers its post's comment count.
func (c *ChannelStore) DeleteComment(ctx context.Context, channelID, commentID string) error {
	return c.s.inTx(ctx, func(tx *sql.Tx) error {
		var postID string
		err := tx.QueryRowContext(ctx, `DELETE FROM channel_comments WHERE channel_id = $1 AND comment_id = $2 RETURNING post_id`, channelID, commentID).Scan(&postID)
		if errors.Is(err, sql.ErrNoRows) {
			return channels.ErrNotFound
		}
		if err == nil {
			_, err = tx.ExecContext(ctx, `UPDATE channel_posts SET comment_count = comment_count - 1 WHERE channel_id = $1 AND post_id = $2`, channelID, postID)
		}
		if err != nil {
			return fmt.Errorf("delete comment %s: %w", commentID, err)
		}
		return nil
	})
}

// Comments lists a post's comments after the cursor, oldest first, on the
// primary key.
func (c *ChannelStore) Comments(ctx context.Context, channelID, postID string, after int64, limit int) ([]channels.Comment, error) {
	rows, err := c.s.read.QueryContext(ctx, `SELECT `+channelCommentCols+` FROM channel_comments WHERE channel_id = $1 AND post_id = $2 AND seq > $3
		ORDER BY seq LIMIT $4`, channelID, postID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("comments of %s: %w", postID, err)
	}
	defer rows.Close()
	out := []channels.Comment{}
	for rows.Next() {
		var cm channels.Comment
		if err := scanChannelComment(rows, &cm); err != nil {
			return nil, fmt.Errorf("comments of %s: %w", postID, err)
		}
		out = append(out, cm)
	}
	return out, rows.Err()
}

// FollowerPage lists up to limit followers of a channel (on the
// channel_reads_channel index).
func (c *ChannelStore) FollowerPage(ctx context.Context, channelID string, limit int) ([]string, error) {
	return c.strings(ctx, `SELECT user_id FROM channel_reads WHERE channel_id = $1 LIMIT $2`, channelID, limit)
}

// DropReads removes the read markers of users in a channel.
func (c *ChannelStore) DropReads(ctx context.Context, channelID string, users []string) error {
	if len(users) == 0 {
		return nil
	}
	in, args := inList(users, 2)
	if _, err := c.s.write.ExecContext(ctx, `DELETE FROM channel_reads WHERE channel_id = $1 AND user_id IN (`+in+`)`, append([]any{channelID}, args...)...); err != nil {
		return fmt.Errorf("drop reads of %s: %w", channelID, err)
	}
	return nil
}

// FollowsAcross lists a's follows of b's channels and b's of a's.
func (c *ChannelStore) FollowsAcross(ctx context.Context, a, b string) ([]channels.Follow, error) {
	rows, err := c.s.read.QueryContext(ctx, `SELECT r.user_id, r.channel_id FROM channel_reads r JOIN channels c ON c.channel_id = r.channel_id
		WHERE (r.user_id = $1 AND c.owner = $2) OR (r.user_id = $2 AND c.owner = $1)`, a, b)
	if err != nil {
		return nil, fmt.Errorf("follows across %s %s: %w", a, b, err)
	}
	defer rows.Close()
	var out []channels.Follow
	for rows.Next() {
		var f channels.Follow
		if err := rows.Scan(&f.User, &f.ChannelID); err != nil {
			return nil, fmt.Errorf("follows across %s %s: %w", a, b, err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// strings runs a query of one text column.
func (c *ChannelStore) strings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := c.s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("channels: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("channels: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
