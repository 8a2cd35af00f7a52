package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// FederationTxn returns the answer recorded for origin's inbound
// transaction txnID, or ErrNotFound.
func (s *Store) FederationTxn(ctx context.Context, origin, txnID string) ([]byte, error) {
	var answer string
	err := s.read.QueryRowContext(ctx, `SELECT answer FROM federation_txns WHERE origin = $1 AND txn_id = $2`, origin, txnID).Scan(&answer)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("federation txn %s from %s: %w", txnID, origin, err)
	}
	return []byte(answer), nil
}

// RecordFederationTxn records the answer to origin's inbound transaction
// txnID at ts (ms). A second record of the same transaction keeps the
// first answer: that is the one the sender may have seen.
func (s *Store) RecordFederationTxn(ctx context.Context, origin, txnID string, answer []byte, ts int64) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO federation_txns (origin, txn_id, answer, ts) VALUES ($1, $2, $3, $4)
		ON CONFLICT (origin, txn_id) DO NOTHING`, origin, txnID, string(answer), ts)
	if err != nil {
		return fmt.Errorf("record federation txn %s from %s: %w", txnID, origin, err)
	}
	return nil
}

// DeleteFederationTxnsBefore deletes up to limit recorded transaction
// answers older than beforeTS (ms), oldest first, and returns how many.
func (s *Store) DeleteFederationTxnsBefore(ctx context.Context, beforeTS int64, limit int) (int64, error) {
	res, err := s.write.ExecContext(ctx, `DELETE FROM federation_txns WHERE (origin, txn_id) IN
		(SELECT origin, txn_id FROM federation_txns WHERE ts < $1 ORDER BY ts LIMIT $2)`, beforeTS, limit)
	if err != nil {
		return 0, fmt.Errorf("delete old federation txns: %w", err)
	}
	return res.RowsAffected()
}
