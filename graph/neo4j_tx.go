package graph

import (
	"context"
	"slices"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
)

// neo4jTx is writeTx over a managed Neo4j transaction: one Cypher statement
// per method. Relationships are created with MERGE, so a write repeated (or
// retried by the driver) never duplicates one.
type neo4jTx struct {
	tx neo4j.ManagedTransaction
}

// lockUsers merges the users and takes their write locks with the
// documented idiom (set and remove a dummy property). Locks are taken in ID
// order; a deadlock Neo4j still detects is transient, and the driver retries.
func (t neo4jTx) lockUsers(ctx context.Context, a, b string) error {
	ids := []string{a, b}
	slices.Sort(ids)
	_, err := t.counters(ctx, `UNWIND $ids AS id
		MERGE (u:User {id: id})
		SET u._lock = true REMOVE u._lock`, map[string]any{"ids": slices.Compact(ids)})
	return err
}

func (t neo4jTx) blockedEitherWay(ctx context.Context, a, b string) (bool, error) {
	return t.exists(ctx, `(:User {id: $a})-[:BLOCKS]-(:User {id: $b})`, a, b)
}

func (t neo4jTx) areFriends(ctx context.Context, a, b string) (bool, error) {
	return t.exists(ctx, `(:User {id: $a})-[:FRIEND]-(:User {id: $b})`, a, b)
}

func (t neo4jTx) exists(ctx context.Context, pattern, a, b string) (bool, error) {
	res, err := t.tx.Run(ctx, `RETURN EXISTS { MATCH `+pattern+` } AS yes`, map[string]any{"a": a, "b": b})
	if err != nil {
		return false, err
	}
	rec, err := res.Single(ctx)
	if err != nil {
		return false, err
	}
	yes, _, err := neo4j.GetRecordValue[bool](rec, "yes")
	return yes, err
}

func (t neo4jTx) addFollow(ctx context.Context, from, to string) (bool, error) {
	return t.created(ctx, `MATCH (a:User {id: $a}), (b:User {id: $b}) MERGE (a)-[:FOLLOWS]->(b)`, from, to)
}

func (t neo4jTx) removeFollow(ctx context.Context, from, to string) (bool, error) {
	return t.deleted(ctx, `MATCH (:User {id: $a})-[r:FOLLOWS]->(:User {id: $b}) DELETE r`, from, to)
}

// addFriendship merges one FRIEND relationship; its direction means nothing
// and every query reads it without one.
func (t neo4jTx) addFriendship(ctx context.Context, a, b string) (bool, error) {
	return t.created(ctx, `MATCH (a:User {id: $a}), (b:User {id: $b}) MERGE (a)-[:FRIEND]-(b)`, a, b)
}

func (t neo4jTx) removeFriendship(ctx context.Context, a, b string) (bool, error) {
	return t.deleted(ctx, `MATCH (:User {id: $a})-[r:FRIEND]-(:User {id: $b}) DELETE r`, a, b)
}

func (t neo4jTx) addBlock(ctx context.Context, blocker, blocked string) (bool, error) {
	return t.created(ctx, `MATCH (a:User {id: $a}), (b:User {id: $b}) MERGE (a)-[:BLOCKS]->(b)`, blocker, blocked)
}

func (t neo4jTx) removeBlock(ctx context.Context, blocker, blocked string) (bool, error) {
	return t.deleted(ctx, `MATCH (:User {id: $a})-[r:BLOCKS]->(:User {id: $b}) DELETE r`, blocker, blocked)
}

func (t neo4jTx) created(ctx context.Context, q, a, b string) (bool, error) {
	c, err := t.counters(ctx, q, map[string]any{"a": a, "b": b})
	if err != nil {
		return false, err
	}
	return c.RelationshipsCreated() > 0, nil
}

func (t neo4jTx) deleted(ctx context.Context, q, a, b string) (bool, error) {
	c, err := t.counters(ctx, q, map[string]any{"a": a, "b": b})
	if err != nil {
		return false, err
	}
	return c.RelationshipsDeleted() > 0, nil
}

func (t neo4jTx) counters(ctx context.Context, q string, params map[string]any) (neo4j.Counters, error) {
	res, err := t.tx.Run(ctx, q, params)
	if err != nil {
		return nil, err
	}
	sum, err := res.Consume(ctx)
	if err != nil {
		return nil, err
	}
	return sum.Counters(), nil
}

const requestFields = `RETURN r.id AS id, f.id AS sender, t.id AS recipient, r.message AS message, r.ts AS ts`

func (t neo4jTx) pendingRequest(ctx context.Context, from, to string) (Request, bool, error) {
	return t.oneRequest(ctx, `MATCH (f:User {id: $from})-[r:REQUESTED]->(t:User {id: $to}) `+requestFields,
		map[string]any{"from": from, "to": to})
}

func (t neo4jTx) requestByID(ctx context.Context, id string) (Request, bool, error) {
	return t.oneRequest(ctx, `MATCH (f:User)-[r:REQUESTED {id: $id}]->(t:User) `+requestFields,
		map[string]any{"id": id})
}

func (t neo4jTx) oneRequest(ctx context.Context, q string, params map[string]any) (Request, bool, error) {
	res, err := t.tx.Run(ctx, q, params)
	if err != nil {
		return Request{}, false, err
	}
	recs, err := res.Collect(ctx)
	if err != nil || len(recs) == 0 {
		return Request{}, false, err
	}
	r, err := requestFromRecord(recs[0])
	return r, err == nil, err
}

// insertRequest merges on the pair, so there is never more than one
// pending request from one user to another.
func (t neo4jTx) insertRequest(ctx context.Context, r Request) error {
	_, err := t.counters(ctx, `MATCH (f:User {id: $from}), (t:User {id: $to})
		MERGE (f)-[r:REQUESTED]->(t)
		ON CREATE SET r.id = $id, r.message = $message, r.ts = $ts`,
		map[string]any{"from": r.From, "to": r.To, "id": r.ID, "message": r.Message, "ts": r.TS})
	return err
}

func (t neo4jTx) deleteRequest(ctx context.Context, id string) (bool, error) {
	c, err := t.counters(ctx, `MATCH ()-[r:REQUESTED {id: $id}]->() DELETE r`, map[string]any{"id": id})
	if err != nil {
		return false, err
	}
	return c.RelationshipsDeleted() > 0, nil
}

func (t neo4jTx) setDMPolicy(ctx context.Context, userID string, p DMPolicy) error {
	_, err := t.counters(ctx, `MERGE (u:User {id: $id}) SET u.dm_policy = $policy`,
		map[string]any{"id": userID, "policy": string(p)})
	return err
}

// requestFromRecord reads the columns requestFields names; stored requests
// are pending.
func requestFromRecord(rec *neo4j.Record) (Request, error) {
	r := Request{State: statePending}
	var err error
	get := func(key string, dst *string) {
		if err == nil {
			*dst, _, err = neo4j.GetRecordValue[string](rec, key)
		}
	}
	get("id", &r.ID)
	get("sender", &r.From)
	get("recipient", &r.To)
	get("message", &r.Message)
	if err == nil {
		r.TS, _, err = neo4j.GetRecordValue[int64](rec, "ts")
	}
	return r, err
}
