// Package channels holds the rules of broadcast channels (issue 12): who may
// create, edit and post, what a post may hold, and how followers keep their
// read position. A post is written once (read fan-out): following is a graph
// edge, and a follower's unread count is the channel's post sequence minus
// the follower's read marker, so a post never costs a row per follower.
//
// Storage implements Store; clientapi only parses requests and maps the
// errors below to Matrix errors.
package channels

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-im/parley/ratelimit"
)

// Errors the API maps to Matrix errors. Each leaves everything unchanged.
var (
	ErrNotFound  = errors.New("channels: not found")
	ErrForbidden = errors.New("channels: forbidden")
	ErrInvalid   = errors.New("channels: invalid")
	ErrBlocked   = errors.New("channels: blocked")
)

// Channel is a broadcast channel. Seq is the sequence of its newest post.
type Channel struct {
	ID          string   `json:"channel_id"`
	Owner       string   `json:"owner"`
	Name        string   `json:"name"`
	AvatarURL   string   `json:"avatar_url,omitempty"`
	Description string   `json:"description,omitempty"`
	Editors     []string `json:"editors"`
	CreatedTS   int64    `json:"created_ts"`
	// CommentsOff is the owner's switch: when set, new comments are refused
	// (existing ones stay listed, and may still be deleted).
	CommentsOff bool  `json:"comments_off"`
	Seq         int64 `json:"-"`
}

// Post is one channel post. A retracted post keeps its row (so devices
// that have it learn of the retraction) but loses its content.
type Post struct {
	ChannelID string   `json:"channel_id"`
	PostID    string   `json:"post_id"`
	Seq       int64    `json:"seq"`
	Author    string   `json:"author"`
	Text      string   `json:"text,omitempty"`
	Images    []string `json:"images,omitempty"`
	Links     []string `json:"links,omitempty"`
	TS        int64    `json:"origin_server_ts"`
	EditedTS  int64    `json:"edited_ts,omitempty"`
	Retracted bool     `json:"retracted,omitempty"`
	// Likes and Comments count the post's likes and comments; they are kept
	// on the post's row, so a page of posts carries them for free.
	Likes    int64 `json:"like_count"`
	Comments int64 `json:"comment_count"`
	// LikedByMe says whether the reader likes the post: set in a reader's
	// list of posts, absent in /sync, where one rendering serves every
	// follower.
	LikedByMe *bool `json:"liked_by_me,omitempty"`
	// StreamPos is the channel-stream position of the post's latest change
	// (post, edit or retraction); /sync uses it, clients do not.
	StreamPos int64 `json:"-"`
}

// Followed is a followed channel with the follower's unread count.
type Followed struct {
	Channel Channel `json:"channel"`
	Unread  int64   `json:"unread_count"`
	Newest  *Post   `json:"newest_post,omitempty"`
}

// ReadMarker is a follower's read marker on one followed channel: the
// sequence of the newest post they have read.
type ReadMarker struct {
	ChannelID string
	ReadSeq   int64
}

// Store keeps channels, posts and read markers. Every write is atomic.
type Store interface {
	CreateChannel(ctx context.Context, c Channel) error
	GetChannel(ctx context.Context, id string) (Channel, error) // ErrNotFound
	UpdateChannel(ctx context.Context, c Channel) error
	// DeleteChannel drops a channel's rows: posts, likes, comments, read
	// markers and the channel.
	DeleteChannel(ctx context.Context, id string) error
	// MarkDeleting hides a channel from every read (GetChannel answers
	// ErrNotFound) until DeleteChannel; ErrNotFound if absent or going.
	MarkDeleting(ctx context.Context, id string) error
	// Deleting lists channels marked deleting and not yet dropped.
	Deleting(ctx context.Context) ([]string, error)
	// AddPost gives p the channel's next sequence and stores it.
	AddPost(ctx context.Context, p Post) (Post, error)
	GetPost(ctx context.Context, channelID, postID string) (Post, error)
	UpdatePost(ctx context.Context, p Post) error
	// Posts lists posts with Seq < before (0: from the newest), newest first.
	Posts(ctx context.Context, channelID string, before int64, limit int) ([]Post, error)
	// SetRead sets userID's read marker; created marks a new follow.
	SetRead(ctx context.Context, userID, channelID string, seq int64) error
	DropRead(ctx context.Context, userID, channelID string) error
	Followed(ctx context.Context, userID string) ([]Followed, error)
	SocialStore
}

// Graph is the part of the relationship graph channels use: the follow
// edge to the channel's node, and blocks between a follower and the owner.
type Graph interface {
	Follow(ctx context.Context, from, to string) (bool, error)
	Unfollow(ctx context.Context, from, to string) (bool, error)
	IsBlocked(ctx context.Context, a, b string) (bool, error)
}

// Limits bound what a post may hold; zero values take the defaults.
type Limits struct {
	MaxPostBytes int // default 16 KiB
	MaxImages    int // default 9
	MaxLinks     int // default 10
	MaxEditors   int // default 50
	// PostsPerMinute caps posts to one channel (edits and retractions do
	// not count); default 60. Beyond it Post answers a *ratelimit.Error.
	PostsPerMinute int
	// CommentsPerMinute caps one user's comments, over all channels;
	// default 20. Beyond it Comment answers a *ratelimit.Error.
	CommentsPerMinute int
	// MaxCommentBytes caps a comment's text; default 2048.
	MaxCommentBytes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxPostBytes <= 0 {
		l.MaxPostBytes = 16 << 10
	}
	if l.MaxImages <= 0 {
		l.MaxImages = 9
	}
	if l.MaxLinks <= 0 {
		l.MaxLinks = 10
	}
	if l.MaxEditors <= 0 {
		l.MaxEditors = 50
	}
	if l.PostsPerMinute <= 0 {
		l.PostsPerMinute = 60
	}
	if l.CommentsPerMinute <= 0 {
		l.CommentsPerMinute = 20
	}
	if l.MaxCommentBytes <= 0 {
		l.MaxCommentBytes = 2048
	}
	return l
}

// Service applies the channel rules.
type Service struct {
	store    Store
	graph    Graph
	limits   Limits
	server   string
	now      func() time.Time
	posts    *ratelimit.Limiter // posts per minute per channel
	comments *ratelimit.Limiter // comments per minute per user
	// stream, when set, orders post changes for /sync (SetStream); static
	// after setup.
	stream Stream
	// deletions signals RunDeletions that a channel was marked deleting.
	deletions chan struct{}
}

// Stream gives each post change a position on the channel stream and
// publishes it once written (inbox.ChannelFeed implements it). Write runs
// f with the next position; on success the position becomes visible to
// syncs and the channel's waiting followers wake. Follows tells it that
// user's followed channels or read markers on them changed.
type Stream interface {
	Write(ctx context.Context, channelID string, f func(pos int64) error) error
	Follows(user string)
}

// SetStream sets the channel stream; call before serving.
func (s *Service) SetStream(st Stream) { s.stream = st }

// write runs f under the stream (position 0 without one).
func (s *Service) write(ctx context.Context, channelID string, f func(pos int64) error) error {
	if s.stream == nil {
		return f(0)
	}
	return s.stream.Write(ctx, channelID, f)
}

func (s *Service) followsChanged(user string) {
	if s.stream != nil {
		s.stream.Follows(user)
	}
}

// Limiters are the service's rate limiters, for the owner of the server's
// schedule to sweep (ratelimit.Limiter.Sweep).
func (s *Service) Limiters() []*ratelimit.Limiter { return []*ratelimit.Limiter{s.posts, s.comments} }

// New builds a Service for server (the local server name).
func New(store Store, g Graph, server string, l Limits) *Service {
	l = l.withDefaults()
	return &Service{store: store, graph: g, limits: l, server: server, now: time.Now, deletions: make(chan struct{}, 1),
		posts:    ratelimit.PerMinute(l.PostsPerMinute),
		comments: ratelimit.PerMinute(l.CommentsPerMinute)}
}

// Node is the graph node of a channel: followers follow it.
func Node(channelID string) string { return channelID }

// ValidID reports whether id has a channel ID's shape: "~local:server".
func ValidID(id string) bool {
	if len(id) < 4 || len(id) > 255 || id[0] != '~' {
		return false
	}
	i := strings.IndexByte(id, ':')
	return i > 1 && i < len(id)-1 && utf8.ValidString(id)
}

func newID(prefix, server string) string {
	var b [9]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported systems
	if server == "" {
		return prefix + hex.EncodeToString(b[:])
	}
	return prefix + hex.EncodeToString(b[:]) + ":" + server
}

// Meta is what a channel's owner sets.
type Meta struct {
	Name        *string
	AvatarURL   *string
	Description *string
	Editors     *[]string
	CommentsOff *bool
}

func (s *Service) checkMeta(m Meta, owner string) error {
	if m.Name != nil && (strings.TrimSpace(*m.Name) == "" || len(*m.Name) > 255 || !utf8.ValidString(*m.Name)) {
		return fmt.Errorf("%w: name must be 1 to 255 bytes", ErrInvalid)
	}
	if m.AvatarURL != nil && *m.AvatarURL != "" && !validMXC(*m.AvatarURL) {
		return fmt.Errorf("%w: avatar_url must be an mxc:// URI", ErrInvalid)
	}
	if m.Description != nil && (len(*m.Description) > 4096 || !utf8.ValidString(*m.Description)) {
		return fmt.Errorf("%w: description must be at most 4096 bytes", ErrInvalid)
	}
	if m.Editors != nil {
		if len(*m.Editors) > s.limits.MaxEditors {
			return fmt.Errorf("%w: at most %d editors", ErrInvalid, s.limits.MaxEditors)
		}
		for _, e := range *m.Editors {
			if !validUserID(e) || e == owner {
				return fmt.Errorf("%w: bad editor %q", ErrInvalid, e)
			}
		}
	}
	return nil
}

func validMXC(u string) bool {
	rest, ok := strings.CutPrefix(u, "mxc://")
	if !ok {
		return false
	}
	i := strings.IndexByte(rest, '/')
	return i > 0 && i < len(rest)-1 && len(u) <= 255
}

func validUserID(u string) bool {
	i := strings.IndexByte(u, ':')
	return len(u) <= 255 && len(u) > 3 && u[0] == '@' && i > 1 && i < len(u)-1
}

// Create makes a channel owned by owner.
func (s *Service) Create(ctx context.Context, owner string, m Meta) (Channel, error) {
	if m.Name == nil {
		return Channel{}, fmt.Errorf("%w: name is required", ErrInvalid)
	}
	if err := s.checkMeta(m, owner); err != nil {
		return Channel{}, err
	}
	c := Channel{ID: newID("~", s.server), Owner: owner, Name: *m.Name, CreatedTS: s.now().UnixMilli(), Editors: []string{}}
	apply(&c, m)
	if err := s.store.CreateChannel(ctx, c); err != nil {
		return Channel{}, err
	}
	return c, nil
}

func apply(c *Channel, m Meta) {
	if m.Name != nil {
		c.Name = *m.Name
	}
	if m.AvatarURL != nil {
		c.AvatarURL = *m.AvatarURL
	}
	if m.Description != nil {
		c.Description = *m.Description
	}
	if m.Editors != nil {
		c.Editors = append([]string{}, *m.Editors...)
	}
	if m.CommentsOff != nil {
		c.CommentsOff = *m.CommentsOff
	}
}

// Get returns a channel.
func (s *Service) Get(ctx context.Context, id string) (Channel, error) {
	if !ValidID(id) {
		return Channel{}, fmt.Errorf("%w: bad channel ID", ErrInvalid)
	}
	return s.store.GetChannel(ctx, id)
}

func (s *Service) owned(ctx context.Context, user, id string) (Channel, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return Channel{}, err
	}
	if c.Owner != user {
		return Channel{}, fmt.Errorf("%w: only the owner may do that", ErrForbidden)
	}
	return c, nil
}

// Update changes a channel's metadata; only its owner may.
func (s *Service) Update(ctx context.Context, user, id string, m Meta) (Channel, error) {
	c, err := s.owned(ctx, user, id)
	if err != nil {
		return Channel{}, err
	}
	if err := s.checkMeta(m, c.Owner); err != nil {
		return Channel{}, err
	}
	apply(&c, m)
	if err := s.store.UpdateChannel(ctx, c); err != nil {
		return Channel{}, err
	}
	return c, nil
}

// Content is a post's content.
type Content struct {
	Text   string
	Images []string
	Links  []string
}

func (s *Service) checkContent(c Content) error {
	size := len(c.Text)
	for _, x := range c.Images {
		size += len(x)
	}
	for _, x := range c.Links {
		size += len(x)
	}
	switch {
	case c.Text == "" && len(c.Images) == 0 && len(c.Links) == 0:
		return fmt.Errorf("%w: a post needs text, images or links", ErrInvalid)
	case !utf8.ValidString(c.Text):
		return fmt.Errorf("%w: text must be UTF-8", ErrInvalid)
	case size > s.limits.MaxPostBytes:
		return fmt.Errorf("%w: post is larger than %d bytes", ErrTooLarge, s.limits.MaxPostBytes)
	case len(c.Images) > s.limits.MaxImages:
		return fmt.Errorf("%w: at most %d images", ErrInvalid, s.limits.MaxImages)
	case len(c.Links) > s.limits.MaxLinks:
		return fmt.Errorf("%w: at most %d links", ErrInvalid, s.limits.MaxLinks)
	}
	for _, im := range c.Images {
		if !validMXC(im) {
			return fmt.Errorf("%w: images must be mxc:// URIs", ErrInvalid)
		}
	}
	for _, l := range c.Links {
		if !(strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://")) || len(l) > 2048 {
			return fmt.Errorf("%w: links must be http(s) URLs", ErrInvalid)
		}
	}
	return nil
}

// ErrTooLarge: a post over the size limit.
var ErrTooLarge = errors.New("channels: too large")

func (s *Service) mayPost(ctx context.Context, user, id string) (Channel, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return Channel{}, err
	}
	if c.Owner == user {
		return c, nil
	}
	for _, e := range c.Editors {
		if e == user {
			return c, nil
		}
	}
	return Channel{}, fmt.Errorf("%w: only the owner and editors may post", ErrForbidden)
}

// Post adds a post: one row, whatever the number of followers.
func (s *Service) Post(ctx context.Context, user, id string, ct Content) (Post, error) {
	if err := s.checkContent(ct); err != nil {
		return Post{}, err
	}
	if _, err := s.mayPost(ctx, user, id); err != nil {
		return Post{}, err
	}
	if err := s.posts.Take("posts to this channel", id, s.now()); err != nil {
		return Post{}, err
	}
	var p Post
	err := s.write(ctx, id, func(pos int64) error {
		var err error
		p, err = s.store.AddPost(ctx, Post{ChannelID: id, PostID: newID("$", ""), Author: user,
			Text: ct.Text, Images: ct.Images, Links: ct.Links, TS: s.now().UnixMilli(), StreamPos: pos})
		return err
	})
	if err != nil {
		return Post{}, err
	}
	return p, nil
}

func (s *Service) editable(ctx context.Context, user, id, postID string) (Post, error) {
	if _, err := s.mayPost(ctx, user, id); err != nil {
		return Post{}, err
	}
	p, err := s.store.GetPost(ctx, id, postID)
	if err != nil {
		return Post{}, err
	}
	if p.Retracted {
		return Post{}, fmt.Errorf("%w: post was retracted", ErrNotFound)
	}
	return p, nil
}

// Edit replaces a post's content; the owner and editors may.
func (s *Service) Edit(ctx context.Context, user, id, postID string, ct Content) (Post, error) {
	if err := s.checkContent(ct); err != nil {
		return Post{}, err
	}
	p, err := s.editable(ctx, user, id, postID)
	if err != nil {
		return Post{}, err
	}
	p.Text, p.Images, p.Links, p.EditedTS = ct.Text, ct.Images, ct.Links, s.now().UnixMilli()
	if err := s.write(ctx, id, func(pos int64) error { p.StreamPos = pos; return s.store.UpdatePost(ctx, p) }); err != nil {
		return Post{}, err
	}
	return p, nil
}

// Retract blanks a post; its row stays so that devices holding it see the
// retraction in the post list.
func (s *Service) Retract(ctx context.Context, user, id, postID string) error {
	p, err := s.editable(ctx, user, id, postID)
	if err != nil {
		return err
	}
	p.Text, p.Images, p.Links, p.Retracted, p.EditedTS = "", nil, nil, true, s.now().UnixMilli()
	if err := s.write(ctx, id, func(pos int64) error { p.StreamPos = pos; return s.store.UpdatePost(ctx, p) }); err != nil {
		return err
	}
	return nil
}

// Posts lists a channel's posts newest first; before is a cursor (0 for the
// newest page), each with whether user likes it. Anyone not blocked by the
// owner may read a channel.
func (s *Service) Posts(ctx context.Context, user, id string, before int64, limit int) ([]Post, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if before < 0 {
		return nil, fmt.Errorf("%w: bad cursor", ErrInvalid)
	}
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	if user != c.Owner {
		if b, err := s.graph.IsBlocked(ctx, user, c.Owner); err != nil {
			return nil, err
		} else if b {
			return nil, fmt.Errorf("%w: blocked", ErrBlocked)
		}
	}
	ps, err := s.store.Posts(ctx, id, before, limit)
	if err != nil || len(ps) == 0 {
		return ps, err
	}
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.PostID
	}
	liked, err := s.store.LikedAmong(ctx, id, user, ids)
	if err != nil {
		return nil, err
	}
	for i := range ps {
		l := liked[ps[i].PostID]
		ps[i].LikedByMe = &l
	}
	return ps, nil
}

// Follow makes user follow the channel: a graph edge to the channel's node,
// and a read marker at the newest post (a new follower starts with no
// unread posts). A block either way between user and owner refuses it.
func (s *Service) Follow(ctx context.Context, user, id string) error {
	c, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if user != c.Owner {
		if b, err := s.graph.IsBlocked(ctx, user, c.Owner); err != nil {
			return err
		} else if b {
			return fmt.Errorf("%w: blocked", ErrBlocked)
		}
	}
	if _, err := s.graph.Follow(ctx, user, Node(id)); err != nil {
		return err
	}
	defer s.followsChanged(user)
	return s.store.SetRead(ctx, user, id, c.Seq)
}

// Unfollow ends user's follow.
func (s *Service) Unfollow(ctx context.Context, user, id string) error {
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	if _, err := s.graph.Unfollow(ctx, user, Node(id)); err != nil {
		return err
	}
	defer s.followsChanged(user)
	return s.store.DropRead(ctx, user, id)
}

// Mine lists the channels user follows with unread counts.
func (s *Service) Mine(ctx context.Context, user string) ([]Followed, error) {
	return s.store.Followed(ctx, user)
}

// MarkRead moves user's read marker to the channel's newest post.
func (s *Service) MarkRead(ctx context.Context, user, id string) error {
	c, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	fs, err := s.store.Followed(ctx, user)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if f.Channel.ID == id {
			defer s.followsChanged(user) // the feed caches read markers
			return s.store.SetRead(ctx, user, id, c.Seq)
		}
	}
	return fmt.Errorf("%w: you do not follow this channel", ErrNotFound)
}

// ErrUnavailable: the relationship graph cannot be reached; nothing changed.
var ErrUnavailable = errors.New("channels: graph unavailable")
