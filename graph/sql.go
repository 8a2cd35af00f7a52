package graph

import (
	"context"
	"errors"

	"github.com/parley-im/parley/storage"
)

// SQLStore keeps the graph in the main SQL store (SQLite or PostgreSQL,
// schema 005), so the embedded default needs nothing installed. Storage owns
// the queries; this file only adapts them to Store, and the rules come from
// the embedded rules, as they do for Neo4j.
type SQLStore struct {
	rules
	db SQLDB // Static after construction; owned by the caller.
}

// SQLDB is what the SQL graph needs of the main store: its graph queries
// and graph write transactions. *storage.Store implements it.
type SQLDB interface {
	GraphWrite(ctx context.Context, fn func(tx *storage.GraphTx) error) error
	GraphFriends(ctx context.Context, userID, after string, limit int) ([]string, error)
	GraphFollowers(ctx context.Context, userID, after string, limit int) ([]string, error)
	GraphFollowing(ctx context.Context, userID, after string, limit int) ([]string, error)
	GraphBlocked(ctx context.Context, userID, after string, limit int) ([]string, error)
	GraphMutualFriends(ctx context.Context, a, b, after string, limit int) ([]string, error)
	GraphRequests(ctx context.Context, userID string, incoming bool, afterTS int64, afterID string, limit int) ([]storage.FriendRequest, error)
	GraphSuggestions(ctx context.Context, userID string, limit int) ([]storage.GraphSuggestion, error)
	GraphRelationship(ctx context.Context, a, b string) (storage.GraphRelationship, error)
	GraphCounts(ctx context.Context, userID string) (storage.GraphCounts, error)
	GraphDMPolicy(ctx context.Context, userID string) (string, error)
}

var _ Store = (*SQLStore)(nil)

// NewSQL returns the graph over db. Graph writes use db's write pool in
// transactions of their own, never the rooms writer: they take no stream
// positions and must not queue behind sends.
func NewSQL(db SQLDB) *SQLStore {
	s := &SQLStore{db: db}
	s.rules = rules{inTx: s.inTx}
	return s
}

func (s *SQLStore) inTx(ctx context.Context, fn func(ctx context.Context, tx writeTx) error) error {
	return s.db.GraphWrite(ctx, func(tx *storage.GraphTx) error { return fn(ctx, sqlTx{tx}) })
}

// Close does nothing: the storage.Store belongs to whoever opened it.
func (s *SQLStore) Close(context.Context) error { return nil }

func (s *SQLStore) Friends(ctx context.Context, userID string, p Page) ([]string, string, error) {
	return s.users(ctx, p, func(after string, n int) ([]string, error) { return s.db.GraphFriends(ctx, userID, after, n) })
}

func (s *SQLStore) Followers(ctx context.Context, userID string, p Page) ([]string, string, error) {
	return s.users(ctx, p, func(after string, n int) ([]string, error) { return s.db.GraphFollowers(ctx, userID, after, n) })
}

func (s *SQLStore) Following(ctx context.Context, userID string, p Page) ([]string, string, error) {
	return s.users(ctx, p, withoutChannels(func(after string, n int) ([]string, error) { return s.db.GraphFollowing(ctx, userID, after, n) }))
}

func (s *SQLStore) Blocked(ctx context.Context, userID string, p Page) ([]string, string, error) {
	return s.users(ctx, p, func(after string, n int) ([]string, error) { return s.db.GraphBlocked(ctx, userID, after, n) })
}

func (s *SQLStore) MutualFriends(ctx context.Context, a, b string, p Page) ([]string, string, error) {
	if a == b {
		return nil, "", ErrSelf
	}
	return s.users(ctx, p, func(after string, n int) ([]string, error) { return s.db.GraphMutualFriends(ctx, a, b, after, n) })
}

// users pages a user list: it asks for one row more than the page holds to
// learn whether another page follows.
func (s *SQLStore) users(ctx context.Context, p Page, fetch func(after string, n int) ([]string, error)) ([]string, string, error) {
	after, err := afterUser(p)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(p.Limit)
	ids, err := fetch(after, limit+1)
	if err != nil {
		return nil, "", err
	}
	ids, next := trimUsers(ids, limit)
	return ids, next, nil
}

func (s *SQLStore) Requests(ctx context.Context, userID string, dir Direction, p Page) ([]Request, string, error) {
	afterTS, afterID, err := afterRequest(p)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(p.Limit)
	rows, err := s.db.GraphRequests(ctx, userID, dir == DirIn, afterTS, afterID, limit+1)
	if err != nil {
		return nil, "", err
	}
	reqs := make([]Request, len(rows))
	for i, r := range rows {
		reqs[i] = requestFromRow(r)
	}
	reqs, next := trimRequests(reqs, limit)
	return reqs, next, nil
}

func (s *SQLStore) Suggestions(ctx context.Context, userID string, limit int) ([]Suggestion, error) {
	rows, err := s.db.GraphSuggestions(ctx, userID, pageLimit(limit))
	if err != nil {
		return nil, err
	}
	out := make([]Suggestion, len(rows))
	for i, r := range rows {
		out[i] = Suggestion{UserID: r.UserID, MutualFriends: r.MutualFriends}
	}
	return out, nil
}

func (s *SQLStore) Relationship(ctx context.Context, a, b string) (Relationship, error) {
	if a == b {
		return Relationship{}, ErrSelf
	}
	r, err := s.db.GraphRelationship(ctx, a, b)
	if err != nil {
		return Relationship{}, err
	}
	return Relationship{
		Friends: r.Friends, Following: r.Following, FollowedBy: r.FollowedBy,
		Blocked: r.Blocked, BlockedBy: r.BlockedBy,
		RequestOut: r.RequestOut, RequestIn: r.RequestIn, MutualFriends: r.MutualFriends,
	}, nil
}

func (s *SQLStore) Counts(ctx context.Context, userID string) (Counts, error) {
	c, err := s.db.GraphCounts(ctx, userID)
	if err != nil {
		return Counts{}, err
	}
	return Counts{Friends: c.Friends, Followers: c.Followers, Following: c.Following, Blocked: c.Blocked}, nil
}

func (s *SQLStore) DMPolicy(ctx context.Context, userID string) (DMPolicy, error) {
	p, err := s.db.GraphDMPolicy(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return DMAnyone, nil
	}
	if err != nil {
		return "", err
	}
	return DMPolicy(p), nil
}

// sqlTx is writeTx over a storage.GraphTx.
type sqlTx struct{ tx *storage.GraphTx }

func (t sqlTx) lockUsers(ctx context.Context, a, b string) error { return t.tx.LockUsers(ctx, a, b) }

func (t sqlTx) blockedEitherWay(ctx context.Context, a, b string) (bool, error) {
	return t.tx.BlockedEitherWay(ctx, a, b)
}

func (t sqlTx) areFriends(ctx context.Context, a, b string) (bool, error) {
	return t.tx.AreFriends(ctx, a, b)
}

func (t sqlTx) addFollow(ctx context.Context, from, to string) (bool, error) {
	return t.tx.AddFollow(ctx, from, to)
}

func (t sqlTx) removeFollow(ctx context.Context, from, to string) (bool, error) {
	return t.tx.RemoveFollow(ctx, from, to)
}

func (t sqlTx) addFriendship(ctx context.Context, a, b string) (bool, error) {
	return t.tx.AddFriendship(ctx, a, b)
}

func (t sqlTx) removeFriendship(ctx context.Context, a, b string) (bool, error) {
	return t.tx.RemoveFriendship(ctx, a, b)
}

func (t sqlTx) addBlock(ctx context.Context, blocker, blocked string) (bool, error) {
	return t.tx.AddBlock(ctx, blocker, blocked)
}

func (t sqlTx) removeBlock(ctx context.Context, blocker, blocked string) (bool, error) {
	return t.tx.RemoveBlock(ctx, blocker, blocked)
}

func (t sqlTx) pendingRequest(ctx context.Context, from, to string) (Request, bool, error) {
	r, ok, err := t.tx.PendingRequest(ctx, from, to)
	return requestFromRow(r), ok, err
}

func (t sqlTx) requestByID(ctx context.Context, id string) (Request, bool, error) {
	r, ok, err := t.tx.RequestByID(ctx, id)
	return requestFromRow(r), ok, err
}

func (t sqlTx) insertRequest(ctx context.Context, r Request) error {
	return t.tx.InsertRequest(ctx, storage.FriendRequest{ID: r.ID, From: r.From, To: r.To, Message: r.Message, TS: r.TS})
}

func (t sqlTx) deleteRequest(ctx context.Context, id string) (bool, error) {
	return t.tx.DeleteRequest(ctx, id)
}

func (t sqlTx) setDMPolicy(ctx context.Context, userID string, p DMPolicy) error {
	return t.tx.SetDMPolicy(ctx, userID, string(p))
}

// requestFromRow converts a stored request; only pending requests are stored.
func requestFromRow(r storage.FriendRequest) Request {
	return Request{ID: r.ID, From: r.From, To: r.To, Message: r.Message, TS: r.TS, State: statePending}
}
