package storage

import "context"

// UnindexSearch empties the search index and records every stored event
// for backfill, as migration 033 finds a database written before it.
// Tests only.
func (s *Store) UnindexSearch(ctx context.Context) error {
	if _, err := s.write.ExecContext(ctx, `DELETE FROM search_docs`); err != nil {
		return err
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO search_backfill (id, next_pos, upto) SELECT 1, 0, COALESCE(MAX(pos), 0) FROM events`)
	return err
}
