package storage

import (
	"context"
	"fmt"
	"strings"
)

// TimelinePlan returns the engine's plan for RoomTimelines over bounds: on
// PostgreSQL with ANALYZE, so a test can read how many rows each scan
// really returned; on SQLite the query plan. Tests only.
func (s *Store) TimelinePlan(ctx context.Context, bounds []RoomBound, limit int) (string, error) {
	q, args := s.roomTimelinesQuery(bounds, limit)
	explain := "EXPLAIN QUERY PLAN "
	if s.postgres {
		explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
	}
	rows, err := s.read.QueryContext(ctx, explain+q, args...)
	if err != nil {
		return "", fmt.Errorf("explain: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	var out strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		fmt.Fprintln(&out, vals[len(vals)-1])
	}
	return out.String(), rows.Err()
}

// Analyze refreshes the planner's statistics. Tests only.
func (s *Store) Analyze(ctx context.Context) error {
	_, err := s.write.ExecContext(ctx, `ANALYZE`)
	return err
}

// OpenAt opens a store migrated only up to schema version upto, so a test
// can write data as an older Parley did and then upgrade it. Tests only.
func OpenAt(ctx context.Context, url, sqlitePath string, upto int) (*Store, error) {
	var s *Store
	var err error
	if url == "" {
		s, err = openSQLite(sqlitePath)
	} else {
		s, err = openPostgres(url)
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrateTo(ctx, upto); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Exec runs a statement on the write connection. Tests only.
func (s *Store) Exec(ctx context.Context, q string, args ...any) error {
	_, err := s.write.ExecContext(ctx, q, args...)
	return err
}
