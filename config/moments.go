package config

import "fmt"

// Moments configures moments (package moments, issue 12).
type Moments struct {
	// Fanout is "hybrid", "read" (a feed merges friends' posts at read
	// time) or "write" (a post also writes a feed-inbox row per friend who
	// may see it). Zero value means "hybrid": a post of an author with at
	// most PushMaxFriends friends is written to the friends' inboxes, a
	// bigger author's is read at read time, as measured fastest for each
	// size (docs/moments.md).
	Fanout string `yaml:"fanout"`
	// PushMaxFriends is the most friends an author may have for the hybrid
	// to write their post to each friend's inbox. Zero value means 1000:
	// at 200 friends writing cost a few ms per post and made feeds several
	// times faster; at 5,000 it cost hundreds of ms and 280 KB per post.
	PushMaxFriends int `yaml:"push_max_friends"`
	// MaxFriends caps the friends read for one feed, count or post (and so
	// the inbox rows of one post). Zero value means 5000, WeChat's cap on a
	// friend list.
	MaxFriends int `yaml:"max_friends"`
	// MaxPostBytes caps a post's text and image URIs together; a larger
	// post gets 413 M_TOO_LARGE. Zero value means 16384 (16 KiB): a long
	// note, while a post stays one small row every friend's feed reads.
	MaxPostBytes int `yaml:"max_post_bytes"`
	// PostsPerMinute caps one author's new posts; more get 429
	// M_LIMIT_EXCEEDED. Zero value means 10.
	PostsPerMinute int `yaml:"posts_per_minute"`
	// CommentsPerMinute caps one user's comments and replies, over all
	// posts; more get 429. Zero value means 30.
	CommentsPerMinute int `yaml:"comments_per_minute"`
}

func (m *Moments) fillDefaults() {
	if m.Fanout == "" {
		m.Fanout = "hybrid"
	}
	if m.PushMaxFriends <= 0 {
		m.PushMaxFriends = 1000
	}
	if m.MaxFriends <= 0 {
		m.MaxFriends = 5000
	}
	if m.MaxPostBytes <= 0 {
		m.MaxPostBytes = 16384
	}
	if m.PostsPerMinute <= 0 {
		m.PostsPerMinute = 10
	}
	if m.CommentsPerMinute <= 0 {
		m.CommentsPerMinute = 30
	}
}

// checkFanout accepts "", "hybrid", "read" and "write".
func checkFanout(s string) error {
	switch s {
	case "", "hybrid", "read", "write":
		return nil
	}
	return fmt.Errorf("must be hybrid, read or write, not %q", s)
}
