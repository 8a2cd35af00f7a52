package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
)

// The relationship graph's tables (schema 005), for package graph when no
// Neo4j is configured. Storage runs the statements; the rules (a request
// each way makes friends, a block cuts every tie) live in package graph,
// which composes these primitives inside one GraphTx per operation.

// FriendRequest is a pending friend request.
type FriendRequest struct {
	ID      string
	From    string
	To      string
	Message string
	TS      int64
}

// GraphRelationship is how user a stands to user b, read in one statement
// so that its fields agree with each other.
type GraphRelationship struct {
	Friends, Following, FollowedBy, Blocked, BlockedBy bool
	RequestOut, RequestIn                              string // pending request IDs, "" for none
	MutualFriends                                      int
}

// GraphCounts are a user's totals.
type GraphCounts struct {
	Friends, Followers, Following, Blocked int
}

// GraphSuggestion is a friend of a user's friends and how many friends they share.
type GraphSuggestion struct {
	UserID        string
	MutualFriends int
}

// GraphTx is one graph write transaction on the write pool (SQLite's single
// writer connection). It is separate from the rooms writer's WriteTx: graph
// writes take no stream positions.
type GraphTx struct {
	tx *sql.Tx
}

// GraphWrite runs fn in one write transaction and commits if fn returns nil,
// so a graph operation that touches several rows applies whole or not at all.
func (s *Store) GraphWrite(ctx context.Context, fn func(tx *GraphTx) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return fn(&GraphTx{tx: tx}) })
}

// LockUsers makes sure each user has a graph_users row and takes its row
// lock (PostgreSQL) until the transaction ends. Rows are locked in ID order
// so two transactions never wait on each other in a cycle. On SQLite the
// single writer serialises everything already.
func (g *GraphTx) LockUsers(ctx context.Context, userIDs ...string) error {
	ids := append([]string(nil), userIDs...)
	sort.Strings(ids)
	for i, id := range ids {
		if i > 0 && id == ids[i-1] {
			continue
		}
		if _, err := g.tx.ExecContext(ctx, `INSERT INTO graph_users (user_id) VALUES ($1)
			ON CONFLICT (user_id) DO UPDATE SET dm_policy = graph_users.dm_policy`, id); err != nil {
			return fmt.Errorf("lock graph user %s: %w", id, err)
		}
	}
	return nil
}

// BlockedEitherWay reports whether a blocks b or b blocks a.
func (g *GraphTx) BlockedEitherWay(ctx context.Context, a, b string) (bool, error) {
	return g.exists(ctx, "blocked either way", `SELECT 1 FROM graph_blocks
		WHERE (blocker = $1 AND blocked = $2) OR (blocker = $2 AND blocked = $1)`, a, b)
}

// AreFriends reports whether a and b are friends.
func (g *GraphTx) AreFriends(ctx context.Context, a, b string) (bool, error) {
	return g.exists(ctx, "are friends", `SELECT 1 FROM graph_friends WHERE user_id = $1 AND friend_id = $2`, a, b)
}

func (g *GraphTx) exists(ctx context.Context, what, q string, args ...any) (bool, error) {
	var one int
	err := g.tx.QueryRowContext(ctx, q+` LIMIT 1`, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return true, nil
}

// AddFollow records that from follows to; false if it already did.
func (g *GraphTx) AddFollow(ctx context.Context, from, to string) (bool, error) {
	return g.changed(ctx, "add follow", `INSERT INTO graph_follows (follower, followee) VALUES ($1, $2) ON CONFLICT DO NOTHING`, from, to)
}

// RemoveFollow deletes from's follow of to; false if there was none.
func (g *GraphTx) RemoveFollow(ctx context.Context, from, to string) (bool, error) {
	return g.changed(ctx, "remove follow", `DELETE FROM graph_follows WHERE follower = $1 AND followee = $2`, from, to)
}

// AddFriendship makes a and b friends (both rows); false if they were.
func (g *GraphTx) AddFriendship(ctx context.Context, a, b string) (bool, error) {
	return g.changed(ctx, "add friendship", `INSERT INTO graph_friends (user_id, friend_id) VALUES ($1, $2), ($2, $1) ON CONFLICT DO NOTHING`, a, b)
}

// RemoveFriendship ends a and b's friendship; false if there was none.
func (g *GraphTx) RemoveFriendship(ctx context.Context, a, b string) (bool, error) {
	return g.changed(ctx, "remove friendship", `DELETE FROM graph_friends
		WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)`, a, b)
}

// AddBlock records that blocker blocks blocked; false if it already did.
func (g *GraphTx) AddBlock(ctx context.Context, blocker, blocked string) (bool, error) {
	return g.changed(ctx, "add block", `INSERT INTO graph_blocks (blocker, blocked) VALUES ($1, $2) ON CONFLICT DO NOTHING`, blocker, blocked)
}

// RemoveBlock lifts blocker's block of blocked; false if there was none.
func (g *GraphTx) RemoveBlock(ctx context.Context, blocker, blocked string) (bool, error) {
	return g.changed(ctx, "remove block", `DELETE FROM graph_blocks WHERE blocker = $1 AND blocked = $2`, blocker, blocked)
}

func (g *GraphTx) changed(ctx context.Context, what, q string, args ...any) (bool, error) {
	res, err := g.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n > 0, nil
}

const requestColumns = `request_id, from_user, to_user, message, ts`

func scanRequest(row interface{ Scan(...any) error }) (FriendRequest, error) {
	var r FriendRequest
	err := row.Scan(&r.ID, &r.From, &r.To, &r.Message, &r.TS)
	return r, err
}

// PendingRequest returns from's pending request to to, if there is one.
func (g *GraphTx) PendingRequest(ctx context.Context, from, to string) (FriendRequest, bool, error) {
	return g.oneRequest(ctx, `SELECT `+requestColumns+` FROM graph_friend_requests WHERE from_user = $1 AND to_user = $2`, from, to)
}

// RequestByID returns the pending request with that ID, if there is one.
func (g *GraphTx) RequestByID(ctx context.Context, id string) (FriendRequest, bool, error) {
	return g.oneRequest(ctx, `SELECT `+requestColumns+` FROM graph_friend_requests WHERE request_id = $1`, id)
}

func (g *GraphTx) oneRequest(ctx context.Context, q string, args ...any) (FriendRequest, bool, error) {
	r, err := scanRequest(g.tx.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return FriendRequest{}, false, nil
	}
	if err != nil {
		return FriendRequest{}, false, fmt.Errorf("read friend request: %w", err)
	}
	return r, true, nil
}

// InsertRequest stores a new pending request.
func (g *GraphTx) InsertRequest(ctx context.Context, r FriendRequest) error {
	_, err := g.tx.ExecContext(ctx, `INSERT INTO graph_friend_requests (`+requestColumns+`) VALUES ($1, $2, $3, $4, $5)`,
		r.ID, r.From, r.To, r.Message, r.TS)
	if err != nil {
		return fmt.Errorf("insert friend request: %w", err)
	}
	return nil
}

// DeleteRequest removes a pending request; false if it was not pending.
func (g *GraphTx) DeleteRequest(ctx context.Context, id string) (bool, error) {
	return g.changed(ctx, "delete friend request", `DELETE FROM graph_friend_requests WHERE request_id = $1`, id)
}

// SetDMPolicy stores a user's DM policy.
func (g *GraphTx) SetDMPolicy(ctx context.Context, userID, policy string) error {
	_, err := g.tx.ExecContext(ctx, `INSERT INTO graph_users (user_id, dm_policy) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE SET dm_policy = excluded.dm_policy`, userID, policy)
	if err != nil {
		return fmt.Errorf("set dm policy: %w", err)
	}
	return nil
}

// Reads run on the read pool, one statement each, so each answer is one
// consistent snapshot. Lists are in key order and start after the key the
// previous page ended on ("" for the first page).

// GraphFriends lists userID's friends after the ID after, at most limit.
func (s *Store) GraphFriends(ctx context.Context, userID, after string, limit int) ([]string, error) {
	return s.graphIDs(ctx, "friends", `SELECT friend_id FROM graph_friends
		WHERE user_id = $1 AND friend_id > $2 ORDER BY friend_id LIMIT $3`, userID, after, limit)
}

// GraphFollowers lists who follows userID.
func (s *Store) GraphFollowers(ctx context.Context, userID, after string, limit int) ([]string, error) {
	return s.graphIDs(ctx, "followers", `SELECT follower FROM graph_follows
		WHERE followee = $1 AND follower > $2 ORDER BY follower LIMIT $3`, userID, after, limit)
}

// GraphFollowing lists whom userID follows.
func (s *Store) GraphFollowing(ctx context.Context, userID, after string, limit int) ([]string, error) {
	return s.graphIDs(ctx, "following", `SELECT followee FROM graph_follows
		WHERE follower = $1 AND followee > $2 ORDER BY followee LIMIT $3`, userID, after, limit)
}

// GraphBlocked lists whom userID blocks.
func (s *Store) GraphBlocked(ctx context.Context, userID, after string, limit int) ([]string, error) {
	return s.graphIDs(ctx, "blocked", `SELECT blocked FROM graph_blocks
		WHERE blocker = $1 AND blocked > $2 ORDER BY blocked LIMIT $3`, userID, after, limit)
}

// GraphMutualFriends lists the friends a and b share.
func (s *Store) GraphMutualFriends(ctx context.Context, a, b, after string, limit int) ([]string, error) {
	return s.graphIDs(ctx, "mutual friends", `SELECT x.friend_id FROM graph_friends x
		JOIN graph_friends y ON y.user_id = $2 AND y.friend_id = x.friend_id
		WHERE x.user_id = $1 AND x.friend_id > $3 ORDER BY x.friend_id LIMIT $4`, a, b, after, limit)
}

func (s *Store) graphIDs(ctx context.Context, what, q string, args ...any) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("graph %s: %w", what, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("graph %s: %w", what, err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("graph %s: %w", what, err)
	}
	return out, nil
}

// GraphRequests lists pending requests to userID (incoming) or from it,
// oldest first, after the request (afterTS, afterID). The first page passes
// math.MinInt64 and "".
func (s *Store) GraphRequests(ctx context.Context, userID string, incoming bool, afterTS int64, afterID string, limit int) ([]FriendRequest, error) {
	column := "from_user"
	if incoming {
		column = "to_user"
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+requestColumns+` FROM graph_friend_requests
		WHERE `+column+` = $1 AND (ts > $2 OR (ts = $2 AND request_id > $3))
		ORDER BY ts, request_id LIMIT $4`, userID, afterTS, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("graph requests: %w", err)
	}
	defer rows.Close()
	var out []FriendRequest
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("graph requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("graph requests: %w", err)
	}
	return out, nil
}

// GraphSuggestions ranks the friends of userID's friends by how many friends
// they share with userID, then by ID. It counts first and filters the
// counted candidates afterwards, so each exclusion is checked once per
// candidate rather than once per path.
func (s *Store) GraphSuggestions(ctx context.Context, userID string, limit int) ([]GraphSuggestion, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT c.user_id, c.mutual FROM (
			SELECT f2.friend_id AS user_id, COUNT(*) AS mutual
			FROM graph_friends f1 JOIN graph_friends f2 ON f2.user_id = f1.friend_id
			WHERE f1.user_id = $1 AND f2.friend_id <> $1
			GROUP BY f2.friend_id
		) c
		WHERE NOT EXISTS (SELECT 1 FROM graph_friends x WHERE x.user_id = $1 AND x.friend_id = c.user_id)
		AND NOT EXISTS (SELECT 1 FROM graph_blocks b WHERE b.blocker = $1 AND b.blocked = c.user_id)
		AND NOT EXISTS (SELECT 1 FROM graph_blocks b WHERE b.blocker = c.user_id AND b.blocked = $1)
		AND NOT EXISTS (SELECT 1 FROM graph_friend_requests r WHERE r.from_user = $1 AND r.to_user = c.user_id)
		AND NOT EXISTS (SELECT 1 FROM graph_friend_requests r WHERE r.from_user = c.user_id AND r.to_user = $1)
		ORDER BY c.mutual DESC, c.user_id LIMIT $2`, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("graph suggestions: %w", err)
	}
	defer rows.Close()
	var out []GraphSuggestion
	for rows.Next() {
		var sg GraphSuggestion
		if err := rows.Scan(&sg.UserID, &sg.MutualFriends); err != nil {
			return nil, fmt.Errorf("graph suggestions: %w", err)
		}
		out = append(out, sg)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("graph suggestions: %w", err)
	}
	return out, nil
}

// GraphRelationship reads how a stands to b.
func (s *Store) GraphRelationship(ctx context.Context, a, b string) (GraphRelationship, error) {
	var r GraphRelationship
	err := s.read.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM graph_friends WHERE user_id = $1 AND friend_id = $2),
		EXISTS (SELECT 1 FROM graph_follows WHERE follower = $1 AND followee = $2),
		EXISTS (SELECT 1 FROM graph_follows WHERE follower = $2 AND followee = $1),
		EXISTS (SELECT 1 FROM graph_blocks WHERE blocker = $1 AND blocked = $2),
		EXISTS (SELECT 1 FROM graph_blocks WHERE blocker = $2 AND blocked = $1),
		COALESCE((SELECT request_id FROM graph_friend_requests WHERE from_user = $1 AND to_user = $2), ''),
		COALESCE((SELECT request_id FROM graph_friend_requests WHERE from_user = $2 AND to_user = $1), ''),
		(SELECT COUNT(*) FROM graph_friends x JOIN graph_friends y ON y.user_id = $2 AND y.friend_id = x.friend_id
			WHERE x.user_id = $1)`, a, b).
		Scan(&r.Friends, &r.Following, &r.FollowedBy, &r.Blocked, &r.BlockedBy, &r.RequestOut, &r.RequestIn, &r.MutualFriends)
	if err != nil {
		return GraphRelationship{}, fmt.Errorf("graph relationship: %w", err)
	}
	return r, nil
}

// GraphCounts reads userID's totals.
func (s *Store) GraphCounts(ctx context.Context, userID string) (GraphCounts, error) {
	var c GraphCounts
	err := s.read.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM graph_friends WHERE user_id = $1),
		(SELECT COUNT(*) FROM graph_follows WHERE followee = $1),
		(SELECT COUNT(*) FROM graph_follows WHERE follower = $1),
		(SELECT COUNT(*) FROM graph_blocks WHERE blocker = $1)`, userID).
		Scan(&c.Friends, &c.Followers, &c.Following, &c.Blocked)
	if err != nil {
		return GraphCounts{}, fmt.Errorf("graph counts: %w", err)
	}
	return c, nil
}

// GraphDMPolicy returns userID's stored DM policy, or ErrNotFound if the
// user has none stored.
func (s *Store) GraphDMPolicy(ctx context.Context, userID string) (string, error) {
	var p string
	err := s.read.QueryRowContext(ctx, `SELECT dm_policy FROM graph_users WHERE user_id = $1`, userID).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("graph dm policy: %w", err)
	}
	return p, nil
}
