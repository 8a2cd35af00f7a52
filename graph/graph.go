// Package graph owns the relationship chain between users: follows (one
// way, a fan of a big account), friendships (two way, begun by a request the
// other side accepts), blocks (which cut every tie) and each user's privacy
// policy. Store is the one interface; Neo4j holds the graph in production
// (neo4j.go) and SQL tables in the main store hold it for the embedded
// default (sql.go). Both pass the same conformance suite.
//
// The package answers questions and applies changes; it does not deliver
// news. The client API turns each change's Effects into sync notices.
package graph

import (
	"context"
	"errors"
)

// Errors every Store returns, so callers map them to Matrix errors.
var (
	// ErrBlocked: one side has blocked the other, so the tie is refused.
	ErrBlocked = errors.New("graph: blocked")
	// ErrSelf: a user cannot follow, befriend or block themselves.
	ErrSelf = errors.New("graph: that is yourself")
	// ErrNotFound: no such pending friend request (for this user).
	ErrNotFound = errors.New("graph: not found")
	// ErrUnavailable: the graph database cannot be reached; nothing changed.
	ErrUnavailable = errors.New("graph: unavailable")
)

// Store is the relationship chain. Every write is idempotent and atomic: it
// either applies whole or changes nothing.
type Store interface {
	Follow(ctx context.Context, from, to string) (changed bool, err error)
	Unfollow(ctx context.Context, from, to string) (changed bool, err error)

	// RequestFriend asks to befriend to. If to already asked from, the two
	// become friends at once; if they are friends already, nothing happens.
	RequestFriend(ctx context.Context, from, to, message string, ts int64) (RequestOutcome, error)
	// Accept, Decline and Cancel answer a pending request. Accept and
	// Decline are for its recipient, Cancel for its sender; anyone else gets
	// ErrNotFound, as for a request that is not pending.
	Accept(ctx context.Context, requestID, userID string) (Request, error)
	Decline(ctx context.Context, requestID, userID string) (Request, error)
	Cancel(ctx context.Context, requestID, userID string) (Request, error)
	Unfriend(ctx context.Context, a, b string) (changed bool, err error)

	// Block removes the friendship and both follows and cancels pending
	// requests either way, and reports what it removed.
	Block(ctx context.Context, blocker, blocked string) (BlockEffects, error)
	Unblock(ctx context.Context, blocker, blocked string) (changed bool, err error)

	Friends(ctx context.Context, userID string, p Page) ([]string, string, error)
	Followers(ctx context.Context, userID string, p Page) ([]string, string, error)
	Following(ctx context.Context, userID string, p Page) ([]string, string, error)
	Blocked(ctx context.Context, userID string, p Page) ([]string, string, error)
	// Requests lists pending requests to (DirIn) or from (DirOut) userID,
	// oldest first.
	Requests(ctx context.Context, userID string, dir Direction, p Page) ([]Request, string, error)
	MutualFriends(ctx context.Context, a, b string, p Page) ([]string, string, error)
	// Suggestions are friends of friends, most mutual friends first (then
	// by user ID), never a friend, a blocked user either way, a user with a
	// pending request either way, or userID.
	Suggestions(ctx context.Context, userID string, limit int) ([]Suggestion, error)
	// Relationship describes how a stands to b, from a's side.
	Relationship(ctx context.Context, a, b string) (Relationship, error)
	Counts(ctx context.Context, userID string) (Counts, error)

	DMPolicy(ctx context.Context, userID string) (DMPolicy, error)
	SetDMPolicy(ctx context.Context, userID string, p DMPolicy) error

	Close(ctx context.Context) error
}

// Page selects a slice of a list ordered by user ID (or, for requests, by
// age). From is the next_batch of the previous page, "" for the first.
type Page struct {
	From  string
	Limit int // 1..1000; 0 means 100
}

// Direction selects incoming or outgoing friend requests.
type Direction int

const (
	DirIn Direction = iota
	DirOut
)

// Request is a friend request.
type Request struct {
	ID      string `json:"request_id"`
	From    string `json:"from"`
	To      string `json:"to"`
	Message string `json:"message,omitempty"`
	TS      int64  `json:"ts"`
	// State is pending, accepted, declined or cancelled.
	State string `json:"state"`
}

// RequestOutcome says what RequestFriend did.
type RequestOutcome struct {
	// Request is the pending request created (or already pending), or, when
	// the two became friends at once, the other side's request, accepted.
	Request Request
	// Friends is true when the two are friends after the call.
	Friends bool
	// Changed is false when nothing was written (a repeat, or already friends).
	Changed bool
}

// BlockEffects is what a block removed.
type BlockEffects struct {
	Changed      bool // the block is new
	Unfriended   bool
	Unfollowed   bool // blocker no longer follows blocked
	LostFollower bool // blocked no longer follows blocker
	CancelledIn  []Request
	CancelledOut []Request
}

// Relationship is a's view of b.
type Relationship struct {
	Friends       bool   `json:"friends"`
	Following     bool   `json:"following"`
	FollowedBy    bool   `json:"followed_by"`
	Blocked       bool   `json:"blocked"`
	BlockedBy     bool   `json:"blocked_by"`
	RequestOut    string `json:"request_out,omitempty"` // pending request ID a→b
	RequestIn     string `json:"request_in,omitempty"`  // pending request ID b→a
	MutualFriends int    `json:"mutual_friends"`
}

// Suggestion is a friend of friends.
type Suggestion struct {
	UserID        string `json:"user_id"`
	MutualFriends int    `json:"mutual_friends"`
}

// Counts are a user's totals.
type Counts struct {
	Friends   int `json:"friends"`
	Followers int `json:"followers"`
	Following int `json:"following"`
	Blocked   int `json:"blocked"`
}

// DMPolicy says who may open a DM with, or invite, a user.
type DMPolicy string

const (
	DMAnyone  DMPolicy = "anyone"
	DMFriends DMPolicy = "friends"
)
