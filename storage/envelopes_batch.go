package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
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

// claimRowCols is the number of parameters of one red_envelope_claims row.
const claimRowCols = 5

// maxRowsPerInsert bounds one multi-row statement: 256 rows of at most 6
// parameters stay far below both engines' parameter limits (SQLite 32,766,
// PostgreSQL 65,535).
const maxRowsPerInsert = 256

// chunkRows is how many of n rows the next multi-row statement carries:
// the largest power of two up to n (and maxRowsPerInsert). Statement texts
// then come in 9 sizes, not 256: pgx prepares and caches every new text on
// each connection of the pool the whole server shares, and SQLite's
// writer caches its statements too, so texts of every size would keep
// evicting the rooms writer's statements. A batch of 37 rows costs three
// statements (32 + 4 + 1) instead of one.
func chunkRows(n int) int {
	c := 1
	for c*2 <= n && c*2 <= maxRowsPerInsert {
		c *= 2
	}
	return c
}

// padIn returns vals padded to a power of two by repeating the last value
// (harmless in an IN list), for the same reason as chunkRows.
func padIn(vals []any) []any {
	n := 1
	for n < len(vals) {
		n *= 2
	}
	for len(vals) < n {
		vals = append(vals, vals[len(vals)-1])
	}
	return vals
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
		read, err := readEnvelopes(ctx, tx, ids)
		if err != nil {
			return err
		}
		claimed, err := readClaims(ctx, tx, ids, users)
		if err != nil {
			return err
		}
		cur := make(map[string]*RedEnvelope, len(read))
		for id, e := range read {
			e := e
			cur[id] = &e
		}
		claimArgs := make([]any, 0, claimRowCols*len(reqs))
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
			claimArgs = append(claimArgs, r.EnvelopeID, r.UserID, amount, seq, r.TS)
			moves = append(moves, Movement{Key: "claim:" + r.EnvelopeID + ":" + r.UserID, Kind: "envelope_claim", TS: r.TS,
				Result: fmt.Sprint(amount), Postings: []Posting{{Account: "escrow:" + r.EnvelopeID, Amount: -amount, Floor: true},
					{Account: "user:" + r.UserID, Amount: amount}}})
		}
		if len(moves) == 0 {
			return nil // only replays and refusals: nothing to write
		}
		// Every changed envelope in one conditional UPDATE: each row
		// changes only if it still holds the values read.
		var envArgs []any
		for _, id := range ids {
			was, e := read[id], cur[id]
			if e == nil || e.RemainingCount == was.RemainingCount {
				continue
			}
			envArgs = append(envArgs, id, e.Remaining, e.RemainingCount, e.State, was.Remaining, was.RemainingCount)
		}
		if err := updateFromValues(ctx, tx, `UPDATE red_envelopes SET remaining = v.column2, remaining_count = v.column3, state = v.column4 FROM `,
			` WHERE red_envelopes.envelope_id = v.column1 AND red_envelopes.remaining = v.column5
			AND red_envelopes.remaining_count = v.column6 AND red_envelopes.state = 'open'`,
			[]string{"TEXT", "BIGINT", "INTEGER", "TEXT", "BIGINT", "INTEGER"}, envArgs); err != nil {
			if errors.Is(err, errRowsMissed) {
				return ErrRetry
			}
			return fmt.Errorf("claim update: %w", err)
		}
		if err := insertRows(ctx, tx, `INSERT INTO red_envelope_claims (envelope_id, user_id, amount, seq, ts) VALUES `,
			claimRowCols, claimArgs); err != nil {
			if isUniqueViolation(err) {
				return ErrRetry // another process claimed for the same user; the retry reads it
			}
			return fmt.Errorf("insert claims: %w", err)
		}
		return applyMovements(ctx, tx, moves)
	})
}

type claimKey struct{ envelope, user string }

// readEnvelopes reads the rows of ids inside tx; unknown IDs are absent.
func readEnvelopes(ctx context.Context, tx *sql.Tx, ids []string) (map[string]RedEnvelope, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	args = padIn(args)
	rows, err := tx.QueryContext(ctx, `SELECT `+envelopeCols+` FROM red_envelopes WHERE envelope_id IN (`+placeholders(1, len(args))+`)`, args...)
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
func readClaims(ctx context.Context, tx *sql.Tx, ids, users []string) (map[claimKey]int64, error) {
	idArgs := make([]any, len(ids))
	for i, id := range ids {
		idArgs[i] = id
	}
	userArgs := make([]any, len(users))
	for i, u := range users {
		userArgs[i] = u
	}
	idArgs, userArgs = padIn(idArgs), padIn(userArgs)
	rows, err := tx.QueryContext(ctx, `SELECT envelope_id, user_id, amount FROM red_envelope_claims WHERE envelope_id IN (`+
		placeholders(1, len(idArgs))+`) AND user_id IN (`+placeholders(len(idArgs)+1, len(userArgs))+`)`, append(idArgs, userArgs...)...)
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

// insertRows runs prefix + "($1,...),(...)" over args, cols parameters a
// row, in statements of at most maxRowsPerInsert rows.
func insertRows(ctx context.Context, tx *sql.Tx, prefix string, cols int, args []any) error {
	return insertRowsSuffix(ctx, tx, prefix, "", cols, args)
}

// insertRowsSuffix is insertRows with suffix after each statement's rows.
func insertRowsSuffix(ctx context.Context, tx *sql.Tx, prefix, suffix string, cols int, args []any) error {
	for len(args) > 0 {
		n := chunkRows(len(args) / cols)
		var b strings.Builder
		b.WriteString(prefix)
		for r := 0; r < n; r++ {
			if r > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			b.WriteString(placeholders(r*cols+1, cols))
			b.WriteByte(')')
		}
		b.WriteString(suffix)
		if _, err := tx.ExecContext(ctx, b.String(), args[:n*cols]...); err != nil {
			return err
		}
		args = args[n*cols:]
	}
	return nil
}

// errRowsMissed: an updateFromValues changed fewer rows than it was given.
var errRowsMissed = errors.New("storage: conditional update missed rows")

// updateFromValues runs prefix + "(VALUES (...),(...)) AS v" + suffix over
// args, len(types) parameters a row, each cast to its SQL type (PostgreSQL
// cannot infer the types of parameters in VALUES; SQLite accepts the same
// CASTs). The VALUES columns are column1, column2, ... on both engines.
// Every row must be changed once: fewer rows changed is errRowsMissed, and
// the caller rolls back.
func updateFromValues(ctx context.Context, tx *sql.Tx, prefix, suffix string, types []string, args []any) error {
	cols := len(types)
	for len(args) > 0 {
		n := chunkRows(len(args) / cols)
		var b strings.Builder
		b.WriteString(prefix)
		b.WriteString("(VALUES ")
		for r := 0; r < n; r++ {
			if r > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for c, t := range types {
				if c > 0 {
					b.WriteByte(',')
				}
				b.WriteString("CAST($")
				b.WriteString(strconv.Itoa(r*cols + c + 1))
				b.WriteString(" AS ")
				b.WriteString(t)
				b.WriteByte(')')
			}
			b.WriteByte(')')
		}
		b.WriteString(") AS v")
		b.WriteString(suffix)
		res, err := tx.ExecContext(ctx, b.String(), args[:n*cols]...)
		if err != nil {
			return err
		}
		if got, err := res.RowsAffected(); err != nil || got != int64(n) {
			return fmt.Errorf("%w: %d of %d (%v)", errRowsMissed, got, n, err)
		}
		args = args[n*cols:]
	}
	return nil
}

// applyMovements writes ms inside tx, as applyMovement does for one: the
// movement rows, their postings and the balance changes, with multi-row
// INSERTs and each account's changes summed. Floored debits (a batch's
// escrows) come first, then the credits in one statement in sorted account
// order, so two batches crediting the same users take the row locks in
// the same order and cannot deadlock.
// The caller has checked that the keys are new; a key written meanwhile
// gives ErrRetry. An account with a floored posting may not end below zero:
// ErrInsufficient, and the caller rolls back.
func applyMovements(ctx context.Context, tx *sql.Tx, ms []Movement) error {
	txnArgs := make([]any, 0, 4*len(ms))
	postArgs := make([]any, 0, 8*len(ms))
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
		txnArgs = append(txnArgs, m.Key, m.Kind, m.TS, m.Result)
		for _, p := range m.Postings {
			postArgs = append(postArgs, m.Key, p.Account, p.Amount, m.TS)
			d := deltas[p.Account]
			if d == nil {
				d = &delta{}
				deltas[p.Account] = d
			}
			d.amount += p.Amount
			d.floor = d.floor || p.Floor
		}
	}
	if err := insertRows(ctx, tx, `INSERT INTO wallet_txns (idem_key, kind, ts, result) VALUES `, 4, txnArgs); err != nil {
		if isUniqueViolation(err) {
			return ErrRetry
		}
		return fmt.Errorf("insert movement: %w", err)
	}
	if err := insertRows(ctx, tx, `INSERT INTO wallet_postings (idem_key, account, amount, ts) VALUES `, 4, postArgs); err != nil {
		return fmt.Errorf("insert posting: %w", err)
	}
	accounts := make([]string, 0, len(deltas))
	for a := range deltas {
		accounts = append(accounts, a)
	}
	sort.Strings(accounts)
	credits := make([]any, 0, 2*len(accounts))
	var debits []any
	for _, a := range accounts {
		if d := deltas[a]; d.amount < 0 && d.floor {
			debits = append(debits, a, d.amount)
		} else {
			credits = append(credits, a, d.amount)
		}
	}
	if err := updateFromValues(ctx, tx, `UPDATE wallet_accounts SET balance = wallet_accounts.balance + v.column2 FROM `,
		` WHERE wallet_accounts.account = v.column1 AND wallet_accounts.balance + v.column2 >= 0`,
		[]string{"TEXT", "BIGINT"}, debits); err != nil {
		if errors.Is(err, errRowsMissed) {
			return ErrInsufficient
		}
		return fmt.Errorf("debit: %w", err)
	}
	if err := insertRowsSuffix(ctx, tx, `INSERT INTO wallet_accounts (account, balance) VALUES `,
		` ON CONFLICT (account) DO UPDATE SET balance = wallet_accounts.balance + excluded.balance`, 2, credits); err != nil {
		return fmt.Errorf("post balances: %w", err)
	}
	return nil
}
