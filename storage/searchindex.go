package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// The search index is filled behind the writer (schema 045). A send's
// transaction only counts the searchable events it stores
// (WriteTx.Searchable); the room writer indexes them later in a
// transaction of their own, many at a time, when it is idle or the backlog
// grows (rooms/searchindex.go). Indexing inside every send cost a send
// about a tenth of its CPU (the FTS5 or GIN insert and the pages it
// dirties); batched, FTS5 merges its segment writes. Backfilled events
// (positions at or below zero) sit below the index's watermark, so they
// are still indexed as they are stored.

// SearchIndexedPos returns the stream position up to which every event is
// in the search index.
func (s *Store) SearchIndexedPos(ctx context.Context) (int64, error) {
	var pos int64
	if err := s.read.QueryRowContext(ctx, `SELECT indexed_pos FROM search_progress WHERE id = 1`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("search index position: %w", err)
	}
	return pos, nil
}

// Searchable returns how many events with text for the search index the
// transaction stored above position zero: the index's backlog it adds.
func (w *WriteTx) Searchable() int { return w.searchable }

// IndexSearchAfter indexes, in w's transaction, the stored events at
// positions in (after, upto], at most limit of them, in position order, and
// records how far the index now reaches. It returns that position: upto
// when fewer than limit events were left. Redacted events are skipped: their
// text is gone, and the redaction already removed any entry they had.
func (w *WriteTx) IndexSearchAfter(ctx context.Context, after, upto int64, limit int) (int64, error) {
	rows, err := w.tx.QueryContext(ctx, `SELECT pos, event_id, room_id, type, state_key, sender, client FROM events
		WHERE pos > $1 AND pos <= $2 AND type IN ('m.room.message', 'm.room.name', 'm.room.topic') AND redacted_by = ''
		ORDER BY pos LIMIT $3`, after, upto, limit)
	if err != nil {
		return 0, fmt.Errorf("search index pass: %w", err)
	}
	batch := make([]Event, 0, min(limit, 64))
	for rows.Next() {
		var e Event
		var client string
		var sk sql.NullString
		if err := rows.Scan(&e.Pos, &e.EventID, &e.RoomID, &e.Type, &sk, &e.Sender, &client); err != nil {
			rows.Close()
			return 0, fmt.Errorf("search index pass: %w", err)
		}
		if sk.Valid {
			e.StateKey = &sk.String
		}
		e.Client = []byte(client)
		batch = append(batch, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("search index pass: %w", err)
	}
	for i := range batch {
		if err := w.indexSearch(ctx, &batch[i], nil); err != nil {
			return 0, err
		}
	}
	reached := upto
	if len(batch) == limit {
		reached = batch[len(batch)-1].Pos
	}
	if _, err := w.tx.ExecContext(ctx, `UPDATE search_progress SET indexed_pos = $1 WHERE id = 1`, reached); err != nil {
		return 0, fmt.Errorf("search index position: %w", err)
	}
	return reached, nil
}
