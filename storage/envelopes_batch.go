package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Grouped claims (docs/envelopes.md, "Grouped claims"). The envelopes
// package's owner goroutines hand a batch of waiting claims to
// ClaimEnvelopes, which decides every claim of the batch in order and
// writes them all in one transaction: one commit, so one WAL flush (fsync)
// on PostgreSQL or SQLite, for the whole batch instead of one per claim.

// ClaimRequest is one claim of a batch.
type ClaimRequest struct {
	EnvelopeID string
	UserID     string
	TS         int64
}

// ClaimResult is one claim's outcome in a batch. Err is the claim's own
// refusal (from check, or ErrNotFound): nothing was written for it, and the
// rest of the batch is unaffected. Seq is the claim's place in its
// envelope (1 = first); 0 for a replay or a refusal.
type ClaimResult struct {
	Amount int64
	Replay bool
	Seq    int
	Err    error
}

// maxRowsPerStatement bounds one SQLite multi-row statement: 256 rows of
// at most 6 parameters stay far below SQLite's 32,766 parameters.
// PostgreSQL takes every row of a batch in one statement (arrays).
const maxRowsPerStatement = 256

// rowSet is the rows of one multi-row statement, held by column so that
// PostgreSQL can take each column as one array parameter.
type rowSet struct {
	types []string // each column's SQL type: "text" or "bigint"
	cols  []any    // each a []string or []int64, one element a row
	n     int
}

func newRowSet(types ...string) *rowSet {
	r := &rowSet{types: types, cols: make([]any, len(types))}
	for i, t := range types {
		if t == "text" {
			r.cols[i] = []string(nil)
		} else {
			r.cols[i] = []int64(nil)
		}
	}
	return r
}

// add appends one row: a string or int64 per column, in order.
func (r *rowSet) add(vals ...any) {
	for i, v := range vals {
		switch c := r.cols[i].(type) {
		case []string:
			r.cols[i] = append(c, v.(string))
		case []int64:
			r.cols[i] = append(c, v.(int64))
		}
	}
	r.n++
}

// execRows runs head + source + tail, where source stands for the rows of
// rs as a table v with columns column1, column2, ...: on PostgreSQL
// unnest over one array per column, so the statement text is the same for
// every batch size (pgx prepares and caches each new text on each pooled
// connection, which a text per size would churn); on SQLite a VALUES list
// of the exact size, in statements of at most maxRowsPerStatement rows.
// With wantAll, every row must change one row: fewer is errRowsMissed,
// and the caller rolls back.
func (s *Store) execRows(ctx context.Context, tx *sql.Tx, head string, rs *rowSet, tail string, wantAll bool) error {
	if rs.n == 0 {
		return nil
	}
	if s.postgres {
		return execCount(ctx, tx, head+pgSource(rs, 1)+tail, rs.cols, rs.n, wantAll)
	}
	cols := len(rs.types)
	for from := 0; from < rs.n; from += maxRowsPerStatement {
		n := min(rs.n-from, maxRowsPerStatement)
		args := make([]any, 0, n*cols)
		var b strings.Builder
		b.WriteString(head)
		b.WriteString("(VALUES ")
		for r := from; r < from+n; r++ {
			if r > from {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			b.WriteString(placeholders(len(args)+1, cols))
			b.WriteByte(')')
			for _, c := range rs.cols {
				switch c := c.(type) {
				case []string:
					args = append(args, c[r])
				case []int64:
					args = append(args, c[r])
				}
			}
		}
		b.WriteString(") AS v")
		b.WriteString(tail)
		if err := execCount(ctx, tx, b.String(), args, n, wantAll); err != nil {
			return err
		}
	}
	return nil
}

// pgSource is rs as PostgreSQL's table source: unnest over one array
// parameter per column (numbered from start) as v(column1, column2, ...).
func pgSource(rs *rowSet, start int) string {
	var b strings.Builder
	b.WriteString("unnest(")
	for i, t := range rs.types {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "$%d::%s[]", start+i, t)
	}
	b.WriteString(") AS v(")
	for i := range rs.types {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "column%d", i+1)
	}
	b.WriteByte(')')
	return b.String()
}

// batchWriter runs a batch's writes. On SQLite each runs at once (a
// statement is a function call there). On PostgreSQL, where every
// statement is a round trip to the server, they are collected as
// data-modifying CTEs of one statement, run by flush: the whole write of
// a batch is one round trip. A write whose rows must all change (miss not
// nil) fails with miss when fewer did; on PostgreSQL flush finds that out
// from the CTE's RETURNING count, after the statement, and the caller
// rolls the transaction back, so the other CTEs' writes are undone too.
type batchWriter struct {
	s      *Store
	tx     *sql.Tx
	ctes   []string // PostgreSQL: the collected writes
	args   []any    // PostgreSQL: their parameters
	checks []countCheck
}

type countCheck struct {
	cte  string
	n    int
	miss error
}

func (w *batchWriter) exec(ctx context.Context, head string, rs *rowSet, tail string, miss error) error {
	if rs.n == 0 {
		return nil
	}
	if !w.s.postgres {
		err := w.s.execRows(ctx, w.tx, head, rs, tail, miss != nil)
		if miss != nil && errors.Is(err, errRowsMissed) {
			return miss
		}
		return err
	}
	name := fmt.Sprintf("w%d", len(w.ctes))
	w.ctes = append(w.ctes, name+" AS ("+head+pgSource(rs, len(w.args)+1)+tail+" RETURNING 1)")
	w.args = append(w.args, rs.cols...)
	if miss != nil {
		w.checks = append(w.checks, countCheck{name, rs.n, miss})
	}
	return nil
}

// flush runs PostgreSQL's collected writes; nothing on SQLite.
func (w *batchWriter) flush(ctx context.Context) error {
	if len(w.ctes) == 0 {
		return nil
	}
	q := "WITH " + strings.Join(w.ctes, ", ") + " SELECT 0"
	for _, c := range w.checks {
		q += ", (SELECT count(*) FROM " + c.cte + ")"
	}
	got := make([]int64, len(w.checks)+1)
	dest := make([]any, len(got))
	for i := range got {
		dest[i] = &got[i]
	}
	if err := w.tx.QueryRowContext(ctx, q, w.args...).Scan(dest...); err != nil {
		return err
	}
	for i, c := range w.checks {
		if got[i+1] != int64(c.n) {
			return c.miss
		}
	}
	return nil
}

func execCount(ctx context.Context, tx *sql.Tx, q string, args []any, n int, wantAll bool) error {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	if wantAll {
		if got, err := res.RowsAffected(); err != nil || got != int64(n) {
			return fmt.Errorf("%w: %d of %d (%v)", errRowsMissed, got, n, err)
		}
	}
	return nil
}

// errRowsMissed: a conditional multi-row UPDATE changed fewer rows than it
// was given.
var errRowsMissed = errors.New("storage: conditional update missed rows")

// inList returns "IN (...)" over vals for SQLite and "= ANY($n)" for
// PostgreSQL (one text for any length, as in execRows), with the
// arguments, numbered from start.
func (s *Store) inList(start int, vals []string) (string, []any) {
	if s.postgres {
		return fmt.Sprintf("= ANY($%d::text[])", start), []any{vals}
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return "IN (" + placeholders(start, len(vals)) + ")", args
}

// ClaimEnvelopes decides and writes a batch of claims in one transaction,
// filling out[i] for reqs[i] (len(out) must be len(reqs)).
//
// Claims are decided in the order given, each on the envelope as the claims
// before it in the batch left it: check sees that state and may refuse;
// pick chooses the amount. A user who already has a claim on the envelope
// (stored, or earlier in the same batch) gets it back with Replay true.
// Every envelope the batch changes is written back with a conditional
// UPDATE on the values read, so a concurrent writer (the sweeper's refund,
// or another process) makes the whole batch fail with ErrRetry, with
// nothing written, instead of overdrawing. Any error other than a claim's
// own refusal fails the whole batch and writes nothing.
func (s *Store) ClaimEnvelopes(ctx context.Context, reqs []ClaimRequest, check func(i int, e RedEnvelope) error,
	pick func(e RedEnvelope) int64, out []ClaimResult) error {
	if len(out) != len(reqs) {
		return fmt.Errorf("claim envelopes: %d results for %d requests", len(out), len(reqs))
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		clear(out)
		ids, users := make([]string, 0, 4), make([]string, 0, len(reqs))
		seenID, seenUser := make(map[string]bool, 4), make(map[string]bool, len(reqs))
		for _, r := range reqs {
			if !seenID[r.EnvelopeID] {
				seenID[r.EnvelopeID] = true
				ids = append(ids, r.EnvelopeID)
			}
			if !seenUser[r.UserID] {
				seenUser[r.UserID] = true
				users = append(users, r.UserID)
			}
		}
		read, err := s.readEnvelopes(ctx, tx, ids)
		if err != nil {
			return err
		}
		claimed, err := s.readClaims(ctx, tx, ids, users)
		if err != nil {
			return err
		}
		cur := make(map[string]*RedEnvelope, len(read))
		for id, e := range read {
			e := e
			cur[id] = &e
		}
		claims := newRowSet("text", "text", "bigint", "bigint", "bigint")
		moves := make([]Movement, 0, len(reqs))
		for i, r := range reqs {
			k := claimKey{r.EnvelopeID, r.UserID}
			if a, ok := claimed[k]; ok {
				out[i] = ClaimResult{Amount: a, Replay: true}
				continue
			}
			e := cur[r.EnvelopeID]
			if e == nil {
				out[i].Err = ErrNotFound
				continue
			}
			if err := check(i, *e); err != nil {
				out[i].Err = err
				continue
			}
			amount := pick(*e)
			if amount < 1 || amount > e.Remaining || (e.RemainingCount == 1 && amount != e.Remaining) {
				return fmt.Errorf("claim: picked %d of %d over %d shares", amount, e.Remaining, e.RemainingCount)
			}
			seq := e.Count - e.RemainingCount + 1
			e.Remaining -= amount
			e.RemainingCount--
			if e.RemainingCount == 0 {
				e.State = "finished"
			}
			claimed[k] = amount
			out[i] = ClaimResult{Amount: amount, Seq: seq}
			claims.add(r.EnvelopeID, r.UserID, amount, int64(seq), r.TS)
			moves = append(moves, Movement{Key: "claim:" + r.EnvelopeID + ":" + r.UserID, Kind: "envelope_claim", TS: r.TS,
				Result: fmt.Sprint(amount), Postings: []Posting{{Account: "escrow:" + r.EnvelopeID, Amount: -amount, Floor: true},
					{Account: "user:" + r.UserID, Amount: amount}}})
		}
		if len(moves) == 0 {
			return nil // only replays and refusals: nothing to write
		}
		// Every changed envelope in one conditional UPDATE: each row
		// changes only if it still holds the values read.
		envs := newRowSet("text", "bigint", "bigint", "text", "bigint", "bigint")
		for _, id := range ids {
			was, e := read[id], cur[id]
			if e == nil || e.RemainingCount == was.RemainingCount {
				continue
			}
			envs.add(id, e.Remaining, int64(e.RemainingCount), e.State, was.Remaining, int64(was.RemainingCount))
		}
		w := &batchWriter{s: s, tx: tx}
		err = w.exec(ctx, `UPDATE red_envelopes SET remaining = v.column2, remaining_count = v.column3, state = v.column4 FROM `, envs,
			` WHERE red_envelopes.envelope_id = v.column1 AND red_envelopes.remaining = v.column5
			AND red_envelopes.remaining_count = v.column6 AND red_envelopes.state = 'open'`, ErrRetry)
		if err == nil {
			err = w.exec(ctx, `INSERT INTO red_envelope_claims (envelope_id, user_id, amount, seq, ts) SELECT * FROM `, claims, ``, nil)
		}
		if err == nil {
			err = applyMovements(ctx, w, moves)
		}
		if err == nil {
			err = w.flush(ctx)
		}
		switch {
		case err == nil || errors.Is(err, ErrRetry) || errors.Is(err, ErrInsufficient):
			return err
		case isUniqueViolation(err):
			// Another process wrote a claim or movement of the batch
			// meanwhile; the retry reads it and replays.
			return ErrRetry
		}
		return fmt.Errorf("claim write: %w", err)
	})
}

type claimKey struct{ envelope, user string }

// readEnvelopes reads the rows of ids inside tx; unknown IDs are absent.
func (s *Store) readEnvelopes(ctx context.Context, tx *sql.Tx, ids []string) (map[string]RedEnvelope, error) {
	in, args := s.inList(1, ids)
	rows, err := tx.QueryContext(ctx, `SELECT `+envelopeCols+` FROM red_envelopes WHERE envelope_id `+in, args...)
	if err != nil {
		return nil, fmt.Errorf("claim: read envelopes: %w", err)
	}
	defer rows.Close()
	out := make(map[string]RedEnvelope, len(ids))
	for rows.Next() {
		e, err := scanEnvelope(rows)
		if err != nil {
			return nil, fmt.Errorf("claim: read envelopes: %w", err)
		}
		out[e.ID] = e
	}
	return out, rows.Err()
}

// readClaims returns the stored claims of any of users on any of ids
// inside tx (a superset of the batch's pairs, filtered by the caller's
// lookups).
func (s *Store) readClaims(ctx context.Context, tx *sql.Tx, ids, users []string) (map[claimKey]int64, error) {
	inIDs, args := s.inList(1, ids)
	inUsers, userArgs := s.inList(len(args)+1, users)
	rows, err := tx.QueryContext(ctx, `SELECT envelope_id, user_id, amount FROM red_envelope_claims WHERE envelope_id `+inIDs+
		` AND user_id `+inUsers, append(args, userArgs...)...)
	if err != nil {
		return nil, fmt.Errorf("claim lookup: %w", err)
	}
	defer rows.Close()
	out := make(map[claimKey]int64)
	for rows.Next() {
		var k claimKey
		var a int64
		if err := rows.Scan(&k.envelope, &k.user, &a); err != nil {
			return nil, fmt.Errorf("claim lookup: %w", err)
		}
		out[k] = a
	}
	return out, rows.Err()
}

// applyMovements writes ms through w, as applyMovement does for one: the
// movement rows, their postings and the balance changes, with one
// multi-row write each and each account's changes summed. Floored
// debits (a batch's escrows) come first, then the credits in sorted
// account order, so two batches crediting the same users take the row
// locks in the same order and cannot deadlock.
func applyMovements(ctx context.Context, w *batchWriter, ms []Movement) error {
	txns := newRowSet("text", "text", "bigint", "text")
	posts := newRowSet("text", "text", "bigint", "bigint")
	type delta struct {
		amount int64
		floor  bool
	}
	deltas := make(map[string]*delta, 2*len(ms))
	for _, m := range ms {
		var sum int64
		for _, p := range m.Postings {
			sum += p.Amount
		}
		if sum != 0 || len(m.Postings) < 2 {
			return fmt.Errorf("movement %s: postings sum to %d over %d legs, want 0 over 2 or more", m.Key, sum, len(m.Postings))
		}
		txns.add(m.Key, m.Kind, m.TS, m.Result)
		for _, p := range m.Postings {
			posts.add(m.Key, p.Account, p.Amount, m.TS)
			d := deltas[p.Account]
			if d == nil {
				d = &delta{}
				deltas[p.Account] = d
			}
			d.amount += p.Amount
			d.floor = d.floor || p.Floor
		}
	}
	if err := w.exec(ctx, `INSERT INTO wallet_txns (idem_key, kind, ts, result) SELECT * FROM `, txns, ``, nil); err != nil {
		return err
	}
	if err := w.exec(ctx, `INSERT INTO wallet_postings (idem_key, account, amount, ts) SELECT * FROM `, posts, ``, nil); err != nil {
		return err
	}
	accounts := make([]string, 0, len(deltas))
	for a := range deltas {
		accounts = append(accounts, a)
	}
	sort.Strings(accounts)
	debits, credits := newRowSet("text", "bigint"), newRowSet("text", "bigint")
	for _, a := range accounts {
		if d := deltas[a]; d.amount < 0 && d.floor {
			debits.add(a, d.amount)
		} else {
			credits.add(a, d.amount)
		}
	}
	if err := w.exec(ctx, `UPDATE wallet_accounts SET balance = wallet_accounts.balance + v.column2 FROM `, debits,
		` WHERE wallet_accounts.account = v.column1 AND wallet_accounts.balance + v.column2 >= 0`, ErrInsufficient); err != nil {
		return err
	}
	// "WHERE true": SQLite needs it to parse an upsert after a SELECT.
	return w.exec(ctx, `INSERT INTO wallet_accounts (account, balance) SELECT * FROM `, credits,
		` WHERE true ON CONFLICT (account) DO UPDATE SET balance = wallet_accounts.balance + excluded.balance`, nil)
}
