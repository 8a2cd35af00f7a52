package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parley-im/parley/channels"
)

// ChannelStore implements channels.Store on the main database (schema 040).
type ChannelStore struct{ s *Store }

// Channels returns the channel store.
func (s *Store) Channels() *ChannelStore { return &ChannelStore{s} }

var _ channels.Store = (*ChannelStore)(nil)

// CreateChannel stores a new channel.
func (c *ChannelStore) CreateChannel(ctx context.Context, ch channels.Channel) error {
	ed, _ := json.Marshal(ch.Editors) // []string: cannot fail
	_, err := c.s.write.ExecContext(ctx, `INSERT INTO channels (channel_id, owner, name, avatar_url, description, editors, created_ts, seq, comments_off)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)`, ch.ID, ch.Owner, ch.Name, ch.AvatarURL, ch.Description, string(ed), ch.CreatedTS, boolInt(ch.CommentsOff))
	if err != nil {
		return fmt.Errorf("create channel %s: %w", ch.ID, err)
	}
	return nil
}

const channelCols = `channel_id, owner, name, avatar_url, description, editors, created_ts, seq, comments_off`

func scanChannel(sc interface{ Scan(...any) error }, ch *channels.Channel) error {
	var ed string
	var off int
	if err := sc.Scan(&ch.ID, &ch.Owner, &ch.Name, &ch.AvatarURL, &ch.Description, &ed, &ch.CreatedTS, &ch.Seq, &off); err != nil {
		return err
	}
	ch.CommentsOff = off != 0
	if err := json.Unmarshal([]byte(ed), &ch.Editors); err != nil {
		return fmt.Errorf("channel %s editors: %w", ch.ID, err)
	}
	if ch.Editors == nil {
		ch.Editors = []string{}
	}
	return nil
}

// GetChannel reads a channel, or channels.ErrNotFound.
func (c *ChannelStore) GetChannel(ctx context.Context, id string) (channels.Channel, error) {
	var ch channels.Channel
	err := scanChannel(c.s.read.QueryRowContext(ctx, `SELECT `+channelCols+` FROM channels WHERE channel_id = $1 AND deleting = 0`, id), &ch)
	if errors.Is(err, sql.ErrNoRows) {
		return ch, channels.ErrNotFound
	}
	if err != nil {
		return ch, fmt.Errorf("get channel %s: %w", id, err)
	}
	return ch, nil
}

// UpdateChannel writes a channel's metadata.
func (c *ChannelStore) UpdateChannel(ctx context.Context, ch channels.Channel) error {
	ed, _ := json.Marshal(ch.Editors)
	res, err := c.s.write.ExecContext(ctx, `UPDATE channels SET name = $2, avatar_url = $3, description = $4, editors = $5, comments_off = $6 WHERE channel_id = $1`,
		ch.ID, ch.Name, ch.AvatarURL, ch.Description, string(ed), boolInt(ch.CommentsOff))
	if err != nil {
		return fmt.Errorf("update channel %s: %w", ch.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return channels.ErrNotFound
	}
	return nil
}

// DeleteChannel removes a channel with its posts, likes, comments and read
// markers, at once.
func (c *ChannelStore) DeleteChannel(ctx context.Context, id string) error {
	return c.s.inTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM channel_likes WHERE channel_id = $1`,
			`DELETE FROM channel_comments WHERE channel_id = $1`,
			`DELETE FROM channel_posts WHERE channel_id = $1`,
			`DELETE FROM channel_reads WHERE channel_id = $1`,
			`DELETE FROM channels WHERE channel_id = $1`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return fmt.Errorf("delete channel %s: %w", id, err)
			}
		}
		return nil
	})
}

// MarkDeleting hides a channel from every reader until DeleteChannel drops
// it (channels.Service.Delete); ErrNotFound when it is not there or already
// going.
func (c *ChannelStore) MarkDeleting(ctx context.Context, id string) error {
	res, err := c.s.write.ExecContext(ctx, `UPDATE channels SET deleting = 1 WHERE channel_id = $1 AND deleting = 0`, id)
	if err != nil {
		return fmt.Errorf("mark channel %s deleting: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return channels.ErrNotFound
	}
	return nil
}

// Deleting lists the channels marked deleting and not yet dropped.
func (c *ChannelStore) Deleting(ctx context.Context) ([]string, error) {
	return c.strings(ctx, `SELECT channel_id FROM channels WHERE deleting = 1 ORDER BY channel_id LIMIT $1`, 1000)
}

type postContent struct {
	Text   string   `json:"text,omitempty"`
	Images []string `json:"images,omitempty"`
	Links  []string `json:"links,omitempty"`
}

// AddPost takes the channel's next sequence and stores the post: two
// statements, whatever the number of followers.
func (c *ChannelStore) AddPost(ctx context.Context, p channels.Post) (channels.Post, error) {
	body, _ := json.Marshal(postContent{p.Text, p.Images, p.Links})
	err := c.s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE channels SET seq = seq + 1, news_pos = $2 WHERE channel_id = $1 RETURNING seq`, p.ChannelID, p.StreamPos).Scan(&p.Seq)
		if errors.Is(err, sql.ErrNoRows) {
			return channels.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("post to %s: %w", p.ChannelID, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO channel_posts (channel_id, seq, post_id, author, content, ts, stream_pos) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			p.ChannelID, p.Seq, p.PostID, p.Author, string(body), p.TS, p.StreamPos)
		if err != nil {
			return fmt.Errorf("post to %s: %w", p.ChannelID, err)
		}
		return nil
	})
	return p, err
}

const postCols = `channel_id, seq, post_id, author, content, ts, edited_ts, retracted, like_count, comment_count`

func scanPost(sc interface{ Scan(...any) error }, p *channels.Post) error {
	var body string
	var retracted int
	if err := sc.Scan(&p.ChannelID, &p.Seq, &p.PostID, &p.Author, &body, &p.TS, &p.EditedTS, &retracted, &p.Likes, &p.Comments); err != nil {
		return err
	}
	var pc postContent
	if err := json.Unmarshal([]byte(body), &pc); err != nil {
		return fmt.Errorf("post %s content: %w", p.PostID, err)
	}
	p.Text, p.Images, p.Links, p.Retracted = pc.Text, pc.Images, pc.Links, retracted != 0
	return nil
}

// GetPost reads one post, or channels.ErrNotFound.
func (c *ChannelStore) GetPost(ctx context.Context, channelID, postID string) (channels.Post, error) {
	var p channels.Post
	err := scanPost(c.s.read.QueryRowContext(ctx, `SELECT `+postCols+` FROM channel_posts WHERE channel_id = $1 AND post_id = $2`, channelID, postID), &p)
	if errors.Is(err, sql.ErrNoRows) {
		return p, channels.ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("get post %s: %w", postID, err)
	}
	return p, nil
}

// UpdatePost writes an edit or a retraction.
func (c *ChannelStore) UpdatePost(ctx context.Context, p channels.Post) error {
	body, _ := json.Marshal(postContent{p.Text, p.Images, p.Links})
	retracted := 0
	if p.Retracted {
		retracted = 1
	}
	return c.s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE channel_posts SET content = $3, edited_ts = $4, retracted = $5, stream_pos = $6 WHERE channel_id = $1 AND post_id = $2`,
			p.ChannelID, p.PostID, string(body), p.EditedTS, retracted, p.StreamPos)
		if err == nil {
			_, err = tx.ExecContext(ctx, `UPDATE channels SET news_pos = $2 WHERE channel_id = $1 AND news_pos < $2`, p.ChannelID, p.StreamPos)
		}
		if err != nil {
			return fmt.Errorf("update post %s: %w", p.PostID, err)
		}
		return nil
	})
}

// Posts lists posts below the cursor, newest first, on the primary key.
func (c *ChannelStore) Posts(ctx context.Context, channelID string, before int64, limit int) ([]channels.Post, error) {
	q := `SELECT ` + postCols + ` FROM channel_posts WHERE channel_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`
	if before == 0 {
		before = 1<<62 - 1
	}
	rows, err := c.s.read.QueryContext(ctx, q, channelID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("posts of %s: %w", channelID, err)
	}
	defer rows.Close()
	out := []channels.Post{}
	for rows.Next() {
		var p channels.Post
		if err := scanPost(rows, &p); err != nil {
			return nil, fmt.Errorf("posts of %s: %w", channelID, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// SetRead sets (or creates) a read marker.
func (c *ChannelStore) SetRead(ctx context.Context, userID, channelID string, seq int64) error {
	_, err := c.s.write.ExecContext(ctx, `INSERT INTO channel_reads (user_id, channel_id, read_seq) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, channel_id) DO UPDATE SET read_seq = excluded.read_seq`, userID, channelID, seq)
	if err != nil {
		return fmt.Errorf("set read %s %s: %w", userID, channelID, err)
	}
	return nil
}

// DropRead removes a read marker (an unfollow).
func (c *ChannelStore) DropRead(ctx context.Context, userID, channelID string) error {
	_, err := c.s.write.ExecContext(ctx, `DELETE FROM channel_reads WHERE user_id = $1 AND channel_id = $2`, userID, channelID)
	if err != nil {
		return fmt.Errorf("drop read %s %s: %w", userID, channelID, err)
	}
	return nil
}

// Followed lists userID's channels with unread counts and each channel's
// newest post: one query, whatever the number of posts.
func (c *ChannelStore) Followed(ctx context.Context, userID string) ([]channels.Followed, error) {
	rows, err := c.s.read.QueryContext(ctx, `SELECT `+channelNewestCols+`, r.read_seq
		FROM channel_reads r JOIN channels c ON c.channel_id = r.channel_id
		LEFT JOIN channel_posts p ON p.channel_id = c.channel_id AND p.seq = c.seq
		WHERE r.user_id = $1 AND c.deleting = 0 ORDER BY c.channel_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("followed channels of %s: %w", userID, err)
	}
	out, err := scanChannelsNewest(rows, true)
	if err != nil {
		return nil, fmt.Errorf("followed channels of %s: %w", userID, err)
	}
	return out, nil
}

// channelNewestCols are a channel's columns (c) and its newest post's (p,
// NULL when it has none), as scanChannelsNewest reads them.
const channelNewestCols = `c.channel_id, c.owner, c.name, c.avatar_url, c.description, c.editors, c.created_ts, c.seq, c.comments_off,
			p.channel_id, p.seq, p.post_id, p.author, p.content, p.ts, p.edited_ts, p.retracted, p.like_count, p.comment_count`

// scanChannelsNewest reads rows of channelNewestCols, followed by the
// reader's read_seq when withRead (the unread count is then the channel's
// seq past it; without it Unread stays 0), and closes rows.
func scanChannelsNewest(rows *sql.Rows, withRead bool) ([]channels.Followed, error) {
	defer rows.Close()
	out := []channels.Followed{}
	for rows.Next() {
		var f channels.Followed
		var ed string
		var read int64
		var pch, pid, pauthor, pbody sql.NullString
		var pseq, pts, pedit, pret, plikes, pcomments sql.NullInt64
		var off int
		ch := &f.Channel
		dest := []any{&ch.ID, &ch.Owner, &ch.Name, &ch.AvatarURL, &ch.Description, &ed, &ch.CreatedTS, &ch.Seq, &off,
			&pch, &pseq, &pid, &pauthor, &pbody, &pts, &pedit, &pret, &plikes, &pcomments}
		if withRead {
			dest = append(dest, &read)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		ch.CommentsOff = off != 0
		if err := json.Unmarshal([]byte(ed), &ch.Editors); err != nil || ch.Editors == nil {
			ch.Editors = []string{}
		}
		if withRead {
			f.Unread = max(ch.Seq-read, 0)
		}
		if pid.Valid {
			p := &channels.Post{ChannelID: pch.String, Seq: pseq.Int64, PostID: pid.String, Author: pauthor.String, TS: pts.Int64, EditedTS: pedit.Int64, Retracted: pret.Int64 != 0,
				Likes: plikes.Int64, Comments: pcomments.Int64}
			var pc postContent
			if json.Unmarshal([]byte(pbody.String), &pc) == nil {
				p.Text, p.Images, p.Links = pc.Text, pc.Images, pc.Links
			}
			f.Newest = p
		}
		out = append(out, f)
	}
	return out, rows.Err()
}
