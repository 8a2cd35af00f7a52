// Package storage owns Parley's persistent state: the SQL schema, its
// migrations and every query. One implementation serves two engines: SQLite
// (modernc.org/sqlite, the embedded default) and PostgreSQL (pgx). The SQL is
// written once in a portable dialect, so both pass the same conformance suite
// (storage/storagetest).
//
// Storage never decides anything: auth, ordering and fan-out belong to rooms
// and inbox. Stream positions are assigned by the single writer in rooms and
// passed in; the database never invents them.
package storage

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
)

//go:embed schema/*.sql
var schemaFS embed.FS

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("storage: not found")

// ErrConflict is returned when a unique key is already taken.
var ErrConflict = errors.New("storage: already exists")

// Store is the database. It is safe for concurrent use.
type Store struct {
	// Static after Open.
	read     countedDB // readers; for SQLite a pool of read-only connections
	write    countedDB // writers; for SQLite a single connection (SQLite has one writer)
	postgres bool

	queries atomic.Int64 // statements run outside write transactions

	commitFault atomic.Pointer[func() error] // see SetCommitFault
	faults      *faultHook                   // see SetStatementFault; static after Open

	otk otkCache // one-time-key counts per device; see otkcache.go
}

// SetCommitFault makes every write-transaction commit call f first and,
// when f returns an error, roll back and fail with it: what a full disk or
// a failing fsync does to a commit. Fault drills and tests use it to prove
// that no send is acknowledged unless it committed. Nil clears the fault.
func (s *Store) SetCommitFault(f func() error) {
	if f == nil {
		s.commitFault.Store(nil)
		return
	}
	s.commitFault.Store(&f)
}

// countedDB counts the statements it runs, so tests can prove that a sync's
// query count does not grow with the number of rooms.
//
// With a statement cache (SQLite), queries run as prepared statements:
// SQLite would otherwise parse every statement anew, which was an eighth of
// a woken long-poll's cost. pgx caches statements per connection itself.
type countedDB struct {
	*sql.DB
	n     *atomic.Int64
	stmts *stmtCache // nil: no cache
}

func (d countedDB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	d.n.Add(1)
	if st := d.stmts.get(ctx, d.DB, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return d.DB.QueryContext(ctx, q, args...)
}

func (d countedDB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	d.n.Add(1)
	if st := d.stmts.get(ctx, d.DB, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return d.DB.QueryRowContext(ctx, q, args...)
}

// stmtCache holds prepared statements by query text. It is bounded: when
// full it starts over, so queries whose text varies (IN lists of any
// length) cannot grow it without end.
type stmtCache struct {
	mu    sync.Mutex
	max   int
	stmts map[string]*sql.Stmt // guarded by mu
}

func newStmtCache(max int) *stmtCache { return &stmtCache{max: max, stmts: map[string]*sql.Stmt{}} }

// get returns a prepared statement for q, or nil to run it unprepared.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.stmts[q]; st != nil {
		return st
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil // the plain query reports the error
	}
	if len(c.stmts) >= c.max {
		for k, old := range c.stmts {
			old.Close() // database/sql closes it once in-flight queries finish
			delete(c.stmts, k)
		}
	}
	c.stmts[q] = st
	return st
}

func (d countedDB) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	d.n.Add(1)
	return d.DB.ExecContext(ctx, q, args...)
}

// Queries returns how many statements the store has run outside the
// writer's transactions since Open.
func (s *Store) Queries() int64 { return s.queries.Load() }

func newStore(read, write *sql.DB, postgres bool) *Store {
	s := &Store{postgres: postgres}
	s.read = countedDB{DB: read, n: &s.queries}
	s.write = countedDB{DB: write, n: &s.queries}
	if !postgres {
		s.read.stmts = newStmtCache(512)
	}
	return s
}

// Open connects to the database named by url and migrates it. An empty url
// means SQLite at sqlitePath.
func Open(ctx context.Context, url, sqlitePath string) (*Store, error) {
	var s *Store
	var err error
	if url == "" {
		s, err = openSQLite(sqlitePath)
	} else if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		s, err = openPostgres(url)
	} else {
		return nil, fmt.Errorf("open store: unsupported database URL scheme in %q", url)
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.BackfillRelations(ctx); err != nil { // relations.go: once, after schema 029
		s.Close()
		return nil, err
	}
	if err := s.BackfillSearch(ctx); err != nil { // search.go: the full-text index, and once after schema 033
		s.Close()
		return nil, err
	}
	return s, nil
}

func openSQLite(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	// synchronous=FULL: a commit is on disk before it returns, so an
	// acknowledged send survives power loss. WAL lets readers run beside the writer.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=busy_timeout(10000)&_pragma=foreign_keys(on)&_txlock=immediate"
	faults := new(faultHook)
	write := sql.OpenDB(guardConnector{inner: dsnConnector{drv: &sqlite.Driver{}, dsn: dsn}, faults: faults, cacheExecs: true})
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	read := sql.OpenDB(guardConnector{inner: dsnConnector{drv: &sqlite.Driver{}, dsn: dsn + "&_pragma=query_only(on)"}})
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
	if err := write.Ping(); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s := newStore(read, write, false)
	s.faults = faults
	return s, nil
}

func openPostgres(url string) (*Store, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	// Acknowledge only what is on disk, whatever the server's default says.
	cfg.RuntimeParams["synchronous_commit"] = "on"
	faults := new(faultHook)
	db := sql.OpenDB(guardConnector{inner: stdlib.GetConnector(*cfg), faults: faults})
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	s := newStore(db, db, true)
	s.faults = faults
	return s, nil
}

// Close releases the connections.
func (s *Store) Close() error {
	err := s.write.Close()
	if s.read.DB != s.write.DB {
		err = errors.Join(err, s.read.Close())
	}
	return err
}

// Engine names the database engine, for logs.
func (s *Store) Engine() string {
	if s.postgres {
		return "postgresql"
	}
	return "sqlite"
}

// migrate applies the embedded schema files whose version is above the
// recorded one, each in its own transaction.
func (s *Store) migrate(ctx context.Context) error { return s.migrateTo(ctx, 1<<30) }

// migrateTo is migrate stopping after version upto (tests build old stores).
func (s *Store) migrateTo(ctx context.Context, upto int) error {
	if _, err := s.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := s.write.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if err := checkSchemaNotNewer(current); err != nil { // schemaguard.go
		return err
	}
	// Each migration applied has its row. A migration is applied when its
	// row is missing, not when its number is above the newest row: branches
	// merge in any order, so a migration numbered below one already applied
	// (a database made between two merges) is still applied.
	applied := make(map[int]bool)
	rows, err := s.write.QueryContext(ctx, `SELECT version FROM schema_version`)
	if err != nil {
		return fmt.Errorf("migrate: read versions: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: read versions: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: read versions: %w", err)
	}
	files, err := fs.Glob(schemaFS, "schema/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(files)
	for _, name := range files {
		base := filepath.Base(name)
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migrate: bad schema file name %s", base)
		}
		if applied[version] || version > upto {
			continue
		}
		body, err := schemaFS.ReadFile(name)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if err := s.inTx(ctx, func(tx *sql.Tx) error {
			for _, stmt := range splitStatements(string(body)) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %w", base, err)
				}
			}
			if step := goSteps[version]; step != nil {
				if err := step(ctx, tx); err != nil {
					return fmt.Errorf("%s: %w", base, err)
				}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, version)
			return err
		}); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}

// splitStatements cuts a schema file at semicolons that end a line, after
// dropping comment lines. The schema files keep to that shape.
func splitStatements(body string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") || trimmed == "" {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

// inTx runs fn in a write transaction and commits it.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := s.commitFaulted(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// commitFaulted runs the SetCommitFault hook, if any, before tx commits.
// When it fails, tx is rolled back and the error returned, as a failed
// commit would. Every write transaction's commit calls it (inTx and
// WriteTx.Commit), so a fault drill reaches every write.
func (s *Store) commitFaulted(tx *sql.Tx) error {
	f := s.commitFault.Load()
	if f == nil {
		return nil
	}
	if err := (*f)(); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is a unique-key conflict on either engine.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || // SQLite
		strings.Contains(msg, "SQLSTATE 23505") || strings.Contains(msg, "duplicate key value") // PostgreSQL
}

// placeholders returns "$start,$start+1,...": n numbered parameters for an IN list.
func placeholders(start, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(start + i))
	}
	return b.String()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// queryer is what reads need: a *sql.DB or a *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}
