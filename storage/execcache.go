package storage

import (
	"context"
	"database/sql/driver"
	"reflect"
)

// execCache keeps one connection's statements prepared, by their SQL text.
//
// Why: modernc's SQLite driver parses and plans every statement it is given
// as text, and the writer runs the same few statements for every send (the
// event, its transaction key, the room's extremities, the watermark). The
// parse was about a tenth of the process's CPU in BenchmarkSendConcurrent.
// Keeping the prepared statement per connection removes it, for every
// statement of the write connection, with no change to the code that
// issues them. database/sql's own prepared statements cannot be used for
// this: preparing on the *sql.DB needs a free connection, and the writer's
// transaction holds the only one.
//
// An Exec runs to completion before it returns, so its statement is free
// again at once. A query leaves its rows open on the statement: a cached
// query statement is marked busy until its rows close, and a second query
// of the same text meanwhile (a loop reading rows while asking again) runs
// unprepared, as before.
//
// PostgreSQL needs none of this: pgx caches statements per connection.
//
// An execCache belongs to one connection; database/sql never uses a
// connection from two goroutines at once, so it needs no lock.
type execCache struct {
	max   int                    // entries kept; when full, the cache starts over
	stmts map[string]*cachedStmt // by SQL text
}

// cachedStmt is one prepared statement of the cache.
type cachedStmt struct {
	execStmt
	busy bool // rows of a query are open on it
	gone bool // dropped from the cache while busy: close it when the rows close
}

// execStmt is a driver statement that runs with a context.
type execStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// execCacheSize bounds the statements a connection keeps prepared. The
// writer's fixed statements number a few dozen; statements whose text
// varies (multi-row inserts) mostly skip the cache (maxCachedArgs), and the
// rest cannot grow it without end.
const execCacheSize = 256

// maxCachedArgs leaves statements with more arguments than this unprepared:
// their text is built for the number of rows or IN items they carry, so
// the same text rarely comes twice.
const maxCachedArgs = 32

func newExecCache(max int) *execCache {
	return &execCache{max: max, stmts: make(map[string]*cachedStmt)}
}

// get returns the prepared statement for query on conn, preparing it on
// first use, or nil when the statement is to run unprepared (too many
// arguments, busy with open rows, or a text that does not prepare: running
// it unprepared then reports the error as before).
func (c *execCache) get(ctx context.Context, conn driver.Conn, query string, nargs int) *cachedStmt {
	if c == nil || nargs > maxCachedArgs {
		return nil
	}
	if st, ok := c.stmts[query]; ok {
		if st.busy {
			return nil
		}
		return st
	}
	p, ok := conn.(driver.ConnPrepareContext)
	if !ok {
		return nil
	}
	ds, err := p.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	es, ok := ds.(execStmt)
	if !ok {
		_ = ds.Close()
		return nil
	}
	if len(c.stmts) >= c.max {
		c.close()
	}
	st := &cachedStmt{execStmt: es}
	c.stmts[query] = st
	return st
}

// query runs a cached query statement; it stays busy until the rows close.
func (st *cachedStmt) query(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := st.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	st.busy = true
	return &cachedRows{Rows: rows, st: st}, nil
}

// close finalizes every cached statement and empties the cache. A busy
// statement is finalized when its rows close.
func (c *execCache) close() {
	if c == nil {
		return
	}
	for q, st := range c.stmts {
		if st.busy {
			st.gone = true
		} else {
			_ = st.Close()
		}
		delete(c.stmts, q)
	}
}

// cachedRows are the rows of a cached query statement: closing them frees
// the statement for its next use. They pass on the column type methods
// database/sql looks for, so wrapping changes nothing a caller sees.
type cachedRows struct {
	driver.Rows
	st *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.st != nil {
		r.st.busy = false
		if r.st.gone {
			_ = r.st.Close()
		}
		r.st = nil
	}
	return err
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if c, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return c.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	if c, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return c.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *cachedRows) ColumnTypeNullable(i int) (bool, bool) {
	if c, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return c.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *cachedRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if c, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return c.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if c, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return c.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
