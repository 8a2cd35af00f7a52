package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The wallet's ledger and the red envelopes (schema 042, 043). Ledger writes
// run in transactions of their own on the write pool, not in the rooms
// writer's batches: a movement touches no stream position, and keeping it
// out of the room batch means a poisoned room batch can never undo money,
// nor a refused movement a send. On SQLite the write pool is one
// connection, so these transactions queue behind the writer's batch; on
// PostgreSQL they run beside it. The packages wallet and envelopes decide;
// this file only executes.

// ErrInsufficient is returned when a posting would take a floored account
// (a user's or an escrow) below zero. Nothing was written.
var ErrInsufficient = errors.New("storage: insufficient balance")

// ErrRetry is returned when a conditional UPDATE found the row changed
// under it: the caller may try again. Nothing was written.
var ErrRetry = errors.New("storage: row changed concurrently")

// Posting is one leg of a movement. A movement's postings sum to zero.
type Posting struct {
	Account string
	Amount  int64 // positive credits the account, negative debits it
	// Floor makes the debit conditional: the account may not go below zero.
	Floor bool
}

// Movement is a ledger transaction keyed by its idempotency key.
type Movement struct {
	Key      string
	Kind     string
	TS       int64
	Postings []Posting
	// Result is stored with the movement and returned to every retry of
	// the key, so a retry answers exactly what the first attempt did.
	Result string
}

// HistoryEntry is one posting on one account, newest first.
type HistoryEntry struct {
	Key    string
	Kind   string
	Amount int64
	TS     int64
}

// movementResult returns the stored result of key, or ok false.
func movementResult(ctx context.Context, tx *sql.Tx, key string) (string, bool, error) {
	var res string
	err := tx.QueryRowContext(ctx, `SELECT result FROM wallet_txns WHERE idem_key = $1`, key).Scan(&res)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("movement lookup: %w", err)
	}
	return res, true, nil
}

// applyMovement writes m inside tx: the movement row, its postings and the
// balance changes. The caller has checked that the key is new.
func applyMovement(ctx context.Context, tx *sql.Tx, m Movement) error {
	var sum int64
	for _, p := range m.Postings {
		sum += p.Amount
	}
	if sum != 0 || len(m.Postings) < 2 {
		return fmt.Errorf("movement %s: postings sum to %d over %d legs, want 0 over 2 or more", m.Key, sum, len(m.Postings))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO wallet_txns (idem_key, kind, ts, result) VALUES ($1,$2,$3,$4)`,
		m.Key, m.Kind, m.TS, m.Result); err != nil {
		if isUniqueViolation(err) {
			return ErrRetry
		}
		return fmt.Errorf("insert movement: %w", err)
	}
	for _, p := range m.Postings {
		if _, err := tx.ExecContext(ctx, `INSERT INTO wallet_postings (idem_key, account, amount, ts) VALUES ($1,$2,$3,$4)`,
			m.Key, p.Account, p.Amount, m.TS); err != nil {
			return fmt.Errorf("insert posting: %w", err)
		}
		if p.Amount < 0 && p.Floor {
			res, err := tx.ExecContext(ctx, `UPDATE wallet_accounts SET balance = balance + $2 WHERE account = $1 AND balance + $2 >= 0`, p.Account, p.Amount)
			if err != nil {
				return fmt.Errorf("debit %s: %w", p.Account, err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return ErrInsufficient
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO wallet_accounts (account, balance) VALUES ($1,$2)
			ON CONFLICT (account) DO UPDATE SET balance = wallet_accounts.balance + excluded.balance`, p.Account, p.Amount); err != nil {
			return fmt.Errorf("post to %s: %w", p.Account, err)
		}
	}
	return nil
}

// Move applies m once. A key seen before returns its first result with
// replay true and writes nothing, across restarts: the key is the primary
// key of wallet_txns, written in the same transaction as the postings.
func (s *Store) Move(ctx context.Context, m Movement) (result string, replay bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, ok, err := movementResult(ctx, tx, m.Key)
		if err != nil || ok {
			result, replay = res, ok
			return err
		}
		result = m.Result
		return applyMovement(ctx, tx, m)
	})
	if errors.Is(err, ErrRetry) { // a concurrent first attempt of the same key won
		return s.Move(ctx, m)
	}
	return result, replay, err
}

// Balance returns an account's balance; 0 for an account never posted to.
func (s *Store) Balance(ctx context.Context, account string) (int64, error) {
	var b int64
	err := s.read.QueryRowContext(ctx, `SELECT balance FROM wallet_accounts WHERE account = $1`, account).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("balance: %w", err)
	}
	return b, nil
}

// LedgerSums returns the sum of all balances and the sum of all postings:
// both are zero while the ledger is consistent. Tests and operators use it.
func (s *Store) LedgerSums(ctx context.Context) (balances, postings int64, err error) {
	if err := s.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(balance),0) FROM wallet_accounts`).Scan(&balances); err != nil {
		return 0, 0, fmt.Errorf("ledger sums: %w", err)
	}
	if err := s.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(amount),0) FROM wallet_postings`).Scan(&postings); err != nil {
		return 0, 0, fmt.Errorf("ledger sums: %w", err)
	}
	return balances, postings, nil
}

// History pages an account's postings, newest first. The cursor is the
// (ts, key) of the last entry of the previous page; zero values start at
// the newest.
func (s *Store) History(ctx context.Context, account string, beforeTS int64, beforeKey string, limit int) ([]HistoryEntry, error) {
	q := `SELECT p.idem_key, t.kind, p.amount, p.ts FROM wallet_postings p JOIN wallet_txns t ON t.idem_key = p.idem_key
		WHERE p.account = $1`
	args := []any{account}
	if beforeKey != "" {
		q += ` AND (p.ts < $2 OR (p.ts = $2 AND p.idem_key < $3))`
		args = append(args, beforeTS, beforeKey)
	}
	q += fmt.Sprintf(` ORDER BY p.ts DESC, p.idem_key DESC LIMIT %d`, limit)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer rows.Close()
	var out []HistoryEntry
	for rows.Next() {
		var h HistoryEntry
		if err := rows.Scan(&h.Key, &h.Kind, &h.Amount, &h.TS); err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// RedEnvelope is one envelope's row.
type RedEnvelope struct {
	ID             string
	RoomID         string
	Sender         string
	Kind           string
	Total          int64
	Count          int
	Remaining      int64
	RemainingCount int
	Message        string
	IsDM           bool
	CreatedTS      int64
	ExpiresTS      int64
	State          string
	EventID        string
}

// EnvelopeClaim is one successful claim.
type EnvelopeClaim struct {
	UserID string
	Amount int64
	Seq    int
	TS     int64
}

const envelopeCols = `envelope_id, room_id, sender, kind, total, count, remaining, remaining_count, message, is_dm, created_ts, expires_ts, state, event_id`

func scanEnvelope(row interface{ Scan(...any) error }) (RedEnvelope, error) {
	var e RedEnvelope
	var dm int
	err := row.Scan(&e.ID, &e.RoomID, &e.Sender, &e.Kind, &e.Total, &e.Count, &e.Remaining, &e.RemainingCount, &e.Message, &dm,
		&e.CreatedTS, &e.ExpiresTS, &e.State, &e.EventID)
	if errors.Is(err, sql.ErrNoRows) {
		return e, ErrNotFound
	}
	e.IsDM = dm == 1
	return e, err
}

// CreateEnvelope debits the sender into the envelope's escrow (m) and
// inserts the envelope, in one transaction. A replayed key returns the
// first result and writes nothing.
func (s *Store) CreateEnvelope(ctx context.Context, e RedEnvelope, m Movement) (result string, replay bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, ok, err := movementResult(ctx, tx, m.Key)
		if err != nil || ok {
			result, replay = res, ok
			return err
		}
		result = m.Result
		if err := applyMovement(ctx, tx, m); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO red_envelopes (`+envelopeCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)`,
			e.ID, e.RoomID, e.Sender, e.Kind, e.Total, e.Count, e.Remaining, e.RemainingCount, e.Message, boolInt(e.IsDM),
			e.CreatedTS, e.ExpiresTS, e.State, e.EventID)
		if err != nil {
			return fmt.Errorf("insert envelope: %w", err)
		}
		return nil
	})
	if errors.Is(err, ErrRetry) {
		return s.CreateEnvelope(ctx, e, m)
	}
	return result, replay, err
}

// SetEnvelopeEvent records the room event that announced an envelope.
func (s *Store) SetEnvelopeEvent(ctx context.Context, id, eventID string) error {
	if _, err := s.write.ExecContext(ctx, `UPDATE red_envelopes SET event_id = $2 WHERE envelope_id = $1`, id, eventID); err != nil {
		return fmt.Errorf("set envelope event: %w", err)
	}
	return nil
}

// Envelope returns one envelope and its claims in claim order.
func (s *Store) Envelope(ctx context.Context, id string) (RedEnvelope, []EnvelopeClaim, error) {
	e, err := scanEnvelope(s.read.QueryRowContext(ctx, `SELECT `+envelopeCols+` FROM red_envelopes WHERE envelope_id = $1`, id))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return e, nil, err
		}
		return e, nil, fmt.Errorf("envelope: %w", err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT user_id, amount, seq, ts FROM red_envelope_claims WHERE envelope_id = $1 ORDER BY seq`, id)
	if err != nil {
		return e, nil, fmt.Errorf("envelope claims: %w", err)
	}
	defer rows.Close()
	var cs []EnvelopeClaim
	for rows.Next() {
		var c EnvelopeClaim
		if err := rows.Scan(&c.UserID, &c.Amount, &c.Seq, &c.TS); err != nil {
			return e, nil, fmt.Errorf("envelope claims: %w", err)
		}
		cs = append(cs, c)
	}
	return e, cs, rows.Err()
}

// Claims are written in batches by ClaimEnvelopes (envelopes_batch.go).

// ExpiredEnvelopes lists open envelopes whose expiry is at or before now.
func (s *Store) ExpiredEnvelopes(ctx context.Context, now int64, limit int) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, fmt.Sprintf(`SELECT envelope_id FROM red_envelopes WHERE state = 'open' AND expires_ts <= $1 ORDER BY expires_ts LIMIT %d`, limit), now)
	if err != nil {
		return nil, fmt.Errorf("expired envelopes: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// RefundEnvelope closes an expired open envelope and moves its remainder
// back to the sender, in one transaction. The state change is conditional
// (state = 'open') and the movement's key is fixed per envelope, so a
// refund happens at most once however often the sweeper runs or restarts.
// It reports the amount refunded; 0 when there was nothing to do.
func (s *Store) RefundEnvelope(ctx context.Context, id string, now int64) (int64, error) {
	var refunded int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		e, err := scanEnvelope(tx.QueryRowContext(ctx, `SELECT `+envelopeCols+` FROM red_envelopes WHERE envelope_id = $1`, id))
		if err != nil {
			return fmt.Errorf("refund: %w", err)
		}
		if e.State != "open" || e.ExpiresTS > now {
			return nil
		}
		res, err := tx.ExecContext(ctx, `UPDATE red_envelopes SET state = 'refunded', remaining = 0 WHERE envelope_id = $1 AND state = 'open' AND remaining = $2 AND remaining_count = $3`,
			id, e.Remaining, e.RemainingCount)
		if err != nil {
			return fmt.Errorf("refund: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrRetry
		}
		if e.Remaining == 0 {
			return nil
		}
		refunded = e.Remaining
		return applyMovement(ctx, tx, Movement{Key: "refund:" + id, Kind: "envelope_refund", TS: now, Result: fmt.Sprint(e.Remaining),
			Postings: []Posting{{Account: "escrow:" + id, Amount: -e.Remaining, Floor: true}, {Account: "user:" + e.Sender, Amount: e.Remaining}}})
	})
	return refunded, err
}

// EnvelopeHead returns one envelope without its claims.
func (s *Store) EnvelopeHead(ctx context.Context, id string) (RedEnvelope, error) {
	e, err := scanEnvelope(s.read.QueryRowContext(ctx, `SELECT `+envelopeCols+` FROM red_envelopes WHERE envelope_id = $1`, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return e, fmt.Errorf("envelope: %w", err)
	}
	return e, err
}

// EnvelopeClaimOf returns userID's claim on an envelope, read outside any
// write transaction: the fast path for retries and for claims on closed
// envelopes, which then never queue for the write connection.
func (s *Store) EnvelopeClaimOf(ctx context.Context, id, userID string) (int64, bool, error) {
	var amount int64
	err := s.read.QueryRowContext(ctx, `SELECT amount FROM red_envelope_claims WHERE envelope_id = $1 AND user_id = $2`, id, userID).Scan(&amount)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("claim lookup: %w", err)
	}
	return amount, true, nil
}
