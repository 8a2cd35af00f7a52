package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// The relations index (schema 029): which event relates to which, so
// /relations, /threads and bundled aggregations read an indexed table
// instead of every event's JSON. The domain rules (who may read what,
// which edit counts) live in package relations; this file only stores and
// queries.

// Relation is one row of the index: EventID relates to RelatesTo by RelType.
type Relation struct {
	EventID   string
	RoomID    string
	RelatesTo string
	RelType   string
	Type      string
	Sender    string
	Pos       int64
}

// RelationOf reads content.m.relates_to from an event's client JSON. ok is
// false when the event has no usable relation (no event_id or rel_type, or
// not strings), which is most events.
func RelationOf(client []byte) (rel Relation, ok bool) {
	r := gjson.GetBytes(client, `content.m\.relates_to`)
	if !r.IsObject() {
		return Relation{}, false
	}
	id, typ := r.Get("event_id"), r.Get("rel_type")
	if id.Type != gjson.String || typ.Type != gjson.String || id.Str == "" || typ.Str == "" {
		return Relation{}, false
	}
	return Relation{RelatesTo: id.Str, RelType: typ.Str}, true
}

// indexRelation records e in the relations index when it relates to
// another event. It takes the error of the event's own insert and returns
// it unchanged when set, so InsertEvent calls it in one line. State events
// are not indexed: relations are for messages.
func (w *WriteTx) indexRelation(ctx context.Context, e *Event, prev error) error {
	if prev != nil || e.StateKey != nil {
		return prev
	}
	rel, ok := RelationOf(e.Client)
	if !ok || rel.RelatesTo == e.EventID {
		return nil
	}
	_, err := w.tx.ExecContext(ctx, `INSERT INTO event_relations (event_id, room_id, relates_to_id, rel_type, type, sender, pos)
		VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (event_id) DO NOTHING`,
		e.EventID, e.RoomID, rel.RelatesTo, rel.RelType, e.Type, e.Sender, e.Pos)
	if err != nil {
		return fmt.Errorf("index relation: %w", err)
	}
	return nil
}

// RelationQuery selects the events relating to one parent.
type RelationQuery struct {
	RoomID    string
	ParentID  string
	RelType   string // "" for any
	EventType string // "" for any
	// Depth is how many hops from the parent to follow: 1 for direct
	// relations only. Filters apply to the events returned, at any depth.
	Depth int
	// After and Before bound positions exclusively; 0 means no bound.
	After, Before int64
	Backwards     bool // newest first
	Limit         int
}

// Relations returns the unredacted events relating to q.ParentID, in
// position order (newest first when q.Backwards).
func (s *Store) Relations(ctx context.Context, q RelationQuery) ([]Event, error) {
	depth := max(q.Depth, 1)
	args := []any{q.ParentID, q.RoomID, depth}
	var cond strings.Builder
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.RelType != "" {
		cond.WriteString(" AND r.rel_type = " + arg(q.RelType))
	}
	if q.EventType != "" {
		cond.WriteString(" AND r.type = " + arg(q.EventType))
	}
	if q.After > 0 {
		cond.WriteString(" AND e.pos > " + arg(q.After))
	}
	if q.Before > 0 {
		cond.WriteString(" AND e.pos < " + arg(q.Before))
	}
	order := "ASC"
	if q.Backwards {
		order = "DESC"
	}
	query := `WITH RECURSIVE rel(event_id, depth) AS (
			SELECT event_id, 1 FROM event_relations WHERE relates_to_id = $1 AND room_id = $2
			UNION ALL
			SELECT r.event_id, rel.depth + 1 FROM event_relations r JOIN rel ON r.relates_to_id = rel.event_id
				WHERE rel.depth < $3 AND r.room_id = $2)
		SELECT ` + eventCols + ` FROM rel JOIN event_relations r ON r.event_id = rel.event_id
			JOIN events e ON e.event_id = r.event_id
		WHERE e.redacted_by = ''` + cond.String() + `
		ORDER BY e.pos ` + order + ` LIMIT ` + arg(q.Limit)
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("relations of %s: %w", q.ParentID, err)
	}
	return collectEvents(rows, false)
}

// RelationAggregate summarises one parent's relations of one type, for
// bundled aggregations. For m.thread it counts the replies; for m.replace
// it counts only edits by the parent's sender, of the parent's type, of a
// parent that is neither state nor an edit itself (the spec's validity
// rules). For m.reference there is one row per referencing event.
type RelationAggregate struct {
	ParentID  string
	RelType   string
	Count     int
	LatestPos int64  // the newest relating event's position
	ByViewer  int    // how many of them the viewer sent
	EventID   string // m.reference: the referencing event
}

// RelationAggregates summarises the relations of parentIDs in one query, so
// a page of events, or a sync over many rooms, costs the same number of
// queries as one event. A relation counts only from the parent's own room.
func (s *Store) RelationAggregates(ctx context.Context, viewer string, parentIDs []string) ([]RelationAggregate, error) {
	if len(parentIDs) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(parentIDs)+1)
	args = append(args, viewer)
	for _, id := range parentIDs {
		args = append(args, id)
	}
	in := placeholders(2, len(parentIDs))
	query := `SELECT r.relates_to_id, r.rel_type, COUNT(*), MAX(r.pos), SUM(CASE WHEN r.sender = $1 THEN 1 ELSE 0 END), ''
		FROM event_relations r
			JOIN events e ON e.event_id = r.event_id
			JOIN events p ON p.event_id = r.relates_to_id
			LEFT JOIN event_relations pr ON pr.event_id = p.event_id AND pr.rel_type = 'm.replace'
		WHERE r.relates_to_id IN (` + in + `) AND e.redacted_by = '' AND p.room_id = r.room_id
			AND (r.rel_type = 'm.thread'
				OR (r.rel_type = 'm.replace' AND r.sender = p.sender AND r.type = p.type AND p.state_key IS NULL AND pr.event_id IS NULL))
		GROUP BY r.relates_to_id, r.rel_type
		UNION ALL
		SELECT r.relates_to_id, r.rel_type, 1, r.pos, 0, r.event_id
		FROM event_relations r
			JOIN events e ON e.event_id = r.event_id
			JOIN events p ON p.event_id = r.relates_to_id
		WHERE r.relates_to_id IN (` + in + `) AND e.redacted_by = '' AND r.rel_type = 'm.reference' AND p.room_id = r.room_id`
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("relation aggregates: %w", err)
	}
	defer rows.Close()
	var out []RelationAggregate
	for rows.Next() {
		var a RelationAggregate
		if err := rows.Scan(&a.ParentID, &a.RelType, &a.Count, &a.LatestPos, &a.ByViewer, &a.EventID); err != nil {
			return nil, fmt.Errorf("relation aggregates: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// EventsAt loads the events at the given positions, in position order.
func (s *Store) EventsAt(ctx context.Context, positions []int64) ([]Event, error) {
	if len(positions) == 0 {
		return nil, nil
	}
	args := make([]any, len(positions))
	for i, p := range positions {
		args[i] = p
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+eventCols+` FROM events e WHERE e.pos IN (`+placeholders(1, len(args))+`) ORDER BY e.pos`, args...)
	if err != nil {
		return nil, fmt.Errorf("events at: %w", err)
	}
	return collectEvents(rows, false)
}

// Thread is one thread of a room: its root and its newest reply's position.
type Thread struct {
	RootID    string
	LatestPos int64
}

// Threads lists roomID's threads, newest activity first, whose latest
// reply is below before (0: no bound). A non-empty participant keeps the
// threads they started or replied to. Redacted replies do not count.
func (s *Store) Threads(ctx context.Context, roomID, participant string, before int64, limit int) ([]Thread, error) {
	args := []any{roomID}
	having := ""
	if before > 0 {
		args = append(args, before)
		having = " HAVING MAX(r.pos) < $2"
	}
	if participant != "" {
		args = append(args, participant)
		n := "$" + strconv.Itoa(len(args))
		if having == "" {
			having = " HAVING "
		} else {
			having += " AND "
		}
		having += "(p.sender = " + n + " OR SUM(CASE WHEN r.sender = " + n + " THEN 1 ELSE 0 END) > 0)"
	}
	args = append(args, limit)
	query := `SELECT r.relates_to_id, MAX(r.pos) FROM event_relations r
			JOIN events e ON e.event_id = r.event_id
			JOIN events p ON p.event_id = r.relates_to_id
		WHERE r.room_id = $1 AND r.rel_type = 'm.thread' AND e.redacted_by = '' AND p.room_id = $1
		GROUP BY r.relates_to_id, p.sender` + having + `
		ORDER BY MAX(r.pos) DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("threads of %s: %w", roomID, err)
	}
	defer rows.Close()
	var out []Thread
	for rows.Next() {
		var t Thread
		if err := rows.Scan(&t.RootID, &t.LatestPos); err != nil {
			return nil, fmt.Errorf("threads of %s: %w", roomID, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// relationsBackfillBatch is how many candidate events one backfill
// transaction indexes, so the writer's lock is held briefly.
const relationsBackfillBatch = 500

// BackfillRelations indexes the events stored before schema 029, once: the
// migration records their position range in relations_backfill, and each
// batch moves its cursor in the same transaction as its index rows, so an
// interrupted start resumes where it stopped. It returns at once when there
// is nothing left (the row is deleted when done). Open calls it before the
// writer starts.
func (s *Store) BackfillRelations(ctx context.Context) error {
	for {
		done := false
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var next, upto int64
			err := tx.QueryRowContext(ctx, `SELECT next_pos, upto FROM relations_backfill WHERE id = 1`).Scan(&next, &upto)
			if errors.Is(err, sql.ErrNoRows) {
				done = true
				return nil
			}
			if err != nil {
				return err
			}
			if next >= upto {
				done = true
				_, err := tx.ExecContext(ctx, `DELETE FROM relations_backfill WHERE id = 1`)
				return err
			}
			// LIKE narrows the scan to candidates; RelationOf decides.
			rows, err := tx.QueryContext(ctx, `SELECT pos, event_id, room_id, type, sender, client FROM events
				WHERE pos > $1 AND pos <= $2 AND state_key IS NULL AND client LIKE '%m.relates_to%'
				ORDER BY pos LIMIT $3`, next, upto, relationsBackfillBatch)
			if err != nil {
				return err
			}
			var batch []Event
			for rows.Next() {
				var e Event
				var client string
				if err := rows.Scan(&e.Pos, &e.EventID, &e.RoomID, &e.Type, &e.Sender, &client); err != nil {
					rows.Close()
					return err
				}
				e.Client = []byte(client)
				batch = append(batch, e)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			w := &WriteTx{tx: tx, store: s}
			for i := range batch {
				if err := w.indexRelation(ctx, &batch[i], nil); err != nil {
					return err
				}
			}
			next = upto
			if len(batch) == relationsBackfillBatch {
				next = batch[len(batch)-1].Pos
			}
			_, err = tx.ExecContext(ctx, `UPDATE relations_backfill SET next_pos = $1 WHERE id = 1`, next)
			return err
		})
		if err != nil {
			return fmt.Errorf("backfill relations: %w", err)
		}
		if done {
			return nil
		}
	}
}
