package storage

import (
	"database/sql/driver"
	"strings"
	"sync/atomic"
)

// Test-only fault injection at the statement level.
//
// The rooms writer has failure paths (retry each job alone, recover a
// panicking job, undo its cache when a commit fails) that a healthy database
// never takes. To run them on the real engines, and not on a fake store that
// could drift from them, a test may make chosen statements fail. The hook
// sits in the driver wrapper (textguard.go) below database/sql, so it sees
// every statement the store runs, including ones added after this file:
// a test names statements by their SQL text (the Stmt* prefixes), not by
// the WriteTx method that runs them.
//
// Production code never sets a fault. Unset, it costs one atomic load per
// statement and per transaction begun.
//
// Reads that SQLite runs as cached prepared statements (the read pool's
// statement cache) do not pass the hook; every statement of the write
// connection, and every statement on PostgreSQL, does.

// StatementFault is called before a statement runs on one of the store's
// connections, with its SQL text and arguments (after conversion). An error
// it returns fails the statement as if the database had refused it; the
// transaction is left for the caller to roll back. It may also panic, to
// stand for a bug in the code that issued the statement. It runs on the
// goroutine that issues the statement and must be safe for concurrent use.
type StatementFault func(query string, args []driver.NamedValue) error

// Statement kinds a fault can pick out: the start of their SQL text, as
// IsStatement matches it.
const (
	StmtInsertEvent      = "INSERT INTO events"
	StmtUpsertState      = "INSERT INTO current_state"
	StmtUpsertMembership = "INSERT INTO memberships"
	StmtInsertRoom       = "INSERT INTO rooms"
	StmtInsertTxn        = "INSERT INTO txns"
	StmtPutReceipt       = "INSERT INTO receipts"
	StmtPutAccountData   = "INSERT INTO account_data"
	StmtRedact           = "UPDATE events SET"
	StmtWatermark        = "INSERT INTO stream_watermark"
	// StmtCommit is a transaction's commit, which a fault sees with no
	// arguments. An error fails the commit: the transaction is rolled back
	// and the error returned, as a full disk or a failing fsync would.
	// (SetCommitFault does the same for every write transaction.)
	StmtCommit = "COMMIT"
	// StmtCommitted is no statement: a fault sees it, with no arguments,
	// after a transaction committed. An error returned then reports the
	// commit as failed although it is durable, as when the connection
	// drops while the database's answer to COMMIT is on its way.
	StmtCommitted = "COMMITTED"
)

// IsStatement reports whether query is of kind: whether its text, after
// leading space, starts with kind followed by a space or "(".
func IsStatement(query, kind string) bool {
	q := strings.TrimLeft(query, " \t\r\n")
	if !strings.HasPrefix(q, kind) {
		return false
	}
	rest := q[len(kind):]
	return rest == "" || rest[0] == ' ' || rest[0] == '(' || rest[0] == '\n' || rest[0] == '\t'
}

// ArgsHold reports whether any argument of a statement equals v: a test
// uses it to fail the statements of one room or one user only.
func ArgsHold(args []driver.NamedValue, v string) bool {
	for _, a := range args {
		switch x := a.Value.(type) {
		case string:
			if x == v {
				return true
			}
		case []byte:
			if string(x) == v {
				return true
			}
		}
	}
	return false
}

// SetStatementFault installs f on every connection of the store, or clears
// it when f is nil. Tests only; see StatementFault. To fail a commit, use
// SetCommitFault.
func (s *Store) SetStatementFault(f StatementFault) {
	if s.faults == nil {
		return
	}
	if f == nil {
		s.faults.f.Store(nil)
		return
	}
	s.faults.f.Store(&f)
}

// faultHook holds a store's statement fault. One is shared by the store and
// the connectors it opened; a nil *faultHook (a read-only SQLite pool) has
// none.
type faultHook struct {
	f atomic.Pointer[StatementFault]
}

// wrapTx wraps a transaction just begun so that its commit reports to the
// fault (StmtCommitted), when a fault is set; otherwise it returns tx as is.
func (h *faultHook) wrapTx(tx driver.Tx, err error) (driver.Tx, error) {
	if err != nil || h == nil || h.f.Load() == nil {
		return tx, err
	}
	return faultTx{Tx: tx, faults: h}, nil
}

// faultTx is a transaction begun while a fault was set.
type faultTx struct {
	driver.Tx
	faults *faultHook
}

func (t faultTx) Commit() error {
	if err := t.faults.check(StmtCommit, nil); err != nil {
		_ = t.Tx.Rollback()
		return err
	}
	if err := t.Tx.Commit(); err != nil {
		return err
	}
	return t.faults.check(StmtCommitted, nil)
}

// check runs the fault, if any, for one statement.
func (h *faultHook) check(query string, args []driver.NamedValue) error {
	if h == nil {
		return nil
	}
	f := h.f.Load()
	if f == nil {
		return nil
	}
	return (*f)(query, args)
}
