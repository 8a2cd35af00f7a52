package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j/config"
)

// Neo4jOptions configures OpenNeo4j.
type Neo4jOptions struct {
	// URL is a neo4j:// or bolt:// URL (or their +s, +ssc variants).
	URL string
	// User and Password authenticate. Zero values mean no authentication.
	User, Password string
	// Database is the Neo4j database. Zero value means the server's default.
	Database string
	// Timeout bounds every operation, the driver's retries included, so a
	// Neo4j that is down or has stopped answering yields ErrUnavailable
	// instead of a hung request. Zero value means 5 * time.Second.
	Timeout time.Duration
}

// Neo4jStore keeps the graph in Neo4j: (:User {id}) nodes joined by FOLLOWS,
// FRIEND (one relationship per pair, read without direction), BLOCKS and
// REQUESTED {id, message, ts} (pending requests only). Writes are the
// shared rules over Cypher statements (neo4j_tx.go), one transaction per
// operation; reads are one Cypher query each (neo4j_read.go).
type Neo4jStore struct {
	rules
	// Static after OpenNeo4j.
	driver   neo4j.DriverWithContext
	database string
	timeout  time.Duration
}

var _ Store = (*Neo4jStore)(nil)

// neo4jSchema is created at start. The constraint also indexes User.id, which
// every query starts from; the relationship index serves Accept, Decline and
// Cancel, which know only a request's ID.
var neo4jSchema = []string{
	`CREATE CONSTRAINT parley_user_id IF NOT EXISTS FOR (u:User) REQUIRE u.id IS UNIQUE`,
	`CREATE INDEX parley_request_id IF NOT EXISTS FOR ()-[r:REQUESTED]-() ON (r.id)`,
}

// OpenNeo4j connects to Neo4j and creates the schema if it is missing. A
// Neo4j that cannot be reached gives an error wrapping ErrUnavailable.
func OpenNeo4j(ctx context.Context, o Neo4jOptions) (*Neo4jStore, error) {
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	auth := neo4j.NoAuth()
	if o.User != "" {
		auth = neo4j.BasicAuth(o.User, o.Password, "")
	}
	driver, err := neo4j.NewDriverWithContext(o.URL, auth, func(c *config.Config) {
		// No single wait may outlast an operation's whole budget.
		c.MaxTransactionRetryTime = timeout
		c.SocketConnectTimeout = timeout
		c.ConnectionAcquisitionTimeout = timeout
	})
	if err != nil {
		return nil, fmt.Errorf("open neo4j: %w", err)
	}
	s := &Neo4jStore{driver: driver, database: o.Database, timeout: timeout}
	s.rules = rules{inTx: s.inTx}
	if err := s.createSchema(ctx); err != nil {
		driver.Close(ctx)
		return nil, fmt.Errorf("open neo4j: %w", err)
	}
	return s, nil
}

// createSchema runs each statement, twice if need be: two servers starting
// at once may race to create the same index, and the loser fails once.
func (s *Neo4jStore) createSchema(ctx context.Context) error {
	for _, stmt := range neo4jSchema {
		err := s.exec(ctx, stmt)
		if err != nil && !errors.Is(err, ErrUnavailable) {
			err = s.exec(ctx, stmt)
		}
		if err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	return nil
}

// exec runs one statement in a write transaction of its own.
func (s *Neo4jStore) exec(ctx context.Context, q string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := neo4j.ExecuteQuery(ctx, s.driver, q, nil, neo4j.EagerResultTransformer,
		neo4j.ExecuteQueryWithDatabase(s.database))
	return classify(err)
}

// Close closes the driver and its connections.
func (s *Neo4jStore) Close(ctx context.Context) error {
	return s.driver.Close(ctx)
}

// inTx runs fn in one managed write transaction. The driver retries it on
// transient failures (a lost connection, a deadlock between two writers)
// until the operation's timeout; the server rolls back whatever a failed
// attempt did.
func (s *Neo4jStore) inTx(ctx context.Context, fn func(ctx context.Context, tx writeTx) error) error {
	return s.transact(ctx, neo4j.AccessModeWrite, func(ctx context.Context, tx neo4j.ManagedTransaction) error {
		return fn(ctx, neo4jTx{tx: tx})
	})
}

// read runs fn in one managed read transaction, with the same bounds.
func (s *Neo4jStore) read(ctx context.Context, fn func(ctx context.Context, tx neo4j.ManagedTransaction) error) error {
	return s.transact(ctx, neo4j.AccessModeRead, fn)
}

func (s *Neo4jStore) transact(ctx context.Context, mode neo4j.AccessMode, fn func(ctx context.Context, tx neo4j.ManagedTransaction) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	session := s.driver.NewSession(ctx, neo4j.SessionConfig{
		AccessMode:   mode,
		DatabaseName: s.database,
		// One bookmark manager for the driver: on a cluster, a read sees
		// every write this process made before it.
		BookmarkManager: s.driver.ExecuteQueryBookmarkManager(),
	})
	defer func() {
		// Closing only returns the connection to the pool; bound it anyway,
		// since ctx may have expired already.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		session.Close(closeCtx)
	}()
	work := func(tx neo4j.ManagedTransaction) (any, error) { return nil, fn(ctx, tx) }
	// The server-side timeout frees the users' locks if this client stalls.
	var err error
	if mode == neo4j.AccessModeWrite {
		_, err = session.ExecuteWrite(ctx, work, neo4j.WithTxTimeout(s.timeout))
	} else {
		_, err = session.ExecuteRead(ctx, work, neo4j.WithTxTimeout(s.timeout))
	}
	return classify(err)
}

// classify wraps the errors that mean "Neo4j is not answering" in
// ErrUnavailable and leaves the rest (the rules' own errors, Cypher
// mistakes) as they are.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

func unavailable(err error) bool {
	var (
		conn    *neo4j.ConnectivityError
		limit   *neo4j.TransactionExecutionLimit // retries ran out of time
		netErr  net.Error
		neo4jEr *neo4j.Neo4jError
	)
	switch {
	case errors.Is(err, ErrBlocked), errors.Is(err, ErrSelf), errors.Is(err, ErrNotFound):
		return false
	case errors.As(err, &conn), errors.As(err, &limit), errors.As(err, &netErr),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &neo4jEr):
		// Neo.TransientError.*: the database is starting, stopping or
		// failing over; nothing was committed.
		return strings.HasPrefix(neo4jEr.Code, "Neo.TransientError.")
	}
	return false
}
