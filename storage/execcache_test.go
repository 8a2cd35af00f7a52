package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"testing"

	"modernc.org/sqlite"
)

// smallCacheConnector makes SQLite connections whose statement cache holds
// max statements, so a test can make it start over.
type smallCacheConnector struct {
	dsn string
	max int
}

func (c smallCacheConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := (&sqlite.Driver{}).Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: conn, execs: newExecCache(c.max)}, nil
}

func (c smallCacheConnector) Driver() driver.Driver { return &sqlite.Driver{} }

// TestExecCache: statements run through the connection's prepared
// statement cache give the same answers as unprepared ones, including a
// query asked again while its own rows are still open, a query left open
// while the cache starts over, and a statement that does not prepare.
func TestExecCache(t *testing.T) {
	ctx := context.Background()
	for _, max := range []int{2, execCacheSize} {
		t.Run(fmt.Sprint("max=", max), func(t *testing.T) {
			db := sql.OpenDB(smallCacheConnector{dsn: "file:" + filepath.Join(t.TempDir(), "c.db"), max: max})
			db.SetMaxOpenConns(1)
			defer db.Close()
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES ($1, $2)`, i, fmt.Sprint("v", i)); err != nil {
					t.Fatal(err)
				}
			}
			const q = `SELECT k, v FROM t WHERE k >= $1 ORDER BY k`
			outer, err := tx.QueryContext(ctx, q, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for outer.Next() {
				var k int
				var v string
				if err := outer.Scan(&k, &v); err != nil {
					t.Fatal(err)
				}
				// The same text again while outer is open, then other
				// statements that may make the cache start over.
				var n int
				inner, err := tx.QueryContext(ctx, q, k)
				if err != nil {
					t.Fatal(err)
				}
				for inner.Next() {
					n++
				}
				inner.Close()
				if _, err := tx.ExecContext(ctx, `UPDATE t SET v = v WHERE k = $1`, k); err != nil {
					t.Fatal(err)
				}
				if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM t WHERE k < $1`, k).Scan(new(int)); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%d=%s:%d", k, v, n))
			}
			if err := outer.Err(); err != nil {
				t.Fatal(err)
			}
			outer.Close()
			if want := "[0=v0:5 1=v1:4 2=v2:3 3=v3:2 4=v4:1]"; fmt.Sprint(got) != want {
				t.Errorf("rows: got %v, want %s", got, want)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO nowhere VALUES ($1)`, 1); err == nil {
				t.Error("insert into a missing table: got no error")
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO t (k, v) VALUES ($1, $2)`, 0, "dup"); err == nil {
				t.Error("duplicate key through a cached statement: got no error")
			}
			tx.Rollback()
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.Raw(func(dc any) error {
				c := dc.(*guardConn).execs
				if len(c.stmts) > max {
					t.Errorf("cached statements: got %d, want at most %d", len(c.stmts), max)
				}
				for q, st := range c.stmts {
					if st.busy {
						t.Errorf("statement %q still busy after its rows closed", q)
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
