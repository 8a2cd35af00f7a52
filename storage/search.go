package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/storage/searchtext"
)

// The search index (schema 033): the text /search finds, per event, and a
// full-text index over its tokens. Which events may be found by whom is
// decided in package search; what counts as a match (the tokens) in
// storage/searchtext. This file stores and queries.

// searchKeys maps the event types the index holds to the content key whose
// text it holds: the spec's keys content.body, content.name, content.topic.
var searchKeys = map[string]string{
	"m.room.message": "body",
	"m.room.name":    "name",
	"m.room.topic":   "topic",
}

// SearchKeyType returns the event type whose text the spec's search key
// (content.body, content.name or content.topic) names; ok is false for
// any other key.
func SearchKeyType(key string) (typ string, ok bool) {
	for t, k := range searchKeys {
		if "content."+k == key {
			return t, true
		}
	}
	return "", false
}

// searchText returns the text an event puts in the index, if any.
// Encrypted events (m.room.encrypted) carry only ciphertext and are never
// indexed; nor are edits, whose new content replaces the text of the
// event they edit (see indexSearch).
func searchText(e *Event) (string, bool) {
	key, ok := searchKeys[e.Type]
	if !ok {
		return "", false
	}
	if e.Type == "m.room.message" && e.StateKey != nil {
		return "", false
	}
	if e.Type != "m.room.message" && (e.StateKey == nil || *e.StateKey != "") {
		return "", false
	}
	v := gjson.GetBytes(e.Client, "content."+key)
	if v.Type != gjson.String || v.Str == "" {
		return "", false
	}
	return v.Str, true
}

// indexSearch records e's text in the search index. An edit (m.replace
// carrying m.new_content) by the original's sender replaces the original's
// text instead, so a search finds the message as it reads now. Like
// indexRelation it passes on the insert's error.
func (w *WriteTx) indexSearch(ctx context.Context, e *Event, prev error) error {
	if prev != nil {
		return prev
	}
	if e.Type == "m.room.message" && e.StateKey == nil {
		if rel, ok := RelationOf(e.Client); ok && rel.RelType == "m.replace" {
			body := gjson.GetBytes(e.Client, `content.m\.new_content.body`)
			if body.Type != gjson.String {
				return nil
			}
			_, err := w.tx.ExecContext(ctx, `UPDATE search_docs SET text = $1, tokens = $2
				WHERE event_id = $3 AND room_id = $4 AND sender = $5 AND type = 'm.room.message'`,
				searchtext.Lower(body.Str), searchtext.Tokens(body.Str), rel.RelatesTo, e.RoomID, e.Sender)
			if err != nil {
				return fmt.Errorf("index edit: %w", err)
			}
			return nil
		}
	}
	text, ok := searchText(e)
	if !ok {
		return nil
	}
	_, err := w.tx.ExecContext(ctx, `INSERT INTO search_docs (pos, event_id, room_id, sender, type, text, tokens)
		VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING`,
		e.Pos, e.EventID, e.RoomID, e.Sender, e.Type, searchtext.Lower(text), searchtext.Tokens(text))
	if err != nil {
		return fmt.Errorf("index search text: %w", err)
	}
	return nil
}

// unindexSearch removes a redacted event's text from the index.
func (w *WriteTx) unindexSearch(ctx context.Context, eventID string) error {
	if _, err := w.tx.ExecContext(ctx, `DELETE FROM search_docs WHERE event_id = $1`, eventID); err != nil {
		return fmt.Errorf("unindex %s: %w", eventID, err)
	}
	return nil
}

// ensureSearchIndex makes the engine's full-text index over search_docs,
// once (every statement is idempotent). SQLite: an FTS5 table reading
// search_docs as its external content, kept in step by triggers, so the Go
// code only ever writes search_docs. PostgreSQL: a GIN index over the
// tokens' tsvector with the 'simple' configuration (no stemming, no stop
// words), no extension needed.
func (s *Store) ensureSearchIndex(ctx context.Context) error {
	var stmts []string
	if s.postgres {
		stmts = []string{`CREATE INDEX IF NOT EXISTS search_docs_tsv ON search_docs USING GIN (to_tsvector('simple', tokens))`}
	} else {
		stmts = []string{
			`CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(tokens, content='search_docs', content_rowid='pos', tokenize='unicode61 remove_diacritics 0')`,
			`CREATE TRIGGER IF NOT EXISTS search_docs_ai AFTER INSERT ON search_docs BEGIN
				INSERT INTO search_fts (rowid, tokens) VALUES (new.pos, new.tokens); END`,
			`CREATE TRIGGER IF NOT EXISTS search_docs_ad AFTER DELETE ON search_docs BEGIN
				INSERT INTO search_fts (search_fts, rowid, tokens) VALUES ('delete', old.pos, old.tokens); END`,
			`CREATE TRIGGER IF NOT EXISTS search_docs_au AFTER UPDATE ON search_docs BEGIN
				INSERT INTO search_fts (search_fts, rowid, tokens) VALUES ('delete', old.pos, old.tokens);
				INSERT INTO search_fts (rowid, tokens) VALUES (new.pos, new.tokens); END`,
		}
	}
	for _, q := range stmts {
		if _, err := s.write.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("search index: %w", err)
		}
	}
	return nil
}

// searchBackfillBatch is how many events one backfill transaction reads.
const searchBackfillBatch = 500

// BackfillSearch indexes the events stored before schema 033, once, a
// batch per transaction from where the last one stopped, then applies the
// edits among them in position order. Open calls it.
func (s *Store) BackfillSearch(ctx context.Context) error {
	if err := s.ensureSearchIndex(ctx); err != nil {
		return err
	}
	for {
		done := false
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var next, upto int64
			err := tx.QueryRowContext(ctx, `SELECT next_pos, upto FROM search_backfill WHERE id = 1`).Scan(&next, &upto)
			if errors.Is(err, sql.ErrNoRows) {
				done = true
				return nil
			}
			if err != nil {
				return err
			}
			if next >= upto {
				done = true
				_, err := tx.ExecContext(ctx, `DELETE FROM search_backfill WHERE id = 1`)
				return err
			}
			rows, err := tx.QueryContext(ctx, `SELECT pos, event_id, room_id, type, state_key, sender, client FROM events
				WHERE pos > $1 AND pos <= $2 AND type IN ('m.room.message', 'm.room.name', 'm.room.topic') AND redacted_by = ''
				ORDER BY pos LIMIT $3`, next, upto, searchBackfillBatch)
			if err != nil {
				return err
			}
			var batch []Event
			for rows.Next() {
				var e Event
				var client string
				var sk sql.NullString
				if err := rows.Scan(&e.Pos, &e.EventID, &e.RoomID, &e.Type, &sk, &e.Sender, &client); err != nil {
					rows.Close()
					return err
				}
				if sk.Valid {
					e.StateKey = &sk.String
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
				if err := w.indexSearch(ctx, &batch[i], nil); err != nil {
					return err
				}
			}
			next = upto
			if len(batch) == searchBackfillBatch {
				next = batch[len(batch)-1].Pos
			}
			_, err = tx.ExecContext(ctx, `UPDATE search_backfill SET next_pos = $1 WHERE id = 1`, next)
			return err
		})
		if err != nil {
			return fmt.Errorf("backfill search: %w", err)
		}
		if done {
			return nil
		}
	}
}

// SearchRoom is one room a search may look in, and up to where.
type SearchRoom struct {
	RoomID string
	MaxPos int64 // the last position the searcher may read; 0: no bound
}

// SearchQuery selects indexed events. Every token must match; every
// phrase must appear in the text. Results are newest first, or best rank
// first (ties newest first) when ByRank.
type SearchQuery struct {
	Rooms      []SearchRoom
	Tokens     []string // from searchtext.ParseTerm
	Phrases    []string
	Types      []string // event types to keep; empty: all indexed
	NotTypes   []string
	Senders    []string
	NotSenders []string
	ByRank     bool
	Before     int64 // newest first: only positions below it; 0: no bound
	Offset     int   // by rank: rows to skip
	Limit      int
	// PositionsOnly leaves EventID empty and Rank zero, for counting:
	// newest first only, and cheaper per row.
	PositionsOnly bool
}

// SearchHit is one matching event. Rank is higher for better matches;
// its scale differs between engines.
type SearchHit struct {
	Pos     int64
	EventID string
	RoomID  string
	Rank    float64
}

// likeEscape escapes LIKE's wildcards with a backslash.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// SearchEvents runs q. A query with no rooms or no tokens finds nothing.
func (s *Store) SearchEvents(ctx context.Context, q SearchQuery) ([]SearchHit, error) {
	if len(q.Rooms) == 0 || len(q.Tokens) == 0 || q.Limit <= 0 {
		return nil, nil
	}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	list := func(vs []string) string {
		ps := make([]string, len(vs))
		for i, v := range vs {
			ps[i] = arg(v)
		}
		return strings.Join(ps, ",")
	}
	var b strings.Builder // the matching rows, before order and limit
	if s.postgres {
		b.WriteString(`SELECT d.pos, d.event_id, d.room_id, d.tokens FROM search_docs d
			WHERE to_tsvector('simple', d.tokens) @@ plainto_tsquery('simple', ` + arg(strings.Join(q.Tokens, " ")) + `)`)
	} else {
		match := make([]string, len(q.Tokens))
		for i, t := range q.Tokens {
			match[i] = `"` + strings.ReplaceAll(t, `"`, `""`) + `"`
		}
		b.WriteString(`SELECT d.pos, d.event_id, d.room_id, -bm25(search_fts) FROM search_fts JOIN search_docs d ON d.pos = search_fts.rowid
			WHERE search_fts MATCH ` + arg(strings.Join(match, " ")))
	}
	// On SQLite the rooms are a filter on the rows FTS5 finds, never an
	// index to search by ("+" keeps SQLite from probing the room index
	// once per room for every match), and newest first is FTS5's own rowid
	// order, so a page stops as soon as it is full.
	roomCol, posCol := `d.room_id`, `d.pos`
	if !s.postgres {
		roomCol, posCol = `+d.room_id`, `search_fts.rowid`
	}
	var free []string
	var bounded []string
	for _, r := range q.Rooms {
		if r.MaxPos <= 0 {
			free = append(free, r.RoomID)
		} else {
			bounded = append(bounded, `(`+roomCol+` = `+arg(r.RoomID)+` AND d.pos <= `+arg(r.MaxPos)+`)`)
		}
	}
	if len(free) > 0 {
		bounded = append(bounded, roomCol+` IN (`+list(free)+`)`)
	}
	b.WriteString(` AND (` + strings.Join(bounded, " OR ") + `)`)
	for _, p := range q.Phrases {
		b.WriteString(` AND d.text LIKE ` + arg("%"+likeEscape(p)+"%") + ` ESCAPE '\'`)
	}
	if len(q.Types) > 0 {
		b.WriteString(` AND d.type IN (` + list(q.Types) + `)`)
	}
	if len(q.NotTypes) > 0 {
		b.WriteString(` AND d.type NOT IN (` + list(q.NotTypes) + `)`)
	}
	if len(q.Senders) > 0 {
		b.WriteString(` AND d.sender IN (` + list(q.Senders) + `)`)
	}
	if len(q.NotSenders) > 0 {
		b.WriteString(` AND d.sender NOT IN (` + list(q.NotSenders) + `)`)
	}
	if !q.ByRank && q.Before > 0 {
		b.WriteString(` AND ` + posCol + ` < ` + arg(q.Before))
	}
	limit := ` LIMIT ` + arg(q.Limit)
	if q.ByRank {
		limit += ` OFFSET ` + arg(max(q.Offset, 0))
	}
	var query string
	switch {
	case !s.postgres && q.ByRank:
		query = b.String() + ` ORDER BY 4 DESC, d.pos DESC` + limit
	case !s.postgres && q.PositionsOnly:
		query = strings.Replace(b.String(), `d.event_id, d.room_id, -bm25(search_fts)`, `'', d.room_id, 0`, 1) + ` ORDER BY search_fts.rowid DESC` + limit
	case !s.postgres:
		query = b.String() + ` ORDER BY search_fts.rowid DESC` + limit
	case q.PositionsOnly:
		query = `WITH m AS MATERIALIZED (` + b.String() + `) SELECT m.pos, '', m.room_id, 0 FROM m ORDER BY m.pos DESC` + limit
	// On PostgreSQL the matches are taken from the GIN index first
	// (MATERIALIZED): ordered by position with a limit, the planner may
	// otherwise walk the position index backwards and test every row's
	// tokens, which for a rare term reads the whole table.
	case q.ByRank:
		query = `WITH m AS MATERIALIZED (` + b.String() + `)
			SELECT m.pos, m.event_id, m.room_id, ts_rank(to_tsvector('simple', m.tokens), plainto_tsquery('simple', $1)) AS r
			FROM m ORDER BY r DESC, m.pos DESC` + limit
	default:
		// Newest first, only the page's rows are ranked: ts_rank re-reads
		// each row's tokens.
		query = `WITH m AS MATERIALIZED (` + b.String() + `), p AS (SELECT * FROM m ORDER BY m.pos DESC` + limit + `)
			SELECT p.pos, p.event_id, p.room_id, ts_rank(to_tsvector('simple', p.tokens), plainto_tsquery('simple', $1))
			FROM p ORDER BY p.pos DESC`
	}
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var out []SearchHit
	for rows.Next() {
		var h SearchHit
		if err := rows.Scan(&h.Pos, &h.EventID, &h.RoomID, &h.Rank); err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return out, nil
}
