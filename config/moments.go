package config

import "fmt"

// Moments configures moments (package moments, issue 12).
type Moments struct {
	// Fanout is "read" (a feed merges friends' posts at read time) or
	// "write" (a post also writes a feed-inbox row per friend who may see
	// it). Zero value means "read": it measured faster for posting at 200
	// and 5,000 friends and not slower to read (docs/moments.md).
	Fanout string `yaml:"fanout"`
	// MaxFriends caps the friends read for one feed, count or post (and so
	// the inbox rows of one post with write fan-out). Zero value means
	// 5000, WeChat's cap on a friend list.
	MaxFriends int `yaml:"max_friends"`
	// MaxPostBytes caps a post's text and image URIs together; a larger
	// post gets 413 M_TOO_LARGE. Zero value means 16384 (16 KiB): a long
	// note, while a post stays one small row every friend's feed reads.
	MaxPostBytes int `yaml:"max_post_bytes"`
}

func (m *Moments) fillDefaults() {
	if m.Fanout == "" {
		m.Fanout = "read"
	}
	if m.MaxFriends <= 0 {
		m.MaxFriends = 5000
	}
	if m.MaxPostBytes <= 0 {
		m.MaxPostBytes = 16384
	}
}

// checkFanout accepts "", "read" and "write".
func checkFanout(s string) error {
	switch s {
	case "", "read", "write":
		return nil
	}
	return fmt.Errorf("must be read or write, not %q", s)
}
