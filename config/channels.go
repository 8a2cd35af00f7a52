package config

// Channels bounds broadcast channel posts (package channels, issue 12).
type Channels struct {
	// MaxPostBytes caps a post's text, image URIs and links together; a
	// larger post gets 413 M_TOO_LARGE. Zero value means 16384 (16 KiB):
	// a long article's text, while a post stays one small row that every
	// follower's sync may carry.
	MaxPostBytes int `yaml:"max_post_bytes"`
	// PostsPerMinute caps new posts to one channel (edits and retractions
	// do not count); beyond it 429 M_LIMIT_EXCEEDED with retry_after_ms.
	// Zero value means 60: a busy newsroom's pace, while a runaway script
	// cannot flood every follower's devices.
	PostsPerMinute int `yaml:"posts_per_minute"`
	// CommentsPerMinute caps one user's new comments, over all channels;
	// beyond it 429 M_LIMIT_EXCEEDED with retry_after_ms. Zero value means
	// 20: faster than a person types, while one account cannot flood a
	// popular post's comments.
	CommentsPerMinute int `yaml:"comments_per_minute"`
}

func (c *Channels) fillDefaults() {
	if c.MaxPostBytes <= 0 {
		c.MaxPostBytes = 16384
	}
	if c.PostsPerMinute <= 0 {
		c.PostsPerMinute = 60
	}
	if c.CommentsPerMinute <= 0 {
		c.CommentsPerMinute = 20
	}
}
