package graph

import (
	"context"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
)

// Reads are one Cypher query each, in a read transaction. Lists return
// their key as "id" and resume with "> $after"; they ask for one row more
// than the page holds to learn whether another page follows.

func (s *Neo4jStore) Friends(ctx context.Context, userID string, p Page) ([]string, string, error) {
	return s.users(ctx, p, `MATCH (:User {id: $user})-[:FRIEND]-(o:User)`, map[string]any{"user": userID})
}

func (s *Neo4jStore) Followers(ctx context.Context, userID string, p Page) ([]string, string, error) {
	return s.users(ctx, p, `MATCH (o:User)-[:FOLLOWS]->(:User {id: $user})`, map[string]any{"user": userID})
}

func (s *Neo4jStore) Following(ctx context.Context, userID string, p Page) ([]string, string, error) {
	// Channels are followed as nodes too (~local:server); they are not users.
	return s.usersWhere(ctx, p, `MATCH (:User {id: $user})-[:FOLLOWS]->(o:User)`, ` AND NOT o.id STARTS WITH '~'`, map[string]any{"user": userID})
}

func (s *Neo4jStore) Blocked(ctx context.Context, userID string, p Page) ([]string, string, error) {
	return s.users(ctx, p, `MATCH (:User {id: $user})-[:BLOCKS]->(o:User)`, map[string]any{"user": userID})
}

func (s *Neo4jStore) MutualFriends(ctx context.Context, a, b string, p Page) ([]string, string, error) {
	if a == b {
		return nil, "", ErrSelf
	}
	return s.users(ctx, p, `MATCH (:User {id: $a})-[:FRIEND]-(o:User)-[:FRIEND]-(:User {id: $b})`,
		map[string]any{"a": a, "b": b})
}

// users pages the IDs of the nodes match binds to o.
func (s *Neo4jStore) users(ctx context.Context, p Page, match string, params map[string]any) ([]string, string, error) {
	return s.usersWhere(ctx, p, match, "", params)
}

// usersWhere is users with a further condition on o.
func (s *Neo4jStore) usersWhere(ctx context.Context, p Page, match, where string, params map[string]any) ([]string, string, error) {
	after, err := afterUser(p)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(p.Limit)
	params["after"], params["limit"] = after, int64(limit+1)
	var ids []string
	err = s.read(ctx, func(ctx context.Context, tx neo4j.ManagedTransaction) error {
		recs, err := collect(ctx, tx, match+` WHERE o.id > $after`+where+` RETURN o.id AS id ORDER BY id LIMIT $limit`, params)
		if err != nil {
			return err
		}
		ids = nil
		for _, rec := range recs {
			id, _, err := neo4j.GetRecordValue[string](rec, "id")
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	ids, next := trimUsers(ids, limit)
	return ids, next, nil
}

func (s *Neo4jStore) Requests(ctx context.Context, userID string, dir Direction, p Page) ([]Request, string, error) {
	afterTS, afterID, err := afterRequest(p)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(p.Limit)
	match := `MATCH (f:User)-[r:REQUESTED]->(t:User {id: $user})`
	if dir == DirOut {
		match = `MATCH (f:User {id: $user})-[r:REQUESTED]->(t:User)`
	}
	var reqs []Request
	err = s.read(ctx, func(ctx context.Context, tx neo4j.ManagedTransaction) error {
		recs, err := collect(ctx, tx, match+`
			WHERE r.ts > $ts OR (r.ts = $ts AND r.id > $id)
			`+requestFields+` ORDER BY ts, id LIMIT $limit`,
			map[string]any{"user": userID, "ts": afterTS, "id": afterID, "limit": int64(limit + 1)})
		if err != nil {
			return err
		}
		reqs = nil
		for _, rec := range recs {
			r, err := requestFromRecord(rec)
			if err != nil {
				return err
			}
			reqs = append(reqs, r)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	reqs, next := trimRequests(reqs, limit)
	return reqs, next, nil
}

// suggestionsQuery ranks friends of friends. It is shaped for a user with
// thousands of friends (BenchmarkGraph: 5,000 friends, 50,000 paths):
//
//   - Who to leave out (friends, blocks and pending requests, either way) is
//     collected once, before the expansion. "NOT c IN excluded" against that
//     one list is cheap, where a NOT EXISTS per candidate expanded every
//     candidate's relationships three times (2.5 million db hits, 400 ms).
//     Collecting it after the count instead either makes the list a grouping
//     key (out of memory) or, in a CALL, runs once per candidate (12 s).
//   - The ranking needs candidates' IDs only to break ties, so candidates are
//     grouped by mutual count and IDs are read only in the groups that reach
//     the top limit, not for every candidate (37,000 property reads).
const suggestionsQuery = `
MATCH (me:User {id: $user})
OPTIONAL MATCH (me)-[:FRIEND|BLOCKS|REQUESTED]-(x)
WITH me, collect(x) AS excluded
MATCH (me)-[:FRIEND]-()-[:FRIEND]-(c)
WHERE c <> me AND NOT c IN excluded
WITH c, count(*) AS mutual
WITH mutual, collect(c) AS cs
WITH collect({mutual: mutual, cs: cs}) AS groups
UNWIND groups AS g
WITH g, reduce(n = 0, h IN groups | n + CASE WHEN h.mutual > g.mutual THEN size(h.cs) ELSE 0 END) AS ahead
WHERE ahead < $limit
UNWIND g.cs AS c
WITH g.mutual AS mutual, c.id AS id
ORDER BY mutual DESC, id
LIMIT $limit
RETURN id, mutual`

func (s *Neo4jStore) Suggestions(ctx context.Context, userID string, limit int) ([]Suggestion, error) {
	var out []Suggestion
	err := s.read(ctx, func(ctx context.Context, tx neo4j.ManagedTransaction) error {
		recs, err := collect(ctx, tx, suggestionsQuery, map[string]any{"user": userID, "limit": int64(pageLimit(limit))})
		if err != nil {
			return err
		}
		out = nil
		for _, rec := range recs {
			id, _, err := neo4j.GetRecordValue[string](rec, "id")
			if err != nil {
				return err
			}
			mutual, _, err := neo4j.GetRecordValue[int64](rec, "mutual")
			if err != nil {
				return err
			}
			out = append(out, Suggestion{UserID: id, MutualFriends: int(mutual)})
		}
		return nil
	})
	return out, err
}

func (s *Neo4jStore) Relationship(ctx context.Context, a, b string) (Relationship, error) {
	if a == b {
		return Relationship{}, ErrSelf
	}
	var r Relationship
	err := s.read(ctx, func(ctx context.Context, tx neo4j.ManagedTransaction) error {
		recs, err := collect(ctx, tx, `MATCH (a:User {id: $a}), (b:User {id: $b})
			RETURN EXISTS { (a)-[:FRIEND]-(b) } AS friends,
				EXISTS { (a)-[:FOLLOWS]->(b) } AS following,
				EXISTS { (b)-[:FOLLOWS]->(a) } AS followedBy,
				EXISTS { (a)-[:BLOCKS]->(b) } AS blocked,
				EXISTS { (b)-[:BLOCKS]->(a) } AS blockedBy,
				[(a)-[r:REQUESTED]->(b) | r.id] AS requestOut,
				[(b)-[r:REQUESTED]->(a) | r.id] AS requestIn,
				COUNT { (a)-[:FRIEND]-(:User)-[:FRIEND]-(b) } AS mutual`,
			map[string]any{"a": a, "b": b})
		r = Relationship{}
		if err != nil || len(recs) == 0 { // a user the graph never saw has no ties
			return err
		}
		m := recs[0].AsMap()
		r.Friends, r.Following, r.FollowedBy = m["friends"] == true, m["following"] == true, m["followedBy"] == true
		r.Blocked, r.BlockedBy = m["blocked"] == true, m["blockedBy"] == true
		r.RequestOut, r.RequestIn = firstString(m["requestOut"]), firstString(m["requestIn"])
		mutual, _ := m["mutual"].(int64)
		r.MutualFriends = int(mutual)
		return nil
	})
	return r, err
}

func firstString(v any) string {
	if list, ok := v.([]any); ok && len(list) > 0 {
		s, _ := list[0].(string)
		return s
	}
	return ""
}

func (s *Neo4jStore) Counts(ctx context.Context, userID string) (Counts, error) {
	var c Counts
	err := s.read(ctx, func(ctx context.Context, tx neo4j.ManagedTransaction) error {
		recs, err := collect(ctx, tx, `MATCH (u:User {id: $user})
			RETURN COUNT { (u)-[:FRIEND]-() } AS friends,
				COUNT { ()-[:FOLLOWS]->(u) } AS followers,
				COUNT { (u)-[:FOLLOWS]->() } AS following,
				COUNT { (u)-[:BLOCKS]->() } AS blocked`, map[string]any{"user": userID})
		c = Counts{}
		if err != nil || len(recs) == 0 {
			return err
		}
		m := recs[0].AsMap()
		n := func(k string) int { v, _ := m[k].(int64); return int(v) }
		c = Counts{Friends: n("friends"), Followers: n("followers"), Following: n("following"), Blocked: n("blocked")}
		return nil
	})
	return c, err
}

func (s *Neo4jStore) DMPolicy(ctx context.Context, userID string) (DMPolicy, error) {
	p := DMAnyone
	err := s.read(ctx, func(ctx context.Context, tx neo4j.ManagedTransaction) error {
		recs, err := collect(ctx, tx, `MATCH (u:User {id: $user}) RETURN u.dm_policy AS policy`, map[string]any{"user": userID})
		p = DMAnyone
		if err != nil || len(recs) == 0 {
			return err
		}
		if v, ok := recs[0].AsMap()["policy"].(string); ok && v != "" {
			p = DMPolicy(v)
		}
		return nil
	})
	return p, err
}

func collect(ctx context.Context, tx neo4j.ManagedTransaction, q string, params map[string]any) ([]*neo4j.Record, error) {
	res, err := tx.Run(ctx, q, params)
	if err != nil {
		return nil, err
	}
	return res.Collect(ctx)
}
