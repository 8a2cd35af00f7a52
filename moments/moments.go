// Package moments holds the rules of moments (朋友圈, issue 12): a
// friends-only feed of short posts with WeChat's visibility rules.
//
//   - A post is seen by its author and by the author's friends that its
//     visibility admits: all friends, only the listed friends, or all
//     friends but the listed ones.
//   - A like or a comment is seen by a viewer of the post only if the
//     viewer is friends with its author (or wrote it); the poster sees all
//     on their own post. So two friends of the poster who are not friends
//     with each other never see each other's comments.
//   - Friendship is evaluated at read time against the relationship graph,
//     so an unfriend or a block hides the ex-friend's posts at once and for
//     the past, both ways. One read asks the graph for the viewer's friends
//     once and checks everything against that set.
//
// Storage implements Store; clientapi only parses requests and maps the
// errors below to Matrix errors; inbox (MomentsFeed) carries the red dot to
// /sync through the News hook.
package moments

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parley-im/parley/ratelimit"
)

// Errors the API maps to Matrix errors. Each leaves everything unchanged.
var (
	ErrNotFound  = errors.New("moments: not found")
	ErrForbidden = errors.New("moments: forbidden")
	ErrInvalid   = errors.New("moments: invalid")
	ErrTooLarge  = errors.New("moments: too large")
	// ErrUnavailable: the relationship graph cannot be reached; nothing changed.
	ErrUnavailable = errors.New("moments: graph unavailable")
)

// Visibility says which of the author's friends see a post.
type Visibility string

const (
	// AllFriends: every friend of the author.
	AllFriends Visibility = "friends"
	// Only: only the friends in the post's list.
	Only Visibility = "only"
	// Except: every friend but those in the post's list.
	Except Visibility = "except"
)

// Post is one moment. Users is the visibility list; only the author is
// shown it.
type Post struct {
	PostID     string     `json:"post_id"`
	Seq        int64      `json:"seq"`
	Author     string     `json:"sender"`
	Text       string     `json:"text,omitempty"`
	Images     []string   `json:"images,omitempty"`
	Visibility Visibility `json:"visibility"`
	Users      []string   `json:"users,omitempty"`
	TS         int64      `json:"origin_server_ts"`
	// Pushed: the post has feed-inbox rows (write fan-out); readers do
	// not pull it from its author's timeline.
	Pushed bool `json:"-"`
	// Likes and Comments are filled for a viewer by the Service, already
	// filtered by WeChat's rule.
	Likes    []Like    `json:"likes"`
	Comments []Comment `json:"comments"`
}

// Like is one user's like of a post.
type Like struct {
	PostID string `json:"-"`
	UserID string `json:"sender"`
	TS     int64  `json:"origin_server_ts"`
}

// Comment is a comment on a post, or a reply to another comment.
type Comment struct {
	CommentID   string `json:"comment_id"`
	PostID      string `json:"-"`
	Author      string `json:"sender"`
	Text        string `json:"text"`
	ReplyTo     string `json:"reply_to,omitempty"`      // the comment answered
	ReplyToUser string `json:"reply_to_user,omitempty"` // its author
	TS          int64  `json:"origin_server_ts"`
	Seq         int64  `json:"-"`
}

// Notification kinds.
const (
	KindLike    = "like"    // someone liked my post
	KindComment = "comment" // someone commented on my post
	KindReply   = "reply"   // someone replied to my comment
)

// Notification tells a user of a like or comment on their post, or a reply
// to their comment.
type Notification struct {
	Seq       int64  `json:"-"`
	UserID    string `json:"-"` // recipient
	Kind      string `json:"kind"`
	PostID    string `json:"post_id"`
	From      string `json:"sender"`
	CommentID string `json:"comment_id,omitempty"`
	Text      string `json:"text,omitempty"`
	TS        int64  `json:"origin_server_ts"`
}

// Store keeps posts, likes, comments, notifications and read markers.
// Every write is atomic. Seq values come from one counter, so posts,
// comments and notifications are ordered together.
type Store interface {
	// AddPost gives p the next sequence and stores it; inbox lists the
	// users given a feed-inbox row (write fan-out), nil for none.
	AddPost(ctx context.Context, p Post, inbox []string) (Post, error)
	GetPost(ctx context.Context, postID string) (Post, error) // ErrNotFound
	// DeletePost removes the post with its likes, comments, inbox rows and
	// notifications.
	DeletePost(ctx context.Context, postID string) error
	// PostsBy lists posts of authors with after < Seq < before, newest
	// first (before 0: from the newest); pulledOnly leaves out pushed posts.
	PostsBy(ctx context.Context, authors []string, after, before int64, limit int, pulledOnly bool) ([]Post, error)
	// PullAuthors lists the authors of posts that were not pushed.
	PullAuthors(ctx context.Context) ([]string, error)
	// InboxPosts lists the posts in user's feed inbox (write fan-out) with
	// after < Seq < before, newest first.
	InboxPosts(ctx context.Context, user string, after, before int64, limit int) ([]Post, error)
	// Reactions lists the likes and comments of posts, oldest first.
	Reactions(ctx context.Context, postIDs []string) ([]Like, []Comment, error)
	// AddLike stores a like and its notification (n nil: none); false when
	// the user liked the post already. ErrNotFound when the post is gone.
	AddLike(ctx context.Context, l Like, n *Notification) (bool, error)
	RemoveLike(ctx context.Context, postID, userID string) (bool, error)
	// AddComment stores c with its notifications; ErrNotFound when the
	// post is gone (checked in the same statement).
	AddComment(ctx context.Context, c Comment, ns []Notification) (Comment, error)
	GetComment(ctx context.Context, commentID string) (Comment, error)
	DeleteComment(ctx context.Context, commentID string) error
	// Notifications lists user's notifications with Seq < before, newest first.
	Notifications(ctx context.Context, user string, before int64, limit int) ([]Notification, error)
	// CountNotifications counts user's notifications with Seq > after.
	CountNotifications(ctx context.Context, user string, after int64) (int, error)
	// Reads returns user's read markers (0, 0 when none).
	Reads(ctx context.Context, user string) (feed, notes int64, err error)
	// SetReads raises user's markers to the given values (a lower value
	// leaves a marker as it is).
	SetReads(ctx context.Context, user string, feed, notes int64) error
	// NewestSeq is the counter's value.
	NewestSeq(ctx context.Context) (int64, error)
}

// Graph is the part of the relationship graph moments use.
type Graph interface {
	// Friends lists userID's friends, at most max.
	Friends(ctx context.Context, userID string, max int) ([]string, error)
}

// News is told of changes that move users' red dots, so /sync can carry
// them (inbox.MomentsFeed); every method is cheap and in memory.
type News interface {
	// Changed says the moments counts of users may have changed.
	Changed(users []string)
}

// Fan-out modes.
const (
	FanoutRead  = "read"
	FanoutWrite = "write"
	// FanoutHybrid pushes the posts of authors with at most PushMaxFriends
	// friends into feed inboxes and leaves bigger authors' posts to be
	// pulled at read time; a feed merges the two.
	FanoutHybrid = "hybrid"
)

// Config sets limits; zero values take the defaults.
type Config struct {
	MaxPostBytes    int // text and image URIs together; default 16 KiB
	MaxImages       int // default 9
	MaxCommentBytes int // default 2 KiB
	// MaxFriends caps the friends read for one feed or one post; default
	// 5000 (WeChat's cap on a friend list).
	MaxFriends int
	// Fanout is FanoutHybrid (default), FanoutRead or FanoutWrite.
	Fanout string
	// PushMaxFriends is the most friends an author may have for the
	// hybrid to push their post; default 1000.
	PushMaxFriends int
	// PostsPerMinute caps one author's new posts; default 10. Beyond it
	// Post answers a *ratelimit.Error and stores nothing.
	PostsPerMinute int
	// CommentsPerMinute caps one user's comments and replies, over all
	// posts; default 30. Beyond it Comment answers a *ratelimit.Error.
	CommentsPerMinute int
}

func (c Config) withDefaults() Config {
	if c.MaxPostBytes <= 0 {
		c.MaxPostBytes = 16 << 10
	}
	if c.MaxImages <= 0 {
		c.MaxImages = 9
	}
	if c.MaxCommentBytes <= 0 {
		c.MaxCommentBytes = 2 << 10
	}
	if c.MaxFriends <= 0 {
		c.MaxFriends = 5000
	}
	if c.Fanout == "" {
		c.Fanout = FanoutHybrid
	}
	if c.PushMaxFriends <= 0 {
		c.PushMaxFriends = 1000
	}
	if c.PostsPerMinute <= 0 {
		c.PostsPerMinute = 10
	}
	if c.CommentsPerMinute <= 0 {
		c.CommentsPerMinute = 30
	}
	return c
}

// Service applies the moments rules.
type Service struct {
	store Store
	graph Graph
	cfg   Config
	now   func() time.Time
	news  News // static after SetNews; nil for none

	posts    *ratelimit.Limiter // new posts per author
	comments *ratelimit.Limiter // comments and replies per user

	mu      sync.Mutex          // guards pullers
	pullers map[string]struct{} // hybrid: authors with pulled posts; nil until loaded
}

// New builds a Service.
func New(store Store, g Graph, cfg Config) *Service {
	cfg = cfg.withDefaults()
	return &Service{store: store, graph: g, cfg: cfg, now: time.Now,
		posts: ratelimit.PerMinute(cfg.PostsPerMinute), comments: ratelimit.PerMinute(cfg.CommentsPerMinute)}
}

// Limiters are the service's rate limiters, for the owner of the server's
// schedule to sweep (ratelimit.Limiter.Sweep).
func (s *Service) Limiters() []*ratelimit.Limiter { return []*ratelimit.Limiter{s.posts, s.comments} }

// SetNews sets the red-dot hook; call before serving.
func (s *Service) SetNews(n News) { s.news = n }

// Fanout reports the fan-out mode in use.
func (s *Service) Fanout() string { return s.cfg.Fanout }

func (s *Service) changed(users ...string) {
	if s.news != nil && len(users) > 0 {
		s.news.Changed(users)
	}
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported systems
	return prefix + hex.EncodeToString(b[:])
}

// ValidID reports whether id could be a post or comment ID: 1 to 255 bytes
// of printable ASCII without '/'.
func ValidID(id string) bool {
	if id == "" || len(id) > 255 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == '/' {
			return false
		}
	}
	return true
}

func validMXC(u string) bool {
	rest, ok := strings.CutPrefix(u, "mxc://")
	if !ok {
		return false
	}
	i := strings.IndexByte(rest, '/')
	return i > 0 && i < len(rest)-1 && len(u) <= 255 && !strings.ContainsAny(rest[i+1:], "/?#")
}

func validUserID(u string) bool {
	i := strings.IndexByte(u, ':')
	return len(u) <= 255 && len(u) > 3 && u[0] == '@' && i > 1 && i < len(u)-1
}

// friendSet is a viewer's friends, read once per request.
type friendSet map[string]struct{}

func (f friendSet) has(u string) bool { _, ok := f[u]; return ok }

func (s *Service) friends(ctx context.Context, user string) ([]string, friendSet, error) {
	ids, err := s.graph.Friends(ctx, user, s.cfg.MaxFriends)
	if err != nil {
		return nil, nil, err
	}
	set := make(friendSet, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	return ids, set, nil
}

// Draft is what a user posts.
type Draft struct {
	Text       string
	Images     []string
	Visibility Visibility
	Users      []string
}

func (s *Service) checkDraft(d *Draft) error {
	size := len(d.Text)
	for _, im := range d.Images {
		size += len(im)
	}
	for _, u := range d.Users {
		size += len(u)
	}
	switch {
	case d.Text == "" && len(d.Images) == 0:
		return fmt.Errorf("%w: a post needs text or images", ErrInvalid)
	case !utf8.ValidString(d.Text):
		return fmt.Errorf("%w: text must be UTF-8", ErrInvalid)
	case len(d.Images) > s.cfg.MaxImages:
		return fmt.Errorf("%w: at most %d images", ErrInvalid, s.cfg.MaxImages)
	case size > s.cfg.MaxPostBytes:
		return fmt.Errorf("%w: post is larger than %d bytes", ErrTooLarge, s.cfg.MaxPostBytes)
	}
	for _, im := range d.Images {
		if !validMXC(im) {
			return fmt.Errorf("%w: images must be mxc:// URIs", ErrInvalid)
		}
	}
	if d.Visibility == "" {
		d.Visibility = AllFriends
	}
	switch d.Visibility {
	case AllFriends:
		if len(d.Users) > 0 {
			return fmt.Errorf("%w: users is only for the visibility only or except", ErrInvalid)
		}
	case Only, Except:
		if len(d.Users) == 0 {
			return fmt.Errorf("%w: visibility %s needs a list of friends in users", ErrInvalid, d.Visibility)
		}
	default:
		return fmt.Errorf("%w: visibility must be friends, only or except", ErrInvalid)
	}
	seen := make(map[string]struct{}, len(d.Users))
	for _, u := range d.Users {
		if !validUserID(u) {
			return fmt.Errorf("%w: bad user ID %q in users", ErrInvalid, u)
		}
		if _, dup := seen[u]; dup {
			return fmt.Errorf("%w: %s is listed twice", ErrInvalid, u)
		}
		seen[u] = struct{}{}
	}
	return nil
}

// Post stores a new moment. Lists must name friends of the author. With
// read fan-out it is one row whatever the number of friends; with write
// fan-out one more row per friend who may see it.
func (s *Service) Post(ctx context.Context, author string, d Draft) (Post, error) {
	if err := s.checkDraft(&d); err != nil {
		return Post{}, err
	}
	ids, set, err := s.friends(ctx, author)
	if err != nil {
		return Post{}, err
	}
	for _, u := range d.Users {
		if !set.has(u) {
			return Post{}, fmt.Errorf("%w: %s is not your friend", ErrInvalid, u)
		}
	}
	p := Post{PostID: newID("$m"), Author: author, Text: d.Text, Images: d.Images, Visibility: d.Visibility,
		Users: d.Users, TS: s.now().UnixMilli()}
	audience := make([]string, 0, len(ids))
	for _, f := range ids {
		if listAdmits(p, f) {
			audience = append(audience, f)
		}
	}
	if err := s.posts.Take("moments posts", author, s.now()); err != nil {
		return Post{}, err
	}
	var inbox []string
	push := s.cfg.Fanout == FanoutWrite || (s.cfg.Fanout == FanoutHybrid && len(ids) <= s.cfg.PushMaxFriends)
	if push {
		inbox = append(audience, author)
	} else if s.cfg.Fanout == FanoutHybrid {
		if err := s.loadPullers(ctx); err != nil {
			return Post{}, err
		}
	}
	if p, err = s.store.AddPost(ctx, p, inbox); err != nil {
		return Post{}, err
	}
	if !push && s.cfg.Fanout == FanoutHybrid {
		s.mu.Lock()
		s.pullers[author] = struct{}{}
		s.mu.Unlock()
	}
	s.changed(audience...)
	p.Likes, p.Comments = []Like{}, []Comment{}
	return p, nil
}

// listAdmits applies a post's visibility list to a friend of its author.
func listAdmits(p Post, friend string) bool {
	switch p.Visibility {
	case Only:
		return contains(p.Users, friend)
	case Except:
		return !contains(p.Users, friend)
	}
	return true
}

func contains(list []string, x string) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}

// visible reports whether viewer, whose friends are set, may see p.
func visible(p Post, viewer string, set friendSet) bool {
	if p.Author == viewer {
		return true
	}
	return set.has(p.Author) && listAdmits(p, viewer)
}

// Delete removes a post everywhere; only its author may.
func (s *Service) Delete(ctx context.Context, user, postID string) error {
	p, err := s.getPost(ctx, postID)
	if err != nil {
		return err
	}
	if p.Author != user {
		return fmt.Errorf("%w: only the author may delete a post", ErrForbidden)
	}
	if err := s.store.DeletePost(ctx, postID); err != nil {
		return err
	}
	if ids, _, err := s.friends(ctx, user); err == nil { // the red dot may drop
		s.changed(ids...)
	}
	return nil
}

func (s *Service) getPost(ctx context.Context, postID string) (Post, error) {
	if !ValidID(postID) {
		return Post{}, fmt.Errorf("%w: bad post ID", ErrInvalid)
	}
	return s.store.GetPost(ctx, postID)
}

// seen returns the post if viewer may see it, else ErrNotFound (a post one
// may not see is not there, so its existence does not leak).
func (s *Service) seen(ctx context.Context, viewer, postID string) (Post, friendSet, error) {
	p, err := s.getPost(ctx, postID)
	if err != nil {
		return Post{}, nil, err
	}
	_, set, err := s.friends(ctx, viewer)
	if err != nil {
		return Post{}, nil, err
	}
	if !visible(p, viewer, set) {
		return Post{}, nil, ErrNotFound
	}
	return p, set, nil
}

// Get returns one post as viewer sees it.
func (s *Service) Get(ctx context.Context, viewer, postID string) (Post, error) {
	p, set, err := s.seen(ctx, viewer, postID)
	if err != nil {
		return Post{}, err
	}
	ps := []Post{p}
	if err := s.attach(ctx, viewer, set, ps); err != nil {
		return Post{}, err
	}
	return redact(ps[0], viewer), nil
}

// redact hides the visibility list from everyone but the author.
func redact(p Post, viewer string) Post {
	if p.Author != viewer {
		p.Users = nil
	}
	return p
}

// attach fills the posts' likes and comments that viewer may see: all on
// viewer's own posts, else those by viewer and viewer's friends.
func (s *Service) attach(ctx context.Context, viewer string, set friendSet, ps []Post) error {
	if len(ps) == 0 {
		return nil
	}
	ids := make([]string, len(ps))
	at := make(map[string]int, len(ps))
	for i := range ps {
		ids[i] = ps[i].PostID
		at[ps[i].PostID] = i
		ps[i].Likes, ps[i].Comments = []Like{}, []Comment{}
	}
	likes, comments, err := s.store.Reactions(ctx, ids)
	if err != nil {
		return err
	}
	shows := func(p *Post, who string) bool { return p.Author == viewer || who == viewer || set.has(who) }
	for _, l := range likes {
		if i, ok := at[l.PostID]; ok && shows(&ps[i], l.UserID) {
			ps[i].Likes = append(ps[i].Likes, l)
		}
	}
	for _, c := range comments {
		if i, ok := at[c.PostID]; ok && shows(&ps[i], c.Author) {
			ps[i].Comments = append(ps[i].Comments, c)
		}
	}
	return nil
}

// Page is a feed page: posts newest first, and the cursor of the next page
// ("" at the end).
type Page struct {
	Posts []Post
	Next  int64
}

// pageOf reads up to limit posts visible to viewer from fetch, which lists
// posts below a cursor newest first. It reads in batches, since some posts
// may be hidden from the viewer.
func pageOf(viewer string, set friendSet, before int64, limit int,
	fetch func(before int64, n int) ([]Post, error)) (Page, error) {
	out := make([]Post, 0, limit)
	batch := limit * 2
	for rounds := 0; rounds < 10; rounds++ {
		ps, err := fetch(before, batch)
		if err != nil {
			return Page{}, err
		}
		for _, p := range ps {
			before = p.Seq
			if !visible(p, viewer, set) {
				continue
			}
			out = append(out, redact(p, viewer))
			if len(out) == limit {
				return Page{Posts: out, Next: p.Seq}, nil
			}
		}
		if len(ps) < batch {
			return Page{Posts: out}, nil
		}
	}
	// Many hidden posts in a row: hand back what there is and the cursor.
	return Page{Posts: out, Next: before}, nil
}

// Feed lists the posts of viewer and viewer's friends that viewer may see,
// newest first, below the cursor before (0: the newest). Reading the first
// page clears the red dot of new posts.
func (s *Service) Feed(ctx context.Context, viewer string, before int64, limit int) (Page, error) {
	if before < 0 {
		return Page{}, fmt.Errorf("%w: bad cursor", ErrInvalid)
	}
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	ids, set, err := s.friends(ctx, viewer)
	if err != nil {
		return Page{}, err
	}
	fetch, err := s.timeline(ctx, viewer, ids, 0)
	if err != nil {
		return Page{}, err
	}
	pg, err := pageOf(viewer, set, before, limit, fetch)
	if err != nil {
		return Page{}, err
	}
	if err := s.attach(ctx, viewer, set, pg.Posts); err != nil {
		return Page{}, err
	}
	if before == 0 && len(pg.Posts) > 0 {
		// Opening the feed again with nothing new writes nothing.
		feed, _, err := s.store.Reads(ctx, viewer)
		if err != nil {
			return Page{}, err
		}
		if pg.Posts[0].Seq > feed {
			if err := s.markRead(ctx, viewer, pg.Posts[0].Seq, 0); err != nil {
				return Page{}, err
			}
		}
	}
	return pg, nil
}

// UserPosts lists one user's posts that viewer may see (a user's album),
// newest first.
func (s *Service) UserPosts(ctx context.Context, viewer, user string, before int64, limit int) (Page, error) {
	if !validUserID(user) {
		return Page{}, fmt.Errorf("%w: bad user ID", ErrInvalid)
	}
	if before < 0 {
		return Page{}, fmt.Errorf("%w: bad cursor", ErrInvalid)
	}
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	_, set, err := s.friends(ctx, viewer)
	if err != nil {
		return Page{}, err
	}
	if user != viewer && !set.has(user) {
		return Page{Posts: []Post{}}, nil
	}
	authors := []string{user}
	pg, err := pageOf(viewer, set, before, limit, func(before int64, n int) ([]Post, error) {
		return s.store.PostsBy(ctx, authors, 0, before, n, false)
	})
	if err != nil {
		return Page{}, err
	}
	return pg, s.attach(ctx, viewer, set, pg.Posts)
}

// Like adds user's like to a post user may see; the poster is notified.
func (s *Service) Like(ctx context.Context, user, postID string) error {
	p, _, err := s.seen(ctx, user, postID)
	if err != nil {
		return err
	}
	l := Like{PostID: postID, UserID: user, TS: s.now().UnixMilli()}
	var n *Notification
	if p.Author != user {
		n = &Notification{UserID: p.Author, Kind: KindLike, PostID: postID, From: user, TS: l.TS}
	}
	added, err := s.store.AddLike(ctx, l, n)
	if err != nil {
		return err
	}
	if added && n != nil {
		s.changed(p.Author)
	}
	return nil
}

// Unlike removes user's like (and its notification).
func (s *Service) Unlike(ctx context.Context, user, postID string) error {
	p, _, err := s.seen(ctx, user, postID)
	if err != nil {
		return err
	}
	removed, err := s.store.RemoveLike(ctx, postID, user)
	if err != nil {
		return err
	}
	if removed && p.Author != user {
		s.changed(p.Author)
	}
	return nil
}

// Comment adds a comment to a post user may see, or with replyTo a reply
// to a comment on it that user may see. The poster and the author of the
// comment answered are notified (never oneself).
func (s *Service) Comment(ctx context.Context, user, postID, text, replyTo string) (Comment, error) {
	switch {
	case strings.TrimSpace(text) == "" || !utf8.ValidString(text):
		return Comment{}, fmt.Errorf("%w: a comment needs UTF-8 text", ErrInvalid)
	case len(text) > s.cfg.MaxCommentBytes:
		return Comment{}, fmt.Errorf("%w: comment is larger than %d bytes", ErrTooLarge, s.cfg.MaxCommentBytes)
	case replyTo != "" && !ValidID(replyTo):
		return Comment{}, fmt.Errorf("%w: bad comment ID in reply_to", ErrInvalid)
	}
	p, set, err := s.seen(ctx, user, postID)
	if err != nil {
		return Comment{}, err
	}
	c := Comment{CommentID: newID("$c"), PostID: postID, Author: user, Text: text, TS: s.now().UnixMilli()}
	if replyTo != "" {
		parent, err := s.store.GetComment(ctx, replyTo)
		if errors.Is(err, ErrNotFound) || (err == nil && parent.PostID != postID) {
			return Comment{}, fmt.Errorf("%w: no such comment on this post", ErrNotFound)
		}
		if err != nil {
			return Comment{}, err
		}
		// One may answer only a comment one sees.
		if p.Author != user && parent.Author != user && !set.has(parent.Author) {
			return Comment{}, fmt.Errorf("%w: no such comment on this post", ErrNotFound)
		}
		c.ReplyTo, c.ReplyToUser = parent.CommentID, parent.Author
	}
	if err := s.comments.Take("moments comments", user, s.now()); err != nil {
		return Comment{}, err
	}
	var ns []Notification
	var told []string
	if p.Author != user {
		ns = append(ns, Notification{UserID: p.Author, Kind: KindComment, PostID: postID, From: user, CommentID: c.CommentID, Text: text, TS: c.TS})
		told = append(told, p.Author)
	}
	if c.ReplyToUser != "" && c.ReplyToUser != user && c.ReplyToUser != p.Author {
		ns = append(ns, Notification{UserID: c.ReplyToUser, Kind: KindReply, PostID: postID, From: user, CommentID: c.CommentID, Text: text, TS: c.TS})
		told = append(told, c.ReplyToUser)
	}
	if c, err = s.store.AddComment(ctx, c, ns); err != nil {
		return Comment{}, err
	}
	s.changed(told...)
	return c, nil
}

// DeleteComment removes user's own comment (and the notifications it made).
func (s *Service) DeleteComment(ctx context.Context, user, postID, commentID string) error {
	if !ValidID(postID) || !ValidID(commentID) {
		return fmt.Errorf("%w: bad ID", ErrInvalid)
	}
	c, err := s.store.GetComment(ctx, commentID)
	if err != nil {
		return err
	}
	if c.PostID != postID {
		return ErrNotFound
	}
	if c.Author != user {
		return fmt.Errorf("%w: only its author may delete a comment", ErrForbidden)
	}
	if err := s.store.DeleteComment(ctx, commentID); err != nil {
		return err
	}
	p, err := s.store.GetPost(ctx, postID)
	if err == nil {
		s.changed(p.Author)
	}
	if c.ReplyToUser != "" {
		s.changed(c.ReplyToUser)
	}
	return nil
}

// Notifications lists user's notifications newest first; reading the first
// page clears their count.
func (s *Service) Notifications(ctx context.Context, user string, before int64, limit int) ([]Notification, int64, error) {
	if before < 0 {
		return nil, 0, fmt.Errorf("%w: bad cursor", ErrInvalid)
	}
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	ns, err := s.store.Notifications(ctx, user, before, limit)
	if err != nil {
		return nil, 0, err
	}
	if before == 0 && len(ns) > 0 {
		if err := s.markRead(ctx, user, 0, ns[0].Seq); err != nil {
			return nil, 0, err
		}
	}
	var next int64
	if len(ns) == limit {
		next = ns[len(ns)-1].Seq
	}
	return ns, next, nil
}

// MarkRead clears user's red dot of new posts, and with notes their count
// of notifications too.
func (s *Service) MarkRead(ctx context.Context, user string, notes bool) error {
	seq, err := s.store.NewestSeq(ctx)
	if err != nil {
		return err
	}
	var n int64
	if notes {
		n = seq
	}
	return s.markRead(ctx, user, seq, n)
}

func (s *Service) markRead(ctx context.Context, user string, feed, notes int64) error {
	if err := s.store.SetReads(ctx, user, feed, notes); err != nil {
		return err
	}
	s.changed(user) // every device of user sees the cleared count
	return nil
}

// Counts is a user's red dot: new visible posts from friends since the
// feed was last opened (at most MaxUnread), and new notifications.
type Counts struct {
	Unread        int `json:"unread"`
	Notifications int `json:"notifications"`
}

// MaxUnread bounds the count of new posts (clients show "99+"), so that the
// count is one bounded read.
const MaxUnread = 100

// Counts computes user's red dot.
func (s *Service) Counts(ctx context.Context, user string) (Counts, error) {
	feed, notes, err := s.store.Reads(ctx, user)
	if err != nil {
		return Counts{}, err
	}
	ids, set, err := s.friends(ctx, user)
	if err != nil {
		return Counts{}, err
	}
	var c Counts
	if len(ids) > 0 {
		fetch, err := s.timeline(ctx, user, ids, feed)
		if err != nil {
			return Counts{}, err
		}
		ps, err := fetch(0, MaxUnread)
		if err != nil {
			return Counts{}, err
		}
		for _, p := range ps {
			if p.Author != user && visible(p, user, set) {
				c.Unread++
			}
		}
	}
	if c.Notifications, err = s.store.CountNotifications(ctx, user, notes); err != nil {
		return Counts{}, err
	}
	return c, nil
}

// loadPullers reads the hybrid's pulled authors once.
func (s *Service) loadPullers(ctx context.Context) error {
	s.mu.Lock()
	loaded := s.pullers != nil
	s.mu.Unlock()
	if loaded {
		return nil
	}
	ids, err := s.store.PullAuthors(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pullers == nil {
		s.pullers = make(map[string]struct{}, len(ids))
		for _, id := range ids {
			s.pullers[id] = struct{}{}
		}
	}
	return nil
}

// timeline returns how to read viewer's candidate posts with Seq > after,
// below a cursor, newest first (visibility is checked by the caller):
// viewer's feed inbox (write fan-out), the timelines of viewer and the
// friends ids (read fan-out), or for the hybrid the inbox merged with the
// pulled posts of the friends who have any.
func (s *Service) timeline(ctx context.Context, viewer string, ids []string, after int64) (func(before int64, n int) ([]Post, error), error) {
	switch s.cfg.Fanout {
	case FanoutWrite:
		return func(before int64, n int) ([]Post, error) { return s.store.InboxPosts(ctx, viewer, after, before, n) }, nil
	case FanoutRead:
		authors := append(ids[:len(ids):len(ids)], viewer)
		return func(before int64, n int) ([]Post, error) {
			return s.store.PostsBy(ctx, authors, after, before, n, false)
		}, nil
	}
	if err := s.loadPullers(ctx); err != nil {
		return nil, err
	}
	var pulls []string
	s.mu.Lock()
	if _, ok := s.pullers[viewer]; ok {
		pulls = append(pulls, viewer)
	}
	if len(s.pullers) < len(ids) {
		set := make(map[string]struct{}, len(ids))
		for _, id := range ids {
			set[id] = struct{}{}
		}
		for p := range s.pullers {
			if _, ok := set[p]; ok && p != viewer {
				pulls = append(pulls, p)
			}
		}
	} else {
		for _, id := range ids {
			if _, ok := s.pullers[id]; ok {
				pulls = append(pulls, id)
			}
		}
	}
	s.mu.Unlock()
	return func(before int64, n int) ([]Post, error) {
		pushed, err := s.store.InboxPosts(ctx, viewer, after, before, n)
		if err != nil || len(pulls) == 0 {
			return pushed, err
		}
		pulled, err := s.store.PostsBy(ctx, pulls, after, before, n, true)
		if err != nil {
			return nil, err
		}
		return mergeNewest(pushed, pulled, n), nil
	}, nil
}

// mergeNewest merges two newest-first lists into the n newest.
func mergeNewest(a, b []Post, n int) []Post {
	out := make([]Post, 0, min(n, len(a)+len(b)))
	for len(out) < n && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || (len(a) > 0 && a[0].Seq > b[0].Seq) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}
