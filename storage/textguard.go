package storage

import (
	"context"
	"database/sql/driver"
	"fmt"
	"reflect"

	"github.com/parley-im/parley/storage/storetext"
)

// ErrUnstorable is returned (wrapped) when a statement's argument holds
// text no engine may store the same way: U+0000 or invalid UTF-8.
// PostgreSQL's text type refuses both while SQLite keeps them, so the store
// refuses them on both engines before the statement reaches the database.
// It is the defence behind the client API's own checks, which answer 400
// first; callers map it to a client error, never to 500.
var ErrUnstorable = storetext.ErrUnstorable

// guardConnector wraps a driver's connector so that every connection it
// makes checks each statement argument with storetext. The check sits in
// the driver, below database/sql, so it covers every query, transaction and
// prepared statement the package runs, including ones added later.
type guardConnector struct {
	inner  driver.Connector
	faults *faultHook // test-only statement faults (faults.go); nil for none
	// cacheExecs keeps each connection's Exec statements prepared
	// (execcache.go): set for SQLite's write connection.
	cacheExecs bool
}

func (c guardConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	gc := &guardConn{Conn: conn, faults: c.faults}
	if c.cacheExecs {
		gc.execs = newExecCache(execCacheSize)
	}
	return gc, nil
}

func (c guardConnector) Driver() driver.Driver { return c.inner.Driver() }

// dsnConnector is the connector database/sql would build for a driver
// without one of its own.
type dsnConnector struct {
	drv driver.Driver
	dsn string
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.drv }

// guardConn forwards every optional driver interface the engines implement
// (database/sql discovers them by type assertion, so a missing one would
// silently change how it drives the connection) and adds the argument
// check in CheckNamedValue.
type guardConn struct {
	driver.Conn
	faults *faultHook // static; see faults.go
	execs  *execCache // nil: none; used by whoever holds the connection
}

// Close finalizes the cached statements before the connection closes.
func (c *guardConn) Close() error {
	c.execs.close()
	return c.Conn.Close()
}

// CheckNamedValue refuses unstorable text, then lets the engine's own check
// (or database/sql's default conversion) run.
func (c *guardConn) CheckNamedValue(nv *driver.NamedValue) error {
	if err := checkArg(nv.Value); err != nil {
		return err
	}
	if nvc, ok := c.Conn.(driver.NamedValueChecker); ok {
		return nvc.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// checkArg checks the text in one argument: strings, byte slices (the
// schema has no binary columns) and pointers to them, including named
// types such as json.RawMessage.
func checkArg(v any) error {
	switch x := v.(type) {
	case nil, int, int64, int32, bool, float64:
		return nil
	case string:
		return storetext.Check(x)
	case []byte:
		return storetext.CheckBytes(x)
	case *string:
		if x == nil {
			return nil
		}
		return storetext.Check(*x)
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	switch {
	case rv.Kind() == reflect.String:
		return storetext.Check(rv.String())
	case rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8:
		return storetext.CheckBytes(rv.Bytes())
	case rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.String:
		for i := range rv.Len() {
			if err := storetext.Check(rv.Index(i).String()); err != nil {
				return err
			}
		}
		return nil
	case rv.CanInterface():
		if vr, ok := rv.Interface().(driver.Valuer); ok {
			inner, err := vr.Value()
			if err != nil {
				return fmt.Errorf("argument value: %w", err)
			}
			if _, again := inner.(driver.Valuer); !again {
				return checkArg(inner)
			}
		}
	}
	return nil
}

func (c *guardConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.Conn.Prepare(query)
}

func (c *guardConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		return c.faults.wrapTx(b.BeginTx(ctx, opts))
	}
	return c.faults.wrapTx(c.Conn.Begin()) //nolint:staticcheck // the fallback database/sql itself uses
}

func (c *guardConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.faults.check(query, args); err != nil {
		return nil, err
	}
	if st := c.execs.get(ctx, c.Conn, query, len(args)); st != nil {
		return st.ExecContext(ctx, args)
	}
	if e, ok := c.Conn.(driver.ExecerContext); ok {
		return e.ExecContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *guardConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.faults.check(query, args); err != nil {
		return nil, err
	}
	if st := c.execs.get(ctx, c.Conn, query, len(args)); st != nil {
		return st.query(ctx, args)
	}
	if q, ok := c.Conn.(driver.QueryerContext); ok {
		return q.QueryContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *guardConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *guardConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *guardConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

var (
	_ driver.NamedValueChecker  = (*guardConn)(nil)
	_ driver.ConnPrepareContext = (*guardConn)(nil)
	_ driver.ConnBeginTx        = (*guardConn)(nil)
	_ driver.ExecerContext      = (*guardConn)(nil)
	_ driver.QueryerContext     = (*guardConn)(nil)
	_ driver.Pinger             = (*guardConn)(nil)
	_ driver.SessionResetter    = (*guardConn)(nil)
	_ driver.Validator          = (*guardConn)(nil)
)
