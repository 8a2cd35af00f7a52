package storage

import (
	"context"
	"fmt"
)

// Backfill (issue 11): what /messages needs to see where this server's
// copy of a room's history stops, and what the writer needs to give a
// join's state event its place once backfill reaches it. Package rooms and
// federation/backfill decide what to fetch and store.

// BackwardGaps returns those of ids (listed events) that cite a prev event
// the server holds neither as a listed event nor as a rejected or
// soft-failed one (an outlier does not count: it has no place in the
// history). History before such an event is missing here: a backward
// extremity, which another server can fill with /backfill. Two indexed
// reads, whatever the room's size; prev events that are themselves among
// ids are not looked up again.
func (s *Store) BackwardGaps(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	inPage := make(map[string]bool, len(ids))
	for _, id := range ids {
		inPage[id] = true
	}
	prevsOf := make(map[string][]string, len(ids))
	var want []string
	for rest := ids; len(rest) > 0; {
		n := min(len(rest), idChunk)
		args := make([]any, n)
		for i, id := range rest[:n] {
			args[i] = id
		}
		rest = rest[n:]
		rows, err := s.read.QueryContext(ctx, `SELECT event_id, prev_ids FROM events WHERE event_id IN (`+placeholders(1, n)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("backward gaps: %w", err)
		}
		for rows.Next() {
			var id, prev string
			if err := rows.Scan(&id, &prev); err != nil {
				rows.Close()
				return nil, fmt.Errorf("backward gaps: %w", err)
			}
			prevs := splitIDs(prev)
			prevsOf[id] = prevs
			for _, p := range prevs {
				if !inPage[p] {
					want = append(want, p)
				}
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("backward gaps: %w", err)
		}
	}
	held := make(map[string]bool, len(want))
	for len(want) > 0 {
		n := min(len(want), idChunk)
		args := make([]any, n)
		for i, id := range want[:n] {
			args[i] = id
		}
		want = want[n:]
		in := placeholders(1, n)
		rows, err := s.read.QueryContext(ctx, `SELECT event_id FROM events WHERE event_id IN (`+in+`)
			UNION ALL SELECT event_id FROM unlisted_events WHERE event_id IN (`+in+`) AND kind <> 'outlier'`, args...)
		if err != nil {
			return nil, fmt.Errorf("backward gaps: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("backward gaps: %w", err)
			}
			held[id] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("backward gaps: %w", err)
		}
	}
	var out []string
	for _, id := range ids {
		for _, p := range prevsOf[id] {
			if !inPage[p] && !held[p] {
				out = append(out, id)
				break
			}
		}
	}
	return out, nil
}

// SetEventStateGroup gives a listed event the state group after it. Only
// for events stored without one: the state events a remote join stored as
// history before the join, when backfill reaches them and learns their
// state.
func (w *WriteTx) SetEventStateGroup(ctx context.Context, eventID string, group int64) error {
	if _, err := w.tx.ExecContext(ctx, `UPDATE events SET state_group = $2 WHERE event_id = $1 AND state_group = 0`, eventID, group); err != nil {
		return fmt.Errorf("set state group of %s: %w", eventID, err)
	}
	return nil
}
