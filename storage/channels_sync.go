package storage

import (
	"context"
	"fmt"

	"github.com/parley-im/parley/channels"
)

// Reads behind the io.parley.channels section of /sync (inbox/channels.go).

// ChannelNewsPositions returns each channel's newest change on the channel
// stream, read once at start so that syncs find news in memory.
func (c *ChannelStore) ChannelNewsPositions(ctx context.Context) (map[string]int64, error) {
	rows, err := c.s.read.QueryContext(ctx, `SELECT channel_id, news_pos FROM channels WHERE news_pos > 0`)
	if err != nil {
		return nil, fmt.Errorf("channel news positions: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var pos int64
		if err := rows.Scan(&id, &pos); err != nil {
			return nil, fmt.Errorf("channel news positions: %w", err)
		}
		out[id] = pos
	}
	return out, rows.Err()
}

// FollowedReads lists the channels userID follows with their read markers
// (one indexed read of their own channel_reads rows).
func (c *ChannelStore) FollowedReads(ctx context.Context, userID string) ([]channels.ReadMarker, error) {
	rows, err := c.s.read.QueryContext(ctx, `SELECT channel_id, read_seq FROM channel_reads WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("read markers of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []channels.ReadMarker
	for rows.Next() {
		var r channels.ReadMarker
		if err := rows.Scan(&r.ChannelID, &r.ReadSeq); err != nil {
			return nil, fmt.Errorf("read markers of %s: %w", userID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ChannelNews returns, for the channels ids, each channel with its newest
// post, and the posts changed on the channel stream in (since, upto],
// oldest change first, at most limit: two queries, whatever the number of
// channels, followers or posts. Nothing in it depends on who asks, so every
// follower woken by one post can share one read (inbox/channels.go); the
// reader's own part, the read markers, the feed keeps in memory.
func (c *ChannelStore) ChannelNews(ctx context.Context, ids []string, since, upto int64, limit int) ([]channels.Followed, []channels.Post, error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	in, args := inList(ids, 1)
	rows, err := c.s.read.QueryContext(ctx, `SELECT `+channelNewestCols+`
		FROM channels c LEFT JOIN channel_posts p ON p.channel_id = c.channel_id AND p.seq = c.seq
		WHERE c.channel_id IN (`+in+`) ORDER BY c.channel_id`, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("channel news: %w", err)
	}
	fs, err := scanChannelsNewest(rows, false)
	if err != nil {
		return nil, nil, fmt.Errorf("channel news: %w", err)
	}
	in, args = inList(ids, 4)
	rows, err = c.s.read.QueryContext(ctx, `SELECT `+postCols+` FROM channel_posts WHERE stream_pos > $1 AND stream_pos <= $2
		AND channel_id IN (`+in+`) ORDER BY stream_pos LIMIT $3`, append([]any{since, upto, limit}, args...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("channel news: %w", err)
	}
	defer rows.Close()
	var posts []channels.Post
	for rows.Next() {
		var p channels.Post
		if err := scanPost(rows, &p); err != nil {
			return nil, nil, fmt.Errorf("channel news: %w", err)
		}
		posts = append(posts, p)
	}
	return fs, posts, rows.Err()
}

// inList makes the placeholders "$first,$first+1,..." for ids, with ids
// as arguments.
func inList(ids []string, first int) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return placeholders(first, len(ids)), args
}
